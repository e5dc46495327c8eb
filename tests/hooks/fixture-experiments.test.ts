/**
 * The experiments Hugging Face + PyTorch hooks recorded in cases.json, reproduced with
 * interventions: zero-ablating each head's hook_z on the clean prompt (metric and the first 64
 * logits at the metric position), and patching each (layer, position) of hook_resid_pre from the
 * clean run into the corrupted one. To 1e-3 absolute, as the fixture README expects.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { patchFrom, zeroHead } from '../../src/hooks/interventions.ts';
import { maxAbsDiff } from '../helpers/compare.ts';
import { GPT2_EXPERIMENT_FIXTURES, fixtureCases, fixtureSource, type Cases } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';

const TOL = 1e-3;

function logitDiff(logits: Float32Array, V: number, T: number, m: Cases['metric'], row = 0): number {
  const base = (row * T + m.position) * V;
  return logits[base + m.good_token] - logits[base + m.bad_token];
}

describe.each(GPT2_EXPERIMENT_FIXTURES)('%s experiments from cases.json', (name) => {
  let model: Model;
  let cases: Cases;
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource(name));
    cases = fixtureCases(name);
  });
  afterAll(() => model?.destroy());

  it('clean and corrupted logit differences', async () => {
    const r = await model.run(cases.prompts);
    const logits = await r.logits.read();
    const T = cases.prompts[0].length;
    expect(Math.abs(logitDiff(logits, model.config.d_vocab, T, cases.metric, 0) - cases.clean_logit_diff)).toBeLessThanOrEqual(TOL);
    expect(Math.abs(logitDiff(logits, model.config.d_vocab, T, cases.metric, 1) - cases.corrupt_logit_diff)).toBeLessThanOrEqual(TOL);
    r.release();
  });

  it('zero-ablating each head (metric and 64 logits)', async () => {
    const [clean] = cases.prompts;
    const T = clean.length;
    const V = model.config.d_vocab;
    let worst = 0;
    for (const c of cases.head_zero_ablation_on_clean) {
      const r = await model.runWithHooks([clean], [zeroHead(c.layer, c.head)]);
      const logits = await r.logits.read();
      const metric = logitDiff(logits, V, T, cases.metric);
      const first = (c.logits_at_pos ?? c.logits_at_position_first64)!;
      const row = logits.subarray(cases.metric.position * V, cases.metric.position * V + first.length);
      const err = Math.max(Math.abs(metric - c.logit_diff), maxAbsDiff(row, first));
      expect(err, `head ${c.layer}.${c.head}`).toBeLessThanOrEqual(TOL);
      worst = Math.max(worst, err);
      r.release();
    }
    console.log(`${name}: ${cases.head_zero_ablation_on_clean.length} head ablations, max |error| ${worst.toExponential(2)}`);
  });

  it('patching resid_pre from clean into corrupted at every (layer, position)', async () => {
    const [clean, corrupt] = cases.prompts;
    const T = clean.length;
    const V = model.config.d_vocab;
    const cleanRun = await model.run([clean], { cache: /hook_resid_pre$/ });
    let worst = 0;
    for (let l = 0; l < model.config.n_layers; l++) {
      for (let p = 0; p < T; p++) {
        const hook = `blocks.${l}.hook_resid_pre`;
        const r = await model.runWithHooks([corrupt], [patchFrom(hook, cleanRun.cache, { pos: p })]);
        const err = Math.abs(logitDiff(await r.logits.read(), V, T, cases.metric) - cases.resid_pre_patch_corrupt_from_clean[l][p]);
        expect(err, `${hook} pos ${p}`).toBeLessThanOrEqual(TOL);
        worst = Math.max(worst, err);
        r.release();
      }
    }
    cleanRun.release();
    console.log(`${name}: resid_pre patching grid, max |error| ${worst.toExponential(2)}`);
  });

  it('the same patches, all in one batched pass (one row per patch)', async () => {
    const [clean, corrupt] = cases.prompts;
    const T = clean.length;
    const L = model.config.n_layers;
    const V = model.config.d_vocab;
    const cleanRun = await model.run([clean], { cache: /hook_resid_pre$/ });
    const rows = Array.from({ length: L * T }, () => corrupt);
    const hooks = [];
    for (let l = 0; l < L; l++) for (let p = 0; p < T; p++) hooks.push(patchFrom(`blocks.${l}.hook_resid_pre`, cleanRun.cache, { batch: l * T + p, pos: p }));
    const r = await model.runWithHooks(rows, hooks);
    const logits = await r.logits.read();
    for (let l = 0; l < L; l++) {
      for (let p = 0; p < T; p++) {
        expect(Math.abs(logitDiff(logits, V, T, cases.metric, l * T + p) - cases.resid_pre_patch_corrupt_from_clean[l][p])).toBeLessThanOrEqual(TOL);
      }
    }
    r.release();
    cleanRun.release();
  });
});
