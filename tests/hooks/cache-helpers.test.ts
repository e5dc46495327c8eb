/** Cache helpers: the identities TransformerLens users rely on, on a real checkpoint. */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model, RunResult } from '../../src/hooks/model.ts';
import { accumulatedResid, applyLnToStack, decomposeResid, logitDiff, stackHeadResults, sumStack } from '../../src/hooks/cache-helpers.ts';
import { loadCheckpoint } from '../../src/model/checkpoint.ts';
import { expectClose, maxAbsDiff } from '../helpers/compare.ts';
import { fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';

const NAME = 'induction-2l';
let model: Model;
let run: RunResult;

beforeAll(async () => {
  model = await loadModel(await testGpu(), await fixtureSource(NAME));
  run = await model.run(fixtureCases(NAME).prompts, { cache: () => true }); // every hook point, hook_result included
});
afterAll(() => {
  run?.release();
  model?.destroy();
});

describe('cache helpers', () => {
  it('the residual decomposition sums to the residual, at every layer and at the end', async () => {
    const L = model.config.n_layers;
    for (let l = 0; l <= L; l++) {
      const parts = await decomposeResid(run.cache, { layer: l });
      expect(parts.labels.length).toBe(2 + 2 * l);
      const target = l === L ? `blocks.${L - 1}.hook_resid_post` : `blocks.${l}.hook_resid_pre`;
      expectClose(`sum of components = ${target}`, sumStack(parts), await run.cache.read(target));
    }
    const mid = await decomposeResid(run.cache, { layer: 1, mlpInput: true });
    expect(mid.labels).toEqual(['embed', 'pos_embed', '0_attn_out', '0_mlp_out', '1_attn_out']);
    expectClose('mlp input of layer 1 = resid_mid', sumStack(mid), await run.cache.read('blocks.1.hook_resid_mid'));
  });

  it('stacked head results summed over heads plus b_O equal hook_attn_out', async () => {
    const s = await stackHeadResults(run.cache);
    const { n_layers: L, n_heads: H, d_model: C } = model.config;
    expect(s.shape[0]).toBe(L * H);
    expect(s.labels.slice(0, 2)).toEqual(['L0H0', 'L0H1']);
    const ckpt = await loadCheckpoint(await fixtureSource(NAME));
    const inner = s.data.length / (L * H);
    for (let l = 0; l < L; l++) {
      const b_O = await ckpt.tensors.read(`transformer.h.${l}.attn.c_proj.bias`);
      const sum = new Float32Array(inner);
      for (let h = 0; h < H; h++) for (let i = 0; i < inner; i++) sum[i] += s.data[(l * H + h) * inner + i];
      for (let i = 0; i < inner; i++) sum[i] += b_O[i % C];
      expectClose(`layer ${l} heads + b_O = hook_attn_out`, sum, await run.cache.read(`blocks.${l}.hook_attn_out`));
    }
  });

  it('the logit lens of the final residual equals the logits; earlier layers give other predictions', async () => {
    const acc = await accumulatedResid(run.cache);
    expect(acc.labels).toEqual(['0_pre', '1_pre', 'final_post']);
    const n = acc.data.length / acc.labels.length;
    const finalLens = await model.logitLens(acc.data.subarray(2 * n));
    const logits = await run.logits.read();
    expectClose('logit lens(final_post) = logits', finalLens, logits);
    expect(maxAbsDiff(await model.logitLens(acc.data.subarray(n, 2 * n)), logits)).toBeGreaterThan(0.1);
  });

  it('applyLnToStack divides centred components by the cached scale, so they sum to the centred, scaled residual', async () => {
    const parts = await decomposeResid(run.cache);
    const scaled = await applyLnToStack(run.cache, parts);
    const resid = await run.cache.read('blocks.1.hook_resid_post');
    const scale = await run.cache.read('ln_final.hook_scale');
    const C = model.config.d_model;
    const expected = new Float32Array(resid.length);
    for (let r = 0; r < resid.length / C; r++) {
      let mean = 0;
      for (let c = 0; c < C; c++) mean += resid[r * C + c] / C;
      for (let c = 0; c < C; c++) expected[r * C + c] = (resid[r * C + c] - mean) / scale[r];
    }
    expectClose('sum of LN-scaled components', sumStack(scaled), expected);
  });

  it("logit difference and its residual direction: ln_final's gain times W_U[:, good] - W_U[:, bad], plus the logit bias", async () => {
    const { metric, clean_logit_diff } = fixtureCases(NAME);
    const logits = await run.logits.read();
    expect(Math.abs(logitDiff(logits, run.logits.shape, metric.position, metric.good_token, metric.bad_token) - clean_logit_diff)).toBeLessThan(1e-3);
    // The direction dotted with ln_final's normalized input (before its gain and bias) at the
    // metric position, plus what the unembedding adds whatever the input (ln_final's bias
    // through W_U: this checkpoint has no b_U), gives the same number.
    const dir = await model.logitDiffDirection(metric.good_token, metric.bad_token);
    const normalized = await run.cache.read('ln_final.hook_normalized');
    const C = model.config.d_model;
    let dot = 0;
    for (let c = 0; c < C; c++) dot += dir[c] * normalized[metric.position * C + c];
    const bias = (await model.logitBias(metric.good_token)) - (await model.logitBias(metric.bad_token));
    expect(Math.abs(bias)).toBeGreaterThan(1e-3); // LayerNorm's bias does reach this logit difference
    expect(Math.abs(dot + bias - clean_logit_diff)).toBeLessThan(1e-3);
    // W_U's own columns, unscaled, as the weights hold them.
    const W_U = await model.weight('unembed.W_U');
    const gain = (await model.weight('ln_final.w')).data;
    const V = model.config.d_vocab;
    const want = Float32Array.from({ length: C }, (_, c) => gain[c] * (W_U.data[c * V + metric.good_token] - W_U.data[c * V + metric.bad_token]));
    expectClose('direction', dir, want);
    expect(() => logitDiff(logits, run.logits.shape, 99, 1, 2)).toThrow(/position 99 is out of range/);
  });
});
