/**
 * runWithGrad's contract beyond the numbers: two runs give the same bits (fixed-order
 * reductions, no atomics), `accumulate` adds weight gradients across runs, a run too large for
 * the memory budget fails before allocating with the bytes needed, 'auto' memory falls back to
 * recomputing when keeping every layer would not fit, and the activation cache comes back too.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { OutOfMemoryError } from '../../src/gpu/errors.ts';
import { logitDiffMetric, lossMetric } from '../../src/model/metric.ts';
import { fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';
import { expectGradClose, fixtureGrads, fixtureWeightGrads } from '../helpers/grad-fixtures.ts';
import { gradPlanBytes } from '../../src/hooks/grad-run.ts';
import { tlWeightShapes } from '../../src/model/tl-weights.ts';

const name = 'tiny-llama-random';
const { prompts } = fixtureCases(name);
const metric = logitDiffMetric(12, 934, 3);

describe('runWithGrad contract', () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource(name));
  });
  afterAll(() => model?.destroy());

  it('two runs give the same bits, activations and weight gradients included', async () => {
    const bits = async () => {
      const r = await model.runWithGrad(prompts, metric, { cache: ['blocks.1.attn.hook_pattern'], grads: ['hook_embed', 'blocks.0.attn.hook_q'], weights: true });
      const out = [await r.grads.read('hook_embed'), await r.grads.read('blocks.0.attn.hook_q'), await r.cache.read('blocks.1.attn.hook_pattern')];
      const w = await r.weightGrads!.read();
      out.push(w.get('embed.W_E')!.data, w.get('blocks.0.attn._W_K')!.data);
      r.release();
      return out.map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength));
    };
    const [a, b] = [await bits(), await bits()];
    a.forEach((x, i) => expect(x.equals(b[i]), `tensor ${i}`).toBe(true));
  });

  it('accumulate adds the weight gradients of a second run', async () => {
    const loss = prompts.map((p) => lossMetric(p, 0, p.length - 1));
    const one = await model.runWithGrad(prompts, loss, { weights: true, grads: [] });
    const w1 = await one.weightGrads!.read();
    const two = await model.runWithGrad(prompts, loss, { weights: true, accumulate: true, grads: [] });
    const w2 = await two.weightGrads!.read();
    for (const n of ['embed.W_E', 'unembed.W_U', 'blocks.1.mlp.W_gate', 'ln_final.w']) {
      const a = w1.get(n)!.data;
      const b = w2.get(n)!.data;
      let worst = 0;
      let mx = 0;
      for (let i = 0; i < a.length; i++) {
        worst = Math.max(worst, Math.abs(b[i] - 2 * a[i]));
        mx = Math.max(mx, Math.abs(a[i]));
      }
      expect(worst, n).toBeLessThanOrEqual(1e-6 * mx);
    }
    expect(model.weightGrads).toBe(two.weightGrads);
    two.weightGrads!.release();
    expect(model.weightGrads).toBeNull();
  });

  it("weight gradients read back under TransformerLens' names and shapes, consistent with the checkpoint's", async () => {
    const r = await model.runWithGrad(prompts, metric, { weights: true, grads: [] });
    const tl = await r.weightGrads!.read();
    const want = [...tlWeightShapes(model.config)].filter(([n]) => n !== 'unembed.b_U');
    expect([...tl.keys()]).toEqual(want.map(([n]) => n));
    for (const [n, shape] of want) expect(tl.get(n)!.shape, n).toEqual(shape);
    const ck = await r.weightGrads!.toCheckpoint();
    // W_Q[h, c, d] is q_proj.weight[h * dh + d, c].
    const { n_heads: H, d_model: C, d_head: dh } = model.config;
    const wq = tl.get('blocks.1.attn.W_Q')!.data;
    const q = ck.get('model.layers.1.self_attn.q_proj.weight')!.data;
    for (const [h, c, d] of [
      [0, 0, 0],
      [3, 63, 15],
      [2, 17, 5],
    ])
      expect(wq[(h * C + c) * dh + d]).toBe(q[(h * dh + d) * C + c]);
    expect(tl.get('unembed.W_U')!.data[5 * model.config.d_vocab + 7]).toBe(ck.get('lm_head.weight')!.data[7 * C + 5]);
    void H;
    r.release();
  });

  it('returns the activations asked for beside the gradients', async () => {
    const r = await model.runWithGrad(prompts, metric, { cache: ['blocks.0.hook_resid_pre'], grads: ['blocks.0.hook_resid_pre'] });
    const plain = await model.run(prompts, { cache: ['blocks.0.hook_resid_pre'] });
    expect(Buffer.from((await r.cache.read('blocks.0.hook_resid_pre')).buffer).equals(Buffer.from((await plain.cache.read('blocks.0.hook_resid_pre')).buffer))).toBe(true);
    r.release();
    plain.release();
  });
});

describe('runWithGrad under a memory budget', () => {
  it('fails before allocating, naming the bytes, and auto falls back to recomputing layers', async () => {
    const gpu = await testGpu({ memoryBudgetBytes: 4 * 1024 * 1024 });
    const model = await loadModel(gpu, await fixtureSource(name));
    try {
      const T = prompts[0].length;
      const cfg = model.config;
      const total = (b: { forward: number; saved: number; scratch: number }) => b.forward + b.saved + b.scratch;
      const keep = gradPlanBytes(cfg, 2, T, [12], 'keep');
      const recompute = gradPlanBytes(cfg, 2, T, [12], 'recompute');
      expect(recompute.saved).toBeLessThan(keep.saved);
      // A budget that fits recomputing but not keeping every layer (plus 16 KiB for the outputs:
      // hook_embed's gradient, 6.5 KiB, and the metric's values).
      gpu.pool.budgetBytes = gpu.pool.weightBytes + gpu.pool.inUseBytes + (total(keep) + total(recompute)) / 2 + 16384;
      expect((total(keep) - total(recompute)) / 2).toBeGreaterThan(16384);
      const r = await model.runWithGrad(prompts, metric, { grads: ['hook_embed'] });
      expect(r.memory.mode).toBe('recompute');
      r.release();
      const before = gpu.pool.liveBytes;
      await expect(model.runWithGrad([prompts[0], prompts[1], prompts[0], prompts[1]], metric, { grads: ['hook_embed'], memory: 'keep' })).rejects.toThrow(OutOfMemoryError);
      await expect(model.runWithGrad([prompts[0], prompts[1], prompts[0], prompts[1]], metric, { memory: 'keep' })).rejects.toThrow(/this gradient run needs .* of GPU memory .* is available/);
      expect(gpu.pool.liveBytes).toBe(before);
    } finally {
      model.destroy();
    }
  });
});

describe('runWithGrad with the embedding split into row chunks (a 64 KiB binding limit)', () => {
  it('tiny-gpt2-random: hook and weight gradients still match PyTorch', async () => {
    const gpu = await testGpu({ maxBindingBytes: 64 * 1024 });
    const model = await loadModel(gpu, await fixtureSource('tiny-gpt2-random'));
    try {
      expect(model.embeddingChunks).toBeGreaterThan(1);
      const { prompts: p } = fixtureCases('tiny-gpt2-random');
      const ref = fixtureGrads('tiny-gpt2-random');
      const r = await model.runWithGrad(p, logitDiffMetric(10, 631, 751), { grads: ref.names });
      for (const n of ref.names) expectGradClose(n, await r.grads.read(n), ref.float32(n));
      r.release();
      const wRef = fixtureWeightGrads('tiny-gpt2-random');
      const w = await model.runWithGrad(
        p,
        p.map((t) => lossMetric(t, 0, t.length - 1)),
        { weights: true, grads: [] },
      );
      const got = await w.weightGrads!.toCheckpoint(wRef.names);
      for (const n of wRef.names) expectGradClose(n, got.get(n)!.data, wRef.float32(n));
      w.release();
    } finally {
      model.destroy();
    }
  });
});

describe('runWithGrad on weights processed as TransformerLens does (an unembedding bias)', () => {
  it("b_U's gradient: +1 / -1 per row at a logit difference's tokens; for a loss, each row's gradient sums to 0", async () => {
    const model = await loadModel(await testGpu(), await fixtureSource('tiny-gpt2-random'), { processing: 'transformer-lens' });
    try {
      const { prompts: p } = fixtureCases('tiny-gpt2-random');
      const r = await model.runWithGrad(p, logitDiffMetric(10, 631, 751), { weights: true, grads: [] });
      const bU = (await r.weightGrads!.read()).get('unembed.b_U')!.data;
      const want = new Float32Array(bU.length);
      want[631] = 2;
      want[751] = -2;
      expect([...bU]).toEqual([...want]);
      const loss = await model.runWithGrad(
        p,
        p.map((t) => lossMetric(t, 0, t.length - 1)),
        { weights: true, grads: [] },
      );
      const g = (await loss.weightGrads!.read()).get('unembed.b_U')!.data;
      expect(Math.abs(g.reduce((a, b) => a + b, 0))).toBeLessThan(1e-5);
      expect(Math.max(...g.map(Math.abs))).toBeGreaterThan(0.01);
      loss.release();
      r.release();
    } finally {
      model.destroy();
    }
  });
});
