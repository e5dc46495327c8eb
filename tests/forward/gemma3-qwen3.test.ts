/**
 * Gemma 3 and Qwen3 against Hugging Face (`tests/fixtures/tiny-gemma3-random`,
 * `tiny-qwen3-random`, made by `make/hf_more.py`): resid_pre of every layer, every attention
 * pattern (Gemma's sliding-window layers included) and the logits, per tensor to
 * 1e-4 × max(1, max |reference|); every hook point against the CPU reference forward; the
 * forward's sites are the planned hook points, in order. The families' own steps: Gemma's (1 + w)
 * norms, post-attention and post-MLP norms (ln1_post, ln2_post), per-head q/k norms
 * (attn.q_norm, attn.k_norm, also Qwen3's), GeGLU, the sqrt(d_model) embedding scale,
 * query_pre_attn_scalar and per-layer rotary bases.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { loadCheckpoint } from '../../src/model/checkpoint.ts';
import { hostWeightsFor } from '../../src/model/host-weights-for.ts';
import { forwardCpu } from '../../src/model/forward.cpu.ts';
import { processWeights } from '../../src/model/processing.ts';
import { buildForward } from '../../src/model/forward.ts';
import { hookShapes } from '../../src/model/hook-points.ts';
import { expectClose } from '../helpers/compare.ts';
import { finiteParts } from '../helpers/tl.ts';
import { fixtureActivations, fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';

describe.each(['tiny-gemma3-random', 'tiny-qwen3-random'] as const)('%s', (name) => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource(name));
  });
  afterAll(() => model?.destroy());

  it('reads the config', () => {
    const c = model.config;
    if (name === 'tiny-gemma3-random') {
      expect(c).toMatchObject({
        family: 'gemma3',
        post_norms: true,
        qk_norm: true,
        gated_mlp: true,
        act_fn: 'gelu_new',
        embed_scale: 8,
        attn_scale: 4,
        window_size: 8,
        rotary_base: 1e6,
        rotary_base_local: 1e4,
        tied_embeddings: true,
      });
      expect(c.attn_types).toEqual(['local', 'local', 'local', 'local', 'local', 'global']);
    } else {
      expect(c).toMatchObject({ family: 'llama', qk_norm: true, n_key_value_heads: 2, tied_embeddings: false });
      expect(c.post_norms).toBeFalsy();
    }
  });

  it('matches Hugging Face', async () => {
    const ref = fixtureActivations(name);
    const { prompts } = fixtureCases(name);
    const result = await model.run(prompts, { cache: ref.names.filter((n) => n !== 'logits') });
    const report: string[] = [];
    for (const n of ref.names) {
      const t = n === 'logits' ? result.logits : result.cache.get(n);
      expect(t.shape, n).toEqual(ref.info(n).shape);
      report.push(`${n}: ${expectClose(n, await t.read(), ref.float32(n)).toExponential(2)}`);
    }
    console.log(`${name}: ${report.join(', ')}`);
    result.release();
  });

  it('every hook point matches the CPU reference forward', async () => {
    const ckpt = await loadCheckpoint(await fixtureSource(name));
    const host = await hostWeightsFor(ckpt.tensors, ckpt.config, ckpt.hfConfig);
    const { prompts } = fixtureCases(name);
    const cpu = forwardCpu(model.config, host, prompts);
    const gpu = await model.run(prompts, { cache: () => true });
    const names = gpu.cache.names.filter((n) => !n.endsWith('hook_result'));
    expect(new Set(names)).toEqual(new Set([...cpu.keys()].filter((n) => n !== 'logits')));
    for (const n of names) {
      let got = await gpu.cache.read(n);
      let want = cpu.get(n)!;
      if (n.endsWith('hook_attn_scores')) {
        // Masked scores (causal, and the sliding window's) are -inf in both; compare the mask, then the rest.
        expect(got.map((x) => +(x === -Infinity))).toEqual(want.map((x) => +(x === -Infinity)));
        got = got.map((x) => (x === -Infinity ? 0 : x));
        want = want.map((x) => (x === -Infinity ? 0 : x));
      }
      expectClose(n, got, want);
    }
    expectClose('logits', await gpu.logits.read(), cpu.get('logits')!);
    gpu.release();
  });

  it('the forward places a site at each hook point, in order, with the planned shape', async () => {
    const weights = (model as unknown as { weights: Parameters<typeof buildForward>[2] }).weights;
    const shapes = hookShapes(model.config, 2, 5);
    const full = buildForward(model.gpu, model.config, weights, { batch: 2, pos: 5, withResult: true });
    expect([...full.sites.keys()]).toEqual([...shapes.keys()]);
    for (const [n, s] of full.sites) expect(s.shape, n).toEqual(shapes.get(n));
    full.destroy();
  });

  it('TransformerLens processing keeps the q/k norms and post-norms: every activation but the logits unchanged, log-probabilities too', async () => {
    // RMSNorm models: fold_ln scales rows only and nothing is centred, so the residual stream
    // itself stays; center_unembed moves each position's logits by a constant.
    const processed = await loadModel(await testGpu(), await fixtureSource(name), { processing: 'transformer-lens' });
    const { prompts } = fixtureCases(name);
    const [a, b] = [await model.run(prompts, { cache: () => true }), await processed.run(prompts, { cache: () => true })];
    try {
      for (const n of a.cache.names.filter((x) => !x.startsWith('unembed.'))) {
        const [got, want] = finiteParts(await b.cache.read(n), await a.cache.read(n), n);
        expectClose(`${n} (processed vs raw)`, got, want);
      }
      const V = model.config.d_vocab;
      const logSoftmax = (x: Float32Array) => {
        const out = new Float32Array(x.length);
        for (let r = 0; r < x.length / V; r++) {
          const row = x.subarray(r * V, (r + 1) * V);
          const m = Math.max(...row);
          const lse = m + Math.log(row.reduce((s2, u) => s2 + Math.exp(u - m), 0));
          for (let i = 0; i < V; i++) out[r * V + i] = row[i] - lse;
        }
        return out;
      };
      expectClose('log-probabilities (processed vs raw)', logSoftmax(await b.logits.read()), logSoftmax(await a.logits.read()));
    } finally {
      a.release();
      b.release();
      processed.destroy();
    }
  });

  it('under a final logit soft-cap, processing leaves the logits themselves unchanged (no center_unembed, as TransformerLens)', async () => {
    const ckpt = await loadCheckpoint(await fixtureSource(name));
    const host = await hostWeightsFor(ckpt.tensors, ckpt.config, ckpt.hfConfig);
    const capped = { ...model.config, output_logits_soft_cap: 2 };
    const { prompts } = fixtureCases(name);
    const raw = forwardCpu(capped, host, prompts).get('logits')!;
    expectClose('soft-capped logits (processed vs raw)', forwardCpu(capped, processWeights(capped, host), prompts).get('logits')!, raw);
  });
});
