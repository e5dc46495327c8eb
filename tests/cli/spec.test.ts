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
import { parseSafetensorsHeader } from '../../src/model/safetensors.ts';
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
      { op: 'mean', hook: 'blocks.0.attn.hook_z', heads: [2], pooled: true, from: 'clean' },
      { op: 'mean', hook: 'blocks.1.attn.hook_z', heads: [3], pooled: true, from: 'clean' },
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

  test('interventions a model does not have fail before anything runs, naming the field, with a suggestion', async () => {
    const bad = join(dir, 'hook.json');
    const base = { patchbay: 2, model: { url: model }, prompts: { clean }, experiment: { kind: 'ablate' } };
    writeFileSync(bad, JSON.stringify({ ...base, interventions: [{ op: 'zero', hook: 'blocks.0.attn.hook_zz' }] }));
    const r = await runCli(['run', bad, '--json']);
    expect(r.code).toBe(2);
    expect(r.errorLines[0]).toMatch(/spec\.interventions\[0\]\.hook: unknown hook point "blocks\.0\.attn\.hook_zz"; did you mean blocks\.0\.attn\.hook_z/);
    writeFileSync(bad, JSON.stringify({ ...base, interventions: [{ op: 'zero', hook: 'blocks.0.hook_resid_pre', pos: -18 }] }));
    expect((await runCli(['run', bad, '--json'])).errorLines[0]).toMatch(/spec\.interventions\[0\]\.pos: position -18 is outside this 17-token prompt/);
    writeFileSync(bad, JSON.stringify({ ...base, prompts: { clean, reference: [[0, 1, 2]] }, interventions: [{ op: 'mean', hook: 'blocks.0.hook_resid_pre' }] }));
    expect((await runCli(['run', bad, '--json'])).errorLines[0]).toMatch(/the reference prompts have 3 tokens and the clean 17; a per-position mean needs the same length \(or "pooled": true\)/);
  }, 60_000);

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

  test('an SAE in the spec: steering by a feature adds its decoder row; the snapshot shows what patchbay features and patchbay run print', async () => {
    const gemma = resolve(projectRoot, 'demos/models/tiny-gemma3-random');
    const saeDir = join(gemma, 'sae-resid-post-3');
    const ids = [2, 474, 513, 755, 950, 37, 146, 823, 948, 251, 313, 869, 425, 275, 828, 259, 410, 644, 550, 88, 30];
    const f = 17;
    // W_dec[f] from the SAE's own file, [d_sae, d_in] float32.
    const bytes = new Uint8Array(readFileSync(join(saeDir, 'sae_weights.safetensors')));
    const h = parseSafetensorsHeader(bytes);
    const info = h.tensors.get('W_dec')!;
    expect(info.dtype).toBe('F32');
    const d = info.shape[1];
    const start = h.dataOffset + info.begin + f * d * 4;
    const row = Array.from(new Float32Array(bytes.slice(start, start + d * 4).buffer));
    const base = { patchbay: 2, model: { url: gemma }, prompts: { clean: ids }, experiment: { kind: 'ablate', metric: 'logprob:-1:11' } };
    const steer = { op: 'add', hook: 'blocks.3.hook_resid_post', feature: f, coeff: 6 };
    const withSae = join(dir, 'steer-feature.json');
    writeFileSync(withSae, JSON.stringify({ ...base, sae: { url: saeDir }, interventions: [steer] }));
    const withVector = join(dir, 'steer-vector.json');
    writeFileSync(withVector, JSON.stringify({ ...base, interventions: [{ op: 'add', hook: 'blocks.3.hook_resid_post', vector: row, coeff: 6 }] }));
    const ablated = join(dir, 'steer-ablate.json');
    writeFileSync(
      ablated,
      JSON.stringify({ ...base, sae: { url: saeDir }, interventions: [steer, { op: 'zero', hook: 'blocks.3.hook_resid_post.hook_sae_acts_post', heads: [3, 40] }], view: { feature: f } }),
    );
    const [ra, rb, rc] = await Promise.all(
      [withSae, withVector, ablated].map(async (path) => {
        const r = await runCli(['run', path, '--json']);
        expect(r.errorLines, path).toEqual([]);
        return json(r.stdout);
      }),
    );
    // Spliced with its error term, the SAE leaves the run unchanged but for what is done to it:
    // steering by feature f is adding W_dec[f].
    expect(Math.abs((ra.metric as number) - (rb.metric as number))).toBeLessThan(1e-4);
    expect(Math.abs((ra.metric as number) - (ra.unablated as number))).toBeGreaterThan(1e-3);
    // Zeroing two active features moves it again.
    expect(Math.abs((rc.metric as number) - (ra.metric as number))).toBeGreaterThan(1e-3);

    const out = join(dir, 'features-snapshot.json');
    const snap = await runCli(['snapshot', ablated, '--out', out]);
    expect(snap.errorLines).toEqual([]);
    const fs = JSON.parse(readFileSync(out, 'utf8')).features;
    expect(fs.selected).toBe(f);
    expect(fs.steer).toEqual({ feature: f, coeff: 6 });
    expect(fs.ablated).toEqual([3, 40]);
    // The next token with the interventions: patchbay run's top 5, to the snapshot's 6 digits.
    (rc.top as [number, number][]).forEach(([id, p], i) => {
      expect(fs.next.top[i][0]).toBe(id);
      expect(Math.abs(fs.next.top[i][1] - p)).toBeLessThan(1e-5 * Math.max(1, p));
    });
    // The top features per position: what patchbay features prints for the same prompt.
    const feats = await runCli(['features', gemma, '--sae', saeDir, '--ids', ids.join(','), '--top', '8', '--json']);
    const rows = (json(feats.stdout).rows as { features: [number, number][] }[][])[0];
    rows.forEach((r, pos) => {
      expect(fs.top[pos].map((x: number[]) => x[0])).toEqual(r.features.map((x) => x[0]));
      r.features.forEach(([, act], i) => expect(Math.abs(fs.top[pos][i][1] - act)).toBeLessThan(1e-5 * Math.max(1, act)));
    });
  }, 120_000);
});
