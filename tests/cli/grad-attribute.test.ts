/**
 * `patchbay grad` and `patchbay attribute` end to end, as child processes: the hook gradients
 * and (--weights-out, the summed next-token loss) the weight gradients written to safetensors
 * match the float64 PyTorch fixtures (1e-4 of each tensor's largest magnitude); attribute --json
 * gives atp.json's AtP grid and, with --verify, exact values of its top cells; bad options fail
 * with one line.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { maxAbs, maxAbsDiff } from '../helpers/compare.ts';
import { fixtureCases } from '../helpers/fixtures.ts';
import { expectGradClose, fixtureAtp, fixtureGrads, fixtureWeightGrads } from '../helpers/grad-fixtures.ts';
import { projectRoot, runCli } from '../helpers/run-cli.ts';

const tmp = mkdtempSync(join(tmpdir(), 'patchbay-grad-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const dir = (name: string) => resolve(projectRoot, 'tests/fixtures', name);
const read = (path: string) => new SafetensorsFile(new Uint8Array(readFileSync(path)), path);

describe('patchbay grad', () => {
  test.each(['tiny-llama-random', 'induction-2l'])('%s: hook gradients and weight gradients match PyTorch', async (name) => {
    const { prompts } = fixtureCases(name);
    const ids = prompts.flatMap((p) => ['--ids', p.join(',')]);
    const out = join(tmp, `${name}-grads.safetensors`);
    const r = await runCli(['grad', dir(name), ...ids, '--metric', fixtureAtp(name).metric_spec, '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/wrote .* hook gradients/);
    const ref = fixtureGrads(name);
    const got = read(out);
    for (const n of ref.names) expectGradClose(n, got.float32(n), ref.float32(n));
    // Weight gradients of the summed next-token loss, each row predicting its own tokens.
    const wOut = join(tmp, `${name}-wgrads.safetensors`);
    const w = await runCli(['grad', dir(name), ...ids, '--metric', `loss:0:${prompts[0].length - 1}`, '--out', join(tmp, 'unused.safetensors'), '--names', '^hook_embed$', '--weights-out', wOut]);
    expect(w.code, w.stderr).toBe(0);
    const wRef = fixtureWeightGrads(name);
    const wGot = read(wOut);
    for (const n of wRef.names) expectGradClose(n, wGot.float32(n), wRef.float32(n));
    expect(read(join(tmp, 'unused.safetensors')).names).toEqual(['hook_embed']);
  });

  test('missing --out and an unknown metric fail with one line', async () => {
    const r = await runCli(['grad', dir('tiny-gpt2-random'), '--ids', '1,2,3', '--metric', 'logit-diff:2:5:6']);
    expect(r.code).toBe(2);
    expect(r.errorLines).toHaveLength(1);
    expect(r.errorLines[0]).toMatch(/--out/);
    const m = await runCli(['grad', dir('tiny-gpt2-random'), '--ids', '1,2,3', '--metric', 'logit-dif:2:5:6', '--out', join(tmp, 'x.safetensors')]);
    expect(m.code).toBe(2);
    expect(m.errorLines[0]).toMatch(/--metric logit-dif:2:5:6/);
  });
});

describe('patchbay attribute', () => {
  test('induction-2l z: atp.json grid, and --verify 3 gives the exact values of the top cells', async () => {
    const name = 'induction-2l';
    const atp = fixtureAtp(name);
    const [clean, corrupt] = fixtureCases(name).prompts;
    const r = await runCli(['attribute', dir(name), '--clean', clean.join(','), '--corrupt', corrupt.join(','), '--site', 'z', '--metric', atp.metric_spec, '--verify', '3', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim()) as { shape: number[]; axes: string[]; effects: number[][]; values: number[][]; signed: boolean; verified: Array<{ coords: number[]; exact: number }> };
    expect(out.shape).toEqual([2, 4]);
    expect(out.axes).toEqual(['layer', 'head']);
    expect(out.signed).toBe(true);
    const ref = atp.sites.z.atp.flat();
    expect(maxAbsDiff(out.effects.flat(), ref)).toBeLessThanOrEqual(1e-4 * maxAbs(ref));
    expect(out.verified).toHaveLength(3);
    for (const c of out.verified) expect(Math.abs(c.exact + atp.corrupt_metric - atp.sites.z.exact[c.coords[0]][c.coords[1]])).toBeLessThan(1e-3);
  });

  test('an unknown method fails with one line', async () => {
    const r = await runCli(['attribute', dir('tiny-gpt2-random'), '--clean', '1,2', '--corrupt', '1,3', '--site', 'z', '--metric', 'logit-diff:1:5:6', '--method', 'eap']);
    expect(r.code).toBe(2);
    expect(r.errorLines).toEqual(['patchbay: --method eap: unknown method; use atp or atp*']);
  });
});
