/**
 * `model.run`'s TransformerLens options: returnType 'loss' / 'both' with lossPerToken (against
 * the cross-entropy computed in float64 from TransformerLens' own logits, tl/raw.safetensors),
 * stopAtLayer / startAtLayer (stop then start reproduces the full run), and the unembed hook
 * points.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { Tensor } from '../../src/gpu/tensor.ts';
import { forwardCpu } from '../../src/model/forward.cpu.ts';
import { loadCheckpoint } from '../../src/model/checkpoint.ts';
import { hostWeightsFor } from '../../src/model/host-weights-for.ts';
import { addVector, zeroAblate } from '../../src/hooks/interventions.ts';
import { expectClose, maxAbsDiff } from '../helpers/compare.ts';
import { FIXTURES, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';
import { mulberry32 } from '../helpers/synthetic.ts';

const FAMILIES = ['tiny-gpt2-random', 'tiny-neox-random', 'tiny-llama-random'] as const;

const tl = (name: string) => new SafetensorsFile(new Uint8Array(readFileSync(join(FIXTURES, name, 'tl', 'raw.safetensors'))), 'raw.safetensors');
const tlPrompts = (name: string): number[][] => (JSON.parse(readFileSync(join(FIXTURES, name, 'tl', 'versions.json'), 'utf8')) as { prompts: number[][] }).prompts;

/** Cross-entropy of predicting tokens[b][p + 1] from logits [B, T, V] at p, float64: [B, T - 1]. */
function crossEntropy(logits: Float32Array, tokens: number[][], V: number): number[][] {
  const T = tokens[0].length;
  return tokens.map((row, b) =>
    Array.from({ length: T - 1 }, (_, p) => {
      const r = logits.subarray((b * T + p) * V, (b * T + p + 1) * V);
      let mx = -Infinity;
      for (const x of r) mx = Math.max(mx, x);
      let s = 0;
      for (const x of r) s += Math.exp(x - mx);
      return mx + Math.log(s) - r[row[p + 1]];
    }),
  );
}

