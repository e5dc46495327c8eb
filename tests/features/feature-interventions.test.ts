/**
 * Feature-level interventions (zero, scale, clamp, patch from another run, steer) on an SAE
 * spliced into tiny-llama-random with the error term, against a CPU reference: the cached hook
 * input encoded on the CPU (`sae.cpu.ts`), the same interventions applied to the activations, the
 * decoder, and SAELens' error term (x minus the clean reconstruction), compared with the GPU's
 * hook_sae_acts_post and hook_sae_output per tensor to 1e-4 × max(1, max |reference|). Then the
 * model downstream: zeroing a feature with the error term equals subtracting its contribution
 * acts[f] * W_dec[f] from hook_sae_output, to the same tolerance on the logits.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { readSae } from '../../src/features/sae-load.ts';
import { Sae, type HostSae } from '../../src/features/sae.ts';
import { withErrorTerm } from '../../src/hooks/splice.ts';
import { clampFeature, patchFeature, saeHook, scaleFeature, steerFeature, zeroFeature } from '../../src/hooks/feature-interventions.ts';
import { saeActivationCpu, saeDecodeCpu, saeEncodeCpu } from '../../src/gpu/kernels/sae.cpu.ts';
import { addVector } from '../../src/hooks/interventions.ts';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { expectClose } from '../helpers/compare.ts';
import { fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';
import { SAE_FIXTURES, saeFolder } from './helpers.ts';

const DIR = join(SAE_FIXTURES, 'tiny-llama-random', 'gemma-scope-tiny-res/layer_0/width_96/average_l0_19');
const D = 64;
const F = 96;

describe('feature interventions (tiny-llama-random, a JumpReLU SAE on blocks.0.hook_resid_post)', () => {
  let model: Model;
  let sae: Sae;
  let host: HostSae;
  let prompts: number[][];
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource('tiny-llama-random'));
    const read = await readSae(await saeFolder(DIR));
    host = read.host;
    sae = await Sae.upload(model.gpu, read.config, read.host);
    prompts = fixtureCases('tiny-llama-random').prompts;
  });
  afterAll(() => {
    sae?.destroy();
    model?.destroy();
  });

  const T = () => prompts[0].length;
  /** The CPU SAE on x [rows, D]: clean activations, and the output after `edit` changes them. */
  function cpuSplice(x: Float32Array, edit: (acts: Float32Array) => void) {
    const rows = x.length / D;
    const pre = new Float32Array(rows * F);
    saeEncodeCpu(pre, x, host.W_enc, host.b_enc, rows, D, F);
    const clean = new Float32Array(rows * F);
    saeActivationCpu('jumprelu', clean, pre, host.threshold, rows, F);
    const acts = clean.slice();
    edit(acts);
    const rClean = new Float32Array(rows * D);
    const r = new Float32Array(rows * D);
    saeDecodeCpu(rClean, clean, host.W_dec, host.b_dec, null, rows, F, D);
    saeDecodeCpu(r, acts, host.W_dec, host.b_dec, null, rows, F, D);
    return { clean, acts, out: r.map((v, i) => v + (x[i] - rClean[i])) };
  }
  const at = (b: number, p: number, f: number) => (b * T() + p) * F + f;

  it('zero, scale and clamp features on chosen rows and positions', async () => {
    // Features that fire: three at position 3 of row 0, one somewhere in row 1.
    const base = await model.run(prompts, { saes: [withErrorTerm(sae)], cache: [saeHook(sae, 'hook_sae_acts_post')] });
    const a0 = await base.cache.read(saeHook(sae, 'hook_sae_acts_post'));
    base.release();
    const zeroed = [...Array(F).keys()].filter((f) => a0[at(0, 3, f)] > 0).slice(0, 3);
    const scaled = [...Array(F).keys()].find((f) => a0[at(1, 4, f)] > 0)!;
    expect(zeroed).toHaveLength(3);
    const hooks = [zeroFeature(sae, zeroed, { pos: 3 }), scaleFeature(sae, scaled, 2.5, { batch: 1 }), clampFeature(sae, [8, 9], 1.75, { pos: [0, 5] })];
    const run = await model.run(prompts, { saes: [withErrorTerm(sae)], hooks, cache: [sae.hookName, saeHook(sae, 'hook_sae_acts_post'), saeHook(sae, 'hook_sae_output')] });
    try {
      const x = await run.cache.read(sae.hookName);
      const ref = cpuSplice(x, (a) => {
        for (let b = 0; b < 2; b++) for (const f of zeroed) a[at(b, 3, f)] = 0;
        for (let p = 0; p < T(); p++) a[at(1, p, scaled)] = Math.fround(a[at(1, p, scaled)] * 2.5);
        for (let b = 0; b < 2; b++) for (const p of [0, 5]) for (const f of [8, 9]) a[at(b, p, f)] = 1.75;
      });
      expectClose('acts_post', await run.cache.read(saeHook(sae, 'hook_sae_acts_post')), ref.acts);
      expectClose('sae output', await run.cache.read(saeHook(sae, 'hook_sae_output')), ref.out);
    } finally {
      run.release();
    }
  });

  it('patch features from another run, and steer along a decoder direction', async () => {
    const src = await model.run([prompts[1]], { saes: [withErrorTerm(sae)], cache: [saeHook(sae, 'hook_sae_acts_post')] });
    const hooks = [patchFeature(sae, [1, 2, 3, 50, 95], src.cache, { pos: [4, 6] }), await steerFeature(sae, 11, 3, { pos: 2 })];
    const run = await model.run([prompts[0]], { saes: [withErrorTerm(sae)], hooks, cache: [sae.hookName, saeHook(sae, 'hook_sae_acts_post'), saeHook(sae, 'hook_sae_output')] });
    try {
      const srcActs = await src.cache.read(saeHook(sae, 'hook_sae_acts_post'));
      // The cached hook holds the model's value after the steering vector was added (hooks at the
      // hook point act before the SAE reads it): take the unsteered value back out for the reference.
      const steered = await run.cache.read(sae.hookName);
      const x = steered.slice();
      for (let j = 0; j < D; j++) x[2 * D + j] -= 3 * host.W_dec[11 * D + j];
      const edit = (a: Float32Array) => {
        for (const p of [4, 6]) for (const f of [1, 2, 3, 50, 95]) a[at(0, p, f)] = srcActs[at(0, p, f)];
      };
      const ref = cpuSplice(steered, edit);
      expectClose('acts_post', await run.cache.read(saeHook(sae, 'hook_sae_acts_post')), ref.acts);
      const out = await run.cache.read(saeHook(sae, 'hook_sae_output'));
      expectClose('sae output', out, ref.out);
      // With the error term the steering passes through: output - unsteered output = 3 W_dec[11] at position 2.
      const plain = cpuSplice(x, edit).out;
      expectClose(
        'steering',
        out.subarray(2 * D, 3 * D).map((v, j) => v - plain[2 * D + j]),
        host.W_dec.subarray(11 * D, 12 * D).map((w) => 3 * w),
      );
    } finally {
      run.release();
      src.release();
    }
  });

  it('zeroing a feature equals subtracting its contribution at hook_sae_output (logits)', async () => {
    const p = 7;
    const base = await model.run([prompts[0]], { saes: [withErrorTerm(sae)], cache: [saeHook(sae, 'hook_sae_acts_post')] });
    const acts = await base.cache.read(saeHook(sae, 'hook_sae_acts_post'));
    const f = [...Array(F).keys()].find((i) => acts[p * F + i] > 0)!;
    const dir = host.W_dec.subarray(f * D, (f + 1) * D);
    const a = await model.run([prompts[0]], { saes: [withErrorTerm(sae)], hooks: [zeroFeature(sae, f, { pos: p })] });
    const b = await model.run([prompts[0]], { saes: [withErrorTerm(sae)], hooks: [addVector(saeHook(sae, 'hook_sae_output'), dir, -acts[p * F + f], { pos: p })] });
    try {
      const la = await a.logits.read();
      expectClose('logits', la, await b.logits.read());
      // …and it moved the logits (the feature matters), at position p and after, not before.
      const lp = await base.logits.read();
      const V = model.config.d_vocab;
      expect(la.subarray(0, p * V)).toEqual(lp.subarray(0, p * V));
      expect(Math.max(...la.subarray(p * V).map((v, i) => Math.abs(v - lp[p * V + i])))).toBeGreaterThan(1e-3);
    } finally {
      for (const r of [base, a, b]) r.release();
    }
  });

  it('names the problem: a feature out of range, a feature hook without the SAE spliced', async () => {
    expect(() => zeroFeature(sae, 96)).toThrow(/feature 96 is out of range .*d_sae 96/);
    await expect(model.run(prompts, { hooks: [zeroFeature(sae, 1)] })).rejects.toThrow(/unknown hook point "blocks\.0\.hook_resid_post\.hook_sae_acts_post"/);
  });
});
