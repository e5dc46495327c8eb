/**
 * TransformerLens' norm hook points on every family: `hook_scale` and `hook_normalized` (the input
 * normalized before the gain and bias) accept interventions and the change reaches everything
 * after them, as in the CPU reference forward with the same edit; a run that touches neither
 * records exactly the dispatches of a plain run, and the on-demand steps run only when asked.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { forwardCpu } from '../../src/model/forward.cpu.ts';
import { loadCheckpoint } from '../../src/model/checkpoint.ts';
import { hostWeightsFor } from '../../src/model/host-weights-for.ts';
import type { HostWeights } from '../../src/model/host-weights.ts';
import { addVector, hookFn, scaleBy, zeroAblate, type Intervention } from '../../src/hooks/interventions.ts';
import { runVariants, baseRun, BASE_CACHE } from '../../src/experiments/sweep.ts';
import { logitDiffMetric, metricCpu } from '../../src/model/metric.ts';
import { expectClose, maxAbsDiff } from '../helpers/compare.ts';
import { fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';
import { mulberry32 } from '../helpers/synthetic.ts';

const FAMILIES = ['tiny-gpt2-random', 'tiny-neox-random', 'tiny-llama-random'] as const;

/** Counts the compute dispatches the model's device records while `f` runs. */
async function countDispatches<T>(model: Model, f: () => Promise<T>): Promise<{ value: T; dispatches: number }> {
  const device = model.gpu.device;
  const create = device.createCommandEncoder.bind(device);
  let dispatches = 0;
  device.createCommandEncoder = (d?: GPUCommandEncoderDescriptor) => {
    const enc = create(d);
    const begin = enc.beginComputePass.bind(enc);
    enc.beginComputePass = (pd?: GPUComputePassDescriptor) => {
      const pass = begin(pd);
      const dispatch = pass.dispatchWorkgroups.bind(pass);
      pass.dispatchWorkgroups = (x: number, y?: number, z?: number) => (dispatches++, dispatch(x, y, z));
      return pass;
    };
    return enc;
  };
  try {
    return { value: await f(), dispatches };
  } finally {
    device.createCommandEncoder = create;
  }
}