describe.each(FAMILIES)('%s', (name) => {
  let model: Model;
  let prompts: number[][];
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource(name));
    prompts = tlPrompts(name);
  });
  afterAll(() => model?.destroy());

  it("returnType 'loss' and 'both', lossPerToken: TransformerLens' cross-entropy from its logits", async () => {
    const V = model.config.d_vocab;
    const want = crossEntropy(tl(name).float32('logits'), prompts, V);
    const flat = want.flat();
    const mean = flat.reduce((a, x) => a + x, 0) / flat.length;
    const loss = await model.run(prompts, { returnType: 'loss' });
    expect(loss.loss.shape).toEqual([]);
    const [got] = await loss.loss.read();
    expect(Math.abs(got - mean), `mean loss ${got} vs ${mean}`).toBeLessThanOrEqual(1e-4 * Math.max(1, mean));
    expect(() => loss.logits).toThrow(/returned no logits \(returnType: 'loss'\); ask for returnType: 'both'/);
    const both = await model.run(prompts, { returnType: 'both', lossPerToken: true });
    expect(both.loss.shape).toEqual([prompts.length, prompts[0].length - 1]);
    expectClose('loss per token', await both.loss.read(), flat);
    expectClose('logits', await both.logits.read(), tl(name).float32('logits'));
    const plain = await model.run(prompts);
    expect(() => plain.loss).toThrow(/computed no loss; ask for returnType: 'loss' or 'both'/);
    expect(() => plain.residual).toThrow(/output of a run with stopAtLayer/);
    for (const r of [loss, both, plain]) r.release();
  });

  it('stopAtLayer returns the residual stream entering that layer; startAtLayer from it reproduces the logits', async () => {
    const L = model.config.n_layers;
    const full = await model.runWithCache(prompts);
    const logits = await full.logits.read();
    for (let l = 0; l <= L; l++) {
      const stop = await model.runWithCache(prompts, { stopAtLayer: l });
      const resid = await stop.residual.read();
      const want = l < L ? await full.cache.read(`blocks.${l}.hook_resid_pre`) : await full.cache.read(`blocks.${L - 1}.hook_resid_post`);
      expect(maxAbsDiff(resid, want), `residual entering ${l}`).toBe(0);
      expect(stop.cache.names.every((n) => !/^(ln_final|unembed)\./.test(n) && !new RegExp(`^blocks\\.(${Array.from({ length: L - l }, (_, i) => l + i).join('|') || 'x'})\\.`).test(n))).toBe(true);
      expect(() => stop.logits).toThrow(new RegExp(`stopped before layer ${l}`));
      const start = await model.runWithCache(stop.residual, { startAtLayer: l });
      expect(maxAbsDiff(await start.logits.read(), logits), `logits from layer ${l}`).toBe(0);
      expect(start.cache.has('hook_embed')).toBe(false);
      if (l < L) expect(maxAbsDiff(await start.cache.read(`blocks.${l}.attn.hook_pattern`), await full.cache.read(`blocks.${l}.attn.hook_pattern`))).toBe(0);
      stop.release();
      start.release();
    }
    // Negative layers count from the end, as in TransformerLens.
    const neg = await model.run(prompts, { stopAtLayer: -1 });
    expect(maxAbsDiff(await neg.residual.read(), await full.cache.read(`blocks.${L - 1}.hook_resid_pre`))).toBe(0);
    // From a residual with the tokens: the loss.
    const withLoss = await model.run(neg.residual, { startAtLayer: -1, tokens: prompts, returnType: 'both' });
    const whole = await model.run(prompts, { returnType: 'loss' });
    expect(maxAbsDiff(await withLoss.loss.read(), await whole.loss.read())).toBe(0);
    for (const r of [full, neg, withLoss, whole]) r.release();
  });

  it('errors name the problem', async () => {
    const L = model.config.n_layers;
    const cached = await model.run(prompts, { stopAtLayer: 1 });
    await expect(model.run(prompts, { startAtLayer: 1 })).rejects.toThrow(/takes the residual stream entering layer 1, a Tensor \[batch, pos, d_model\]/);
    await expect(model.run(cached.residual)).rejects.toThrow(/a Tensor input is a residual stream: give startAtLayer/);
    await expect(model.run(cached.residual, { startAtLayer: 1, returnType: 'loss' })).rejects.toThrow(/needs the token ids: pass `tokens`/);
    await expect(model.run(prompts, { stopAtLayer: L + 1 })).rejects.toThrow(new RegExp(`stopAtLayer ${L + 1} is out of range: the model has ${L} layers`));
    await expect(model.run(prompts, { stopAtLayer: 1, returnType: 'loss' })).rejects.toThrow(/returns the residual stream, not a loss/);
    await expect(model.run(prompts, { lossPerToken: true })).rejects.toThrow(/lossPerToken needs returnType 'loss' or 'both'/);
    await expect(model.run(cached.residual, { startAtLayer: 1, cache: ['blocks.0.hook_resid_post'] })).rejects.toThrow(/blocks.0.hook_resid_post is not computed by this run \(it starts at layer 1\)/);
    await expect(model.run(prompts, { stopAtLayer: 1, hooks: [zeroAblate('ln_final.hook_normalized')] })).rejects.toThrow(
      /ln_final.hook_normalized is not computed by this run \(it stops before layer 1\)/,
    );
    const wrong = Tensor.from(model.gpu, new Float32Array(2 * 3 * 5), [2, 3, 5], 'wrong');
    await expect(model.run(wrong, { startAtLayer: 0 })).rejects.toThrow(/has shape \[2, 3, 5\]; it must be \[batch, pos, d_model = 64\]/);
    wrong.release();
    cached.release();
  });
});

describe('unembed.hook_in / unembed.hook_out', () => {
  it("hold ln_final's output and the logits, and take interventions", async () => {
    const name = 'tiny-llama-random';
    const model = await loadModel(await testGpu(), await fixtureSource(name));
    try {
      const prompts = tlPrompts(name);
      const ckpt = await loadCheckpoint(await fixtureSource(name));
      const host = await hostWeightsFor(ckpt.tensors, ckpt.config, ckpt.hfConfig);
      const { d_model: C, d_vocab: V } = model.config;
      const T = prompts[0].length;
      const rnd = mulberry32(5);
      const v = Float32Array.from({ length: C }, () => rnd() - 0.5);
      const r = await model.run(prompts, {
        hooks: [addVector('unembed.hook_in', v, 2, { batch: 1, pos: 4 }), zeroAblate('unembed.hook_out', { batch: 0, pos: [0, 2] })],
        cache: ['unembed.hook_in', 'unembed.hook_out'],
      });
      const ref = forwardCpu(model.config, host, prompts, (n, act) => {
        if (n === 'unembed.hook_in') for (let c = 0; c < C; c++) act[(T + 4) * C + c] += 2 * v[c];
        if (n === 'unembed.hook_out') for (const p of [0, 2]) act.fill(0, p * V, (p + 1) * V);
      });
      expectClose('unembed.hook_in', await r.cache.read('unembed.hook_in'), ref.get('unembed.hook_in')!);
      const logits = await r.logits.read();
      expectClose('logits', logits, ref.get('logits')!);
      expect(maxAbsDiff(await r.cache.read('unembed.hook_out'), logits)).toBe(0);
      expect(maxAbsDiff(logits.subarray(0, V), new Float32Array(V))).toBe(0);
      r.release();
    } finally {
      model.destroy();
    }
  });
});
