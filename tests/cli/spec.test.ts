/**
 * Experiment specs on the command line: `--spec-out FILE` on `patch`, `ablate` and `sweep-ablate`
 * writes what the command ran, and `patchbay run FILE --json` runs it again to the same numbers;
 * bad spec files fail with one line naming the file and the field.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parseSpec } from '../../src/experiments/spec.ts';
import { fixtureCases } from '../helpers/fixtures.ts';
import { projectRoot, runCli } from '../helpers/run-cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'patchbay-spec-cli-'));
const model = resolve(projectRoot, 'tests/fixtures/induction-2l');
const c = fixtureCases('induction-2l');
const [clean, corrupt] = c.prompts;

const json = (s: string) => JSON.parse(s) as Record<string, unknown>;

describe('--spec-out and patchbay run', () => {
  test('patch: the spec it writes runs again to the same grid, with the model relative to the spec', async () => {
    const out = join(dir, 'sub', 'patch.json');
    const args = ['patch', model, '--clean', clean.join(','), '--corrupt', corrupt.join(','), '--site', 'z', '--metric', 'logit-diff:-1:247:72', '--normalize', '--json'];
    const patched = await runCli([...args, '--spec-out', out]);
    expect(patched.errorLines).toEqual([]);
    const spec = parseSpec(JSON.parse(readFileSync(out, 'utf8')));
    expect(spec.prompts).toEqual({ clean, corrupt });
    expect(spec.experiment).toEqual({ kind: 'patch', site: 'z', metric: 'logit-diff:-1:247:72', normalize: true });
    expect('url' in spec.model && resolve(join(dir, 'sub'), spec.model.url)).toBe(model);
    const run = await runCli(['run', out, '--json']);
    expect(run.errorLines).toEqual([]);
    const a = json(patched.stdout);
    const b = json(run.stdout);
    expect(b.values).toEqual(a.values);
    expect([b.clean, b.corrupt]).toEqual([a.clean, a.corrupt]);
  }, 120_000);

  test('ablate and sweep-ablate write specs that run again to the same metric', async () => {
    const ab = join(dir, 'ablate.json');
    const r1 = await runCli(['ablate', model, '--ids', clean.join(','), '--heads', '0.2,1.3', '--mode', 'mean', '--metric', 'logit-diff:16:247:72', '--json', '--spec-out', ab]);
    expect(r1.errorLines).toEqual([]);
    expect(json(readFileSync(ab, 'utf8')).interventions).toEqual([
      { op: 'mean', hook: 'blocks.0.attn.hook_z', head: 2 },
      { op: 'mean', hook: 'blocks.1.attn.hook_z', head: 3 },
    ]);
    const again = json((await runCli(['run', ab, '--json'])).stdout);
    expect(again.metric).toBeCloseTo(json(r1.stdout).metric as number, 5);

    const sw = join(dir, 'sweep.json');
    const r2 = await runCli(['sweep-ablate', model, '--ids', clean.join(','), '--metric', 'loss:-7:-1', '--json', '--spec-out', sw]);
    expect(r2.errorLines).toEqual([]);
    const s2 = json((await runCli(['run', sw, '--json'])).stdout);
    expect(s2.values).toEqual(json(r2.stdout).values);
    expect(s2.unablated).toBe(json(r2.stdout).unablated);
  }, 120_000);

  test('a bad spec file fails with one line naming the file and the field', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ patchbay: 1, model: { url: '.' }, prompts: { clean: [0, 1] }, experiment: { kind: 'patch', site: 'z', metric: 'loss:0:1' } }));
    const r = await runCli(['run', bad, '--json']);
    expect(r.code).toBe(2);
    expect(r.errorLines).toEqual([`patchbay: ${bad}: spec.prompts.corrupt: patching needs a corrupted prompt`]);
    const missing = await runCli(['run', join(dir, 'nope.json')]);
    expect(missing.code).toBe(2);
    expect(missing.errorLines[0]).toMatch(/no such spec file/);
    writeFileSync(bad, '{"patchbay": 1,');
    expect((await runCli(['run', bad])).errorLines[0]).toMatch(/is not valid JSON/);
  }, 60_000);
});