describe.each(FAMILIES)('%s norm hook points', (name) => {
  let model: Model;
  let host: HostWeights;
  let prompts: number[][];
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource(name));
    const ckpt = await loadCheckpoint(await fixtureSource(name));
    host = await hostWeightsFor(ckpt.tensors, ckpt.config, ckpt.hfConfig);
    prompts = fixtureCases(name).prompts;
  });
  afterAll(() => model?.destroy());

  it('a changed hook_scale renormalizes the input and reaches the logits', async () => {
    const T = prompts[0].length;
    // ln1 of layer 1 twice as wide at row 1, positions 2 and 5; ln_final's scale halved at row 0.
    const hooks = [scaleBy('blocks.1.ln1.hook_scale', 2, { batch: 1, pos: [2, 5] }), scaleBy('ln_final.hook_scale', 0.5, { batch: 0 })];
    const names = ['blocks.1.ln1.hook_scale', 'blocks.1.ln1.hook_normalized', 'blocks.1.attn.hook_q', 'ln_final.hook_normalized', 'unembed.hook_in'];
    const gpu = await model.run(prompts, { hooks, cache: names });
    const ref = forwardCpu(model.config, host, prompts, (n, act) => {
      if (n === 'blocks.1.ln1.hook_scale') for (const p of [2, 5]) act[T + p] *= 2;
      if (n === 'ln_final.hook_scale') for (let p = 0; p < T; p++) act[p] *= 0.5;
    });
    for (const n of names) expectClose(n, await gpu.cache.read(n), ref.get(n)!);
    expectClose('logits', await gpu.logits.read(), ref.get('logits')!);
    const plain = await model.run(prompts);
    expect(maxAbsDiff(await plain.logits.read(), await gpu.logits.read())).toBeGreaterThan(1e-2);
    plain.release();
    gpu.release();
  });

  it('a changed hook_normalized gets the gain and bias applied after it', async () => {
    const { d_model: C } = model.config;
    const T = prompts[0].length;
    const rnd = mulberry32(11);
    const v = Float32Array.from({ length: C }, () => rnd() * 2 - 1);
    const hooks: Intervention[] = [addVector('blocks.0.ln2.hook_normalized', v, 1.5, { batch: 0, pos: 3 }), zeroAblate('blocks.1.ln1.hook_normalized', { batch: 1, pos: [0, T - 1] })];
    const names = ['blocks.0.ln2.hook_normalized', 'blocks.0.mlp.hook_pre', 'blocks.1.ln1.hook_normalized', 'blocks.1.attn.hook_v'];
    const gpu = await model.run(prompts, { hooks, cache: names });
    const ref = forwardCpu(model.config, host, prompts, (n, act) => {
      if (n === 'blocks.0.ln2.hook_normalized') for (let c = 0; c < C; c++) act[3 * C + c] += 1.5 * v[c];
      if (n === 'blocks.1.ln1.hook_normalized') for (const p of [0, T - 1]) act.fill(0, (T + p) * C, (T + p + 1) * C);
    });
    for (const n of names) expectClose(n, await gpu.cache.read(n), ref.get(n)!);
    expectClose('logits', await gpu.logits.read(), ref.get('logits')!);
    gpu.release();
  });

  it('a hook function on hook_normalized sees the normalized input and its edit takes effect', async () => {
    const hook = 'ln_final.hook_normalized';
    const cached = await model.run(prompts, { cache: [hook] });
    const want = await cached.cache.read(hook);
    let seen: Float32Array | null = null;
    const viaFn = await model.run(prompts, {
      hooks: [
        hookFn(hook, (act) => {
          seen = act.slice();
          act.fill(0);
        }),
      ],
    });
    expect(maxAbsDiff(seen!, want)).toBe(0);
    const viaTable = await model.run(prompts, { hooks: [zeroAblate(hook)] });
    expect(maxAbsDiff(await viaFn.logits.read(), await viaTable.logits.read())).toBe(0);
    for (const r of [cached, viaFn, viaTable]) r.release();
  });

  it('an identity intervention leaves the logits bit for bit; the on-demand steps run only when asked', async () => {
    const L = model.config.n_layers;
    const plain = await countDispatches(model, () => model.run(prompts));
    const logits = await plain.value.logits.read();
    expect(plain.dispatches).toBeGreaterThan(10 * L); // the counter sees the forward's dispatches
    // Caching the scales reads what the fused kernel wrote: no extra work.
    const scales = await countDispatches(model, () => model.run(prompts, { cache: /hook_scale$/ }));
    expect(scales.dispatches).toBe(plain.dispatches);
    // Caching one normalized input: its normalize step only.
    const oneNorm = await countDispatches(model, () => model.run(prompts, { cache: ['blocks.0.ln2.hook_normalized'] }));
    expect(oneNorm.dispatches).toBe(plain.dispatches + 1);
    // Scaling every normalized input by 1: normalize, the intervention and gain-and-bias at each norm.
    const norms = [...Array.from({ length: L }, (_, l) => [`blocks.${l}.ln1`, `blocks.${l}.ln2`]).flat(), 'ln_final'];
    const ident = await countDispatches(model, () => model.run(prompts, { hooks: norms.map((n) => scaleBy(`${n}.hook_normalized`, 1)) }));
    expect(ident.dispatches).toBe(plain.dispatches + 3 * norms.length);
    expect(maxAbsDiff(await ident.value.logits.read(), logits)).toBe(0);
    const identScale = await model.run(prompts, { hooks: norms.map((n) => scaleBy(`${n}.hook_scale`, 1)) });
    expect(maxAbsDiff(await identScale.logits.read(), logits)).toBe(0);
    for (const r of [plain.value, scales.value, oneNorm.value, ident.value, identScale]) r.release();
  });
});

describe('sweeps run the on-demand steps of their variants', () => {
  it('variants scaling ln1.hook_scale per (layer, position) equal the same runs on full forwards', async () => {
    const name = 'tiny-gpt2-random';
    const model = await loadModel(await testGpu(), await fixtureSource(name));
    try {
      const { prompts, metric: m } = fixtureCases(name);
      const tokens = prompts[1];
      const metric = logitDiffMetric(m.position, m.good_token, m.bad_token);
      const base = await baseRun(model, tokens, (n) => BASE_CACHE.test(n), metric);
      const variants = [];
      for (let l = 0; l < model.config.n_layers; l++) {
        for (const p of [1, 4, m.position]) variants.push({ layer: l, pos: p, hooks: [scaleBy(`blocks.${l}.ln1.hook_scale`, 3, { pos: p })] });
      }
      const { values } = await runVariants(model, base, variants, metric, { shift: 0, scale: 1 }, base.metric);
      for (const [i, v] of variants.entries()) {
        const r = await model.run([tokens], { hooks: v.hooks });
        expect(Math.abs(values[i] - metricCpu(metric, await r.logits.read(), 1, model.config.d_vocab)[0])).toBeLessThanOrEqual(1e-4);
        r.release();
      }
      expect(Math.max(...values.map((x) => Math.abs(x - base.metric)))).toBeGreaterThan(1e-2);
      base.release();
    } finally {
      model.destroy();
    }
  });
});
