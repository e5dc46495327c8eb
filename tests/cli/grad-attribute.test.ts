/**
 * `patchbay grad` and `patchbay attribute` end to end, as child processes: the hook gradients
 * and (--weights-out, the summed next-token loss) the weight gradients written to safetensors
 * match the float64 PyTorch fixtures (1e-4 of each tensor's largest magnitude); attribute --json
 * gives atp.json's AtP grid and, with --verify, exact values of its top cells; with --site
 * features --sae, AtP over the SAE's features against float64 PyTorch (sae_grads.safetensors'
 * gemma_err/atp_features) and --verify's exact feature patching against feature_patch_ref.py;
 * a spec with an attribute experiment (patchbay run) prints the same numbers; bad options fail
 * with one line.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { parseSpec } from '../../src/experiments/spec.ts';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { maxAbs, maxAbsDiff } from '../helpers/compare.ts';
import { fixtureCases } from '../helpers/fixtures.ts';
import { expectGradClose, fixtureAtp, fixtureGrads, fixtureWeightGrads } from '../helpers/grad-fixtures.ts';
import { projectRoot, runCli } from '../helpers/run-cli.ts';
import { FEATURE_PATCHING } from '../features/helpers.ts';

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

  test('--site features --sae: every cell against float64 PyTorch, --verify against exact feature patching; the spec it writes runs again to the same', async () => {
    const ref = FEATURE_PATCHING;
    const sae = dir(ref.sae);
    const [clean, corrupt] = fixtureCases('tiny-gemma3-random').prompts;
    const spec = join(tmp, 'specs', 'attribute-features.json');
    const args = [
      '--clean',
      clean.join(','),
      '--corrupt',
      corrupt.join(','),
      '--site',
      'features',
      '--sae',
      sae,
      '--metric',
      ref.metric_spec,
      '--top',
      '3',
      '--verify',
      '4',
      '--json',
      '--spec-out',
      spec,
    ];
    const r = await runCli(['attribute', dir('tiny-gemma3-random'), ...args]);
    expect(r.code, r.stderr).toBe(0);
    type Out = {
      hook: string;
      shape: number[];
      axes: string[];
      positions: number[];
      features: number[][];
      effects: (number | null)[][];
      corrupt: number;
      verified: Array<{ pos: number; feature: number; estimate: number; exact: number }>;
      max_error: number;
    };
    const out = JSON.parse(r.stdout.trim()) as Out;
    expect(out.hook).toBe('blocks.1.attn.hook_z');
    expect(out.shape).toEqual([clean.length, 3]);
    expect(out.axes).toEqual(['pos', 'rank']);
    const atp = new SafetensorsFile(new Uint8Array(readFileSync(dir('saes/sae_grads.safetensors'))), 'sae_grads.safetensors').float32('gemma_err/atp_features'); // [T, d_sae]
    const F = atp.length / clean.length;
    const cells = out.positions.flatMap((p, i) => out.features[i].map((f, r) => ({ p, f, e: out.effects[i][r] }))).filter((c) => c.f >= 0);
    expect(cells.length).toBeGreaterThan(20);
    const tol = 1e-4 * maxAbs(atp);
    for (const c of cells) expect(Math.abs(c.e! - atp[c.p * F + c.f]), `pos ${c.p} feature ${c.f}`).toBeLessThanOrEqual(tol);
    expect(Math.abs(out.corrupt - ref.corrupt_metric)).toBeLessThan(1e-4);
    expect(out.verified).toHaveLength(4);
    const exactMax = Math.max(...ref.exact.flat().map(Math.abs));
    for (const c of out.verified) expect(Math.abs(c.exact - ref.exact[c.pos][c.feature]), `pos ${c.pos} feature ${c.feature}`).toBeLessThanOrEqual(1e-4 * exactMax);

    // The spec it wrote (model and SAE relative to the file): patchbay run prints the same grid and verified cells.
    const written = parseSpec(JSON.parse(readFileSync(spec, 'utf8')));
    expect(written.experiment).toEqual({ kind: 'attribute', site: 'features', metric: ref.metric_spec, k: 3, verify: 4 });
    expect(written.sae).toEqual({ url: relative(join(tmp, 'specs'), sae) });
    expect(written.prompts).toEqual({ clean, corrupt });
    const run = await runCli(['run', spec, '--json']);
    expect(run.code, run.stderr).toBe(0);
    const again = JSON.parse(run.stdout.trim()) as Out & { kind: string; site: string };
    expect([again.kind, again.site]).toEqual(['attribute', 'features']);
    expect(again.features).toEqual(out.features);
    expect(again.effects).toEqual(out.effects);
    expect(again.verified).toEqual(out.verified);
    const text = await runCli(['run', spec]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/AtP on the SAE's features at blocks\.1\.attn\.hook_z/);
    expect(text.stdout).toContain(`pos ${out.verified[0].pos} feature #${out.verified[0].feature}`);
  });

  test("a spec with an attribute experiment on a site: atp.json's grid", async () => {
    const name = 'induction-2l';
    const atp = fixtureAtp(name);
    const [clean, corrupt] = fixtureCases(name).prompts;
    const spec = join(tmp, 'attribute-z.json');
    writeFileSync(spec, JSON.stringify({ patchbay: 2, model: { url: dir(name) }, prompts: { clean, corrupt }, experiment: { kind: 'attribute', site: 'resid_pre', metric: atp.metric_spec } }));
    const r = await runCli(['run', spec, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim()) as { method: string; axes: string[]; effects: number[][]; signed: boolean };
    expect([out.method, out.signed]).toEqual(['atp', true]);
    expect(out.axes).toEqual(atp.sites.resid_pre.axes);
    const ref = atp.sites.resid_pre.atp.flat();
    expect(maxAbsDiff(out.effects.flat(), ref)).toBeLessThanOrEqual(1e-4 * maxAbs(ref));
  });

  test('--sae without --site features, and atp* on features, fail with one line', async () => {
    const base = ['attribute', dir('tiny-gemma3-random'), '--clean', '1,2', '--corrupt', '1,3', '--metric', 'logit-diff:1:5:6'];
    const a = await runCli([...base, '--site', 'z', '--sae', dir(FEATURE_PATCHING.sae)]);
    expect(a.code).toBe(2);
    expect(a.errorLines).toEqual(["patchbay: --sae attributes to the SAE's features: use --site features (not --site z), or leave --sae out"]);
    const b = await runCli([...base, '--site', 'features', '--sae', dir(FEATURE_PATCHING.sae), '--method', 'atp*']);
    expect(b.code).toBe(2);
    expect(b.errorLines[0]).toMatch(/features take --method atp/);
    const c = await runCli([...base, '--site', 'features']);
    expect(c.errorLines).toEqual(['patchbay: --site features needs the SAE: --sae DIR']);
  });

  test('an unknown method fails with one line', async () => {
    const r = await runCli(['attribute', dir('tiny-gpt2-random'), '--clean', '1,2', '--corrupt', '1,3', '--site', 'z', '--metric', 'logit-diff:1:5:6', '--method', 'eap']);
    expect(r.code).toBe(2);
    expect(r.errorLines).toEqual(['patchbay: --method eap: unknown method; use atp or atp*']);
  });
});
