/**
 * TransformerLens' weight processing (`loadModel(..., { processing: 'transformer-lens' })`)
 * against what TransformerLens itself made on the same checkpoints: the processed state dict
 * (`tl/processed_weights.safetensors`) and the whole default cache of the processed model
 * (`tl/processed.safetensors`), every tensor, max |error| <= 1e-4 * max(1, max |reference|).
 * And what processing must not change: attention, MLP activations, log-probabilities.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { loadCheckpoint } from '../../src/model/checkpoint.ts';
import { hostWeightsFor } from '../../src/model/host-weights-for.ts';
import { processWeights } from '../../src/model/processing.ts';
import { forwardCpu } from '../../src/model/forward.cpu.ts';
import { expectClose, maxAbsDiff, tolerance } from '../helpers/compare.ts';
import { fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';
import { TL_FIXTURES, finiteParts, tlSafetensors, tlStateDict } from '../helpers/tl.ts';

describe.each(TL_FIXTURES)('%s processed as TransformerLens does', (name) => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource(name), { processing: 'transformer-lens' });
  });
  afterAll(() => model?.destroy());

  it("the processed weights equal TransformerLens' processed state dict", async () => {
    const ckpt = await loadCheckpoint(await fixtureSource(name));
    const processed = processWeights(ckpt.config, await hostWeightsFor(ckpt.tensors, ckpt.config, ckpt.hfConfig));
    const ours = tlStateDict(ckpt.config, processed);
    const ref = tlSafetensors(name, 'processed_weights.safetensors');
    // Buffers, not parameters: the causal mask's fill value and the rotary tables.
    const compared = ref.names.filter((n) => !/\.(IGNORE|rotary_cos|rotary_sin)$/.test(n));
    let worst = 0;
    for (const n of compared) {
      const mine = ours.get(n);
      expect(mine, `${n} is in TransformerLens' state dict`).toBeDefined();
      expect(mine!.shape, n).toEqual(ref.info(n).shape);
      const want = ref.float32(n);
      worst = Math.max(worst, expectClose(n, mine!.data, want) / tolerance(want));
      ours.delete(n);
    }
    // What TransformerLens drops: the folded norms (all gains 1, biases 0) and zero biases it never had.
    for (const [n, t] of ours) {
      if (/\.(ln1|ln2|ln_final)\.w$|^ln_final\.w$/.test(n))
        expect(
          t.data.every((x) => x === 1),
          n,
        ).toBe(true);
      else
        expect(
          t.data.every((x) => x === 0),
          `${n} is absent from TransformerLens' dict, so must be zero`,
        ).toBe(true);
    }
    console.log(`${name}: ${compared.length} processed weights, worst diff/tolerance ${worst.toFixed(3)}`);
  });

  it("the loaded model's weights under TransformerLens' names are the processed ones", async () => {
    const ref = tlSafetensors(name, 'processed_weights.safetensors');
    for (const n of ref.names.filter((x) => !/\.(IGNORE|rotary_cos|rotary_sin)$/.test(x))) {
      const t = await model.weight(n);
      expect(t.shape, n).toEqual(ref.info(n).shape);
      expectClose(`model.weight('${n}')`, t.data, ref.float32(n));
    }
  });

  it("the cache and logits equal TransformerLens' processed cache, every tensor", async () => {
    const ref = tlSafetensors(name, 'processed.safetensors');
    const { prompts } = fixtureCases(name);
    // The default runWithCache holds exactly TransformerLens' hook points.
    const result = await model.runWithCache(prompts);
    expect(new Set([...result.cache.names, 'logits'])).toEqual(new Set(ref.names));
    const report: string[] = [];
    let worst = 0;
    for (const n of ref.names) {
      const t = n === 'logits' ? result.logits : result.cache.get(n);
      expect(t.shape, n).toEqual(ref.info(n).shape);
      const [got, want] = finiteParts(await t.read(), ref.float32(n), n);
      const diff = expectClose(n, got, want);
      worst = Math.max(worst, diff / tolerance(want));
      report.push(`${n} ${diff.toExponential(1)}`);
    }
    console.log(`${name} processed: ${report.length} tensors, worst diff/tolerance ${worst.toFixed(3)}`);
    result.release();
  });

  it('the CPU reference forward on the processed weights gives the same logits', async () => {
    const ckpt = await loadCheckpoint(await fixtureSource(name));
    const processed = processWeights(ckpt.config, await hostWeightsFor(ckpt.tensors, ckpt.config, ckpt.hfConfig));
    const { prompts } = fixtureCases(name);
    const cpu = forwardCpu(ckpt.config, processed, prompts);
    const gpu = await model.run(prompts);
    expectClose('logits', await gpu.logits.read(), cpu.get('logits')!);
    gpu.release();
  });

  it('processing leaves attention, MLP activations, norm scales, normalized norm inputs and log-probabilities unchanged', async () => {
    const raw = await loadModel(await testGpu(), await fixtureSource(name));
    const { prompts } = fixtureCases(name);
    const same = /(hook_q|hook_k|hook_rot_q|hook_rot_k|hook_attn_scores|hook_pattern|mlp\.hook_pre|mlp\.hook_pre_linear|mlp\.hook_post|hook_scale|hook_normalized)$/;
    const changed = /(hook_embed|hook_pos_embed|hook_resid_pre|hook_resid_mid|hook_resid_post|hook_attn_out|hook_mlp_out)$/;
    const [a, b] = [await raw.run(prompts, { cache: () => true }), await model.run(prompts, { cache: () => true })];
    try {
      for (const n of a.cache.names.filter((x) => same.test(x))) {
        const [got, want] = finiteParts(await b.cache.read(n), await a.cache.read(n), n);
        expectClose(`${n} (processed vs raw)`, got, want);
      }
      // Logits move by a constant per position (center_unembed): log-softmax does not.
      const [la, lb] = [await a.logits.read(), await b.logits.read()];
      const V = model.config.d_vocab;
      const logSoftmax = (x: Float32Array) => {
        const out = new Float32Array(x.length);
        for (let r = 0; r < x.length / V; r++) {
          const row = x.subarray(r * V, (r + 1) * V);
          const m = Math.max(...row);
          const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
          for (let i = 0; i < V; i++) out[r * V + i] = row[i] - lse;
        }
        return out;
      };
      expectClose('log-probabilities (processed vs raw)', logSoftmax(lb), logSoftmax(la));
      // The residual stream itself does change (centred writing weights, folded biases) on LayerNorm models.
      if (model.config.normalization === 'LN') {
        const n = a.cache.names.find((x) => changed.test(x) && x.endsWith('hook_resid_post'))!;
        expect(maxAbsDiff(await a.cache.read(n), await b.cache.read(n))).toBeGreaterThan(1e-3);
      }
    } finally {
      a.release();
      b.release();
      raw.destroy();
    }
  });
});

describe('processing option', () => {
  it('an unknown processing is refused before anything is read', async () => {
    const gpu = await testGpu();
    await expect(loadModel(gpu, await fixtureSource('tiny-gpt2-random'), { processing: 'fold' as never })).rejects.toThrow(/unknown weight processing "fold"; use none or transformer-lens/);
  });
});
