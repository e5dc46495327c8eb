/**
 * SAE training on the GPU (`SaeTraining`: the kernels of shaders/sae-train.wgsl.ts and the
 * engine's matmul) against the CPU reference `saeStepCpu` (itself checked against PyTorch in
 * sae-reference.test.ts), for each architecture, on odd shapes (d_in 7, d_sae 13, batch 9, 50
 * stored rows):
 *   - one step's gradients and metrics, with the rows the GPU drew (the same hash on the CPU);
 *     TopK a second step, once latents that did not fire in the first count as dead (window 0),
 *     so AuxK runs;
 *   - 6 AdamW updates with clipping, parameters after each against the CPU trainer;
 *   - the saved files: SAELens' cfg.json and sae_weights.safetensors.
 * Tolerance: the GPU sums in fp32 what the CPU sums in float64; every quantity is a sum of at most
 * B (D + S) products of O(1) values, so abs 1e-5 and rel 1e-5 of the tensor's largest magnitude.
 */
import { describe, expect, it } from 'vitest';
import { gradNormCpu } from '../../src/gpu/kernels/grad-norm.cpu.ts';
import { adamwCpu } from '../../src/gpu/kernels/optim.cpu.ts';
import { saeStepCpu, type SaeArchitecture, type SaeParamsCpu } from '../../src/gpu/kernels/sae-train.cpu.ts';
import { Tensor } from '../../src/gpu/tensor.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { TrainClock } from '../../src/train/clock.ts';
import { Optimizer, entriesOf } from '../../src/train/optimizer.ts';
import { draw } from '../../src/util/random.ts';
import { SaeTraining, coefficientAt, type ActivationStore, type SaeTrainConfig } from '../../src/train/sae.ts';
import { Trainer, type Report } from '../../src/train/trainer.ts';
import { saeDecode, saeEncode, type SaeWeights } from '../../src/train/sae-eval.ts';
import { testGpu } from '../helpers/gpu.ts';
import { expectNear } from '../kernels/check.ts';
import { mulberry32, normal } from '../kernels/random.ts';

const [N, D, S, B] = [50, 7, 13, 9];
const TOL = { abs: 1e-5, rel: 1e-5 };
const SEED = 21;

const CONFIGS: Record<SaeArchitecture, SaeTrainConfig> = {
  standard: { architecture: 'standard', dSae: S, batch: B, coefficient: 0.5, seed: SEED, decoderInitNorm: 0.4 },
  topk: { architecture: 'topk', dSae: S, batch: B, k: 3, coefficient: 0.8, seed: SEED, deadWindow: 0, decoderInitNorm: 0.4 },
  jumprelu: { architecture: 'jumprelu', dSae: S, batch: B, coefficient: 0.2, bandwidth: 0.5, initThreshold: 0.1, seed: SEED, decoderInitNorm: 0.4 },
};

async function setup(config: SaeTrainConfig, lr: number, clipNorm = 0) {
  const gpu = await testGpu();
  const data = normal(mulberry32(99), N * D, 0.3, 1);
  const t = Tensor.from(gpu, data, [N, D], 'store');
  const store: ActivationStore = { buffer: t.buffer, rows: N, width: D, hookName: 'blocks.0.hook_resid_post', destroy: () => t.release() };
  const clock = new TrainClock(gpu, 8);
  const sae = new SaeTraining(gpu, clock, store, config);
  const opt = new Optimizer(gpu, clock, entriesOf(sae.params.list), { kind: 'adamw', lr, weightDecay: 0, clipNorm });
  const trainer = new Trainer(gpu, clock, sae.task, opt);
  return {
    data,
    sae,
    trainer,
    destroy() {
      trainer.destroy();
      opt.destroy();
      sae.destroy();
      clock.destroy();
      store.destroy();
    },
  };
}

/** The rows the GPU draws for update t. */
function batchAt(data: Float32Array, t: number): Float32Array {
  const x = new Float32Array(B * D);
  for (let b = 0; b < B; b++) {
    const row = draw(SEED, t, b) % N;
    x.set(data.subarray(row * D, (row + 1) * D), b * D);
  }
  return x;
}

const asCpu = (v: Map<string, Float32Array>): SaeParamsCpu => ({
  W_enc: Float64Array.from(v.get('W_enc')!),
  b_enc: Float64Array.from(v.get('b_enc')!),
  W_dec: Float64Array.from(v.get('W_dec')!),
  b_dec: Float64Array.from(v.get('b_dec')!),
  ...(v.has('log_threshold') ? { log_threshold: Float64Array.from(v.get('log_threshold')!) } : {}),
});

describe.each(['standard', 'topk', 'jumprelu'] as SaeArchitecture[])('%s', (arch) => {
  it('one step: gradients and metrics equal the CPU reference', async () => {
    const c = CONFIGS[arch];
    const t = await setup(c, 0); // lr 0: the parameters stay put, the gradients are left to read
    try {
      const p = asCpu(await t.sae.params.read());
      const since = new Uint32Array(S);
      for (let step = 1; step <= (arch === 'topk' ? 2 : 1); step++) {
        const reports: Report[] = [];
        await t.trainer.train({ until: step, every: 1, onReport: (r) => void reports.push(r) }).done;
        const dead = Uint8Array.from(since, (v) => (v > (c.deadWindow ?? 1000) ? 1 : 0));
        const x = batchAt(t.data, step);
        const ref = saeStepCpu(p, x, { B, D, S }, { architecture: arch, coefficient: c.coefficient!, k: c.k, bandwidth: c.bandwidth, dead });
        for (let j = 0; j < S; j++) {
          let fired = false;
          for (let b = 0; b < B; b++) if (ref.acts[b * S + j] !== 0) fired = true;
          since[j] = fired ? 0 : since[j]! + 1;
        }
        const names = arch === 'jumprelu' ? (['W_enc', 'b_enc', 'W_dec', 'b_dec', 'log_threshold'] as const) : (['W_enc', 'b_enc', 'W_dec', 'b_dec'] as const);
        for (const n of names) expectNear(`${arch} step ${step} grad ${n}`, await t.sae.params.get(n).grad.read(), ref.grads[n]!, TOL);
        const m = reports[0]!.metrics.sae!;
        let l0 = 0;
        for (const a of ref.acts) if (a !== 0) l0++;
        const mean = new Float64Array(D);
        for (let b = 0; b < B; b++) for (let i = 0; i < D; i++) mean[i] += x[b * D + i]! / B;
        let dev = 0;
        for (let b = 0; b < B; b++) for (let i = 0; i < D; i++) dev += (x[b * D + i]! - mean[i]!) ** 2;
        const fvu = (ref.mse * B) / dev;
        const want = [ref.loss, ref.mse, ref.aux, l0 / B, fvu, dead.reduce((a, v) => a + v, 0), 1 - fvu, c.coefficient!];
        expectNear(`${arch} step ${step} metrics`, m, want, TOL);
        if (arch === 'topk' && step === 2) expect(m[5], 'latents counted dead, so AuxK ran').toBeGreaterThan(0);
        if (arch !== 'topk' || step === 2) expect(ref.aux, 'the sparsity term is exercised').toBeGreaterThan(0);
      }
    } finally {
      t.destroy();
    }
  });

  it('6 AdamW updates with clipping follow the CPU trainer', async () => {
    const c = { ...CONFIGS[arch], coefficientWarmup: 3 };
    const lr = 1e-2;
    const t = await setup(c, lr, 0.5);
    try {
      const start = await t.sae.params.read();
      const names = [...start.keys()];
      const p = Object.fromEntries(names.map((n) => [n, start.get(n)!.slice()]));
      const m = Object.fromEntries(names.map((n) => [n, new Float32Array(p[n]!.length)]));
      const v = Object.fromEntries(names.map((n) => [n, new Float32Array(p[n]!.length)]));
      const since = new Uint32Array(S);
      for (let step = 1; step <= 6; step++) {
        await t.trainer.train({ until: step }).done;
        const dead = Uint8Array.from(since, (s) => (s > (c.deadWindow ?? 1000) ? 1 : 0));
        const ref = saeStepCpu(
          asCpu(new Map(Object.entries(p))),
          batchAt(t.data, step),
          { B, D, S },
          { architecture: arch, coefficient: coefficientAt(c.coefficient!, 3, step), k: c.k, bandwidth: c.bandwidth, dead },
        );
        for (let j = 0; j < S; j++) {
          let fired = false;
          for (let b = 0; b < B; b++) if (ref.acts[b * S + j] !== 0) fired = true;
          since[j] = fired ? 0 : since[j]! + 1;
        }
        const grads = names.map((n) => Float32Array.from(ref.grads[n as keyof typeof ref.grads]!));
        const { scale } = gradNormCpu(grads, 0.5);
        names.forEach((n, k) => adamwCpu(p[n]!, m[n]!, v[n]!, grads[k]!, p[n]!.length, step, lr, scale, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }));
        const got = await t.sae.params.read();
        for (const n of names) expectNear(`${arch} update ${step} ${n}`, got.get(n)!, p[n]!, { abs: 1e-5, rel: 1e-5 });
      }
    } finally {
      t.destroy();
    }
  });
});

it("saves in SAELens' format (cfg.json, sae_weights.safetensors), which src/features loads", async () => {
  for (const arch of ['standard', 'topk', 'jumprelu'] as SaeArchitecture[]) {
    const t = await setup(CONFIGS[arch], 1e-2);
    try {
      await t.trainer.train({ until: 2 }).done;
      const files = await t.sae.toSaeLens();
      const cfg = JSON.parse(files['cfg.json']);
      expect(cfg).toMatchObject({ architecture: arch, d_in: D, d_sae: S, dtype: 'float32', apply_b_dec_to_input: true, normalize_activations: 'none' });
      expect(cfg.metadata.hook_name).toBe('blocks.0.hook_resid_post');
      if (arch === 'topk') expect(cfg).toMatchObject({ k: 3, rescale_acts_by_decoder_norm: false });
      const st = new SafetensorsFile(files['sae_weights.safetensors'], 'sae_weights.safetensors');
      const want: Record<string, number[]> = { W_enc: [D, S], b_enc: [S], W_dec: [S, D], b_dec: [D], ...(arch === 'jumprelu' ? { threshold: [S] } : {}) };
      expect(Object.fromEntries(st.names.map((n) => [n, st.info(n).shape]))).toEqual(want);
      const values = await t.sae.params.read();
      expect(Array.from(st.float32('W_dec'))).toEqual(Array.from(values.get('W_dec')!));
      if (arch === 'jumprelu') expect(Array.from(st.float32('threshold'))).toEqual(Array.from(values.get('log_threshold')!.map(Math.exp)));
      // src/features' loader reads it, and its encode and decode agree with the CPU reference.
      const loaded = await t.sae.toSae();
      try {
        expect(loaded.config).toMatchObject({ d_in: D, d_sae: S, hook_name: 'blocks.0.hook_resid_post', architecture: arch === 'standard' ? 'relu' : arch });
        const x = t.data.subarray(0, 5 * D);
        const got = await loaded.run(x);
        const w: SaeWeights = {
          architecture: arch,
          k: 3,
          dIn: D,
          dSae: S,
          W_enc: values.get('W_enc')!,
          b_enc: values.get('b_enc')!,
          W_dec: values.get('W_dec')!,
          b_dec: values.get('b_dec')!,
          ...(arch === 'jumprelu' ? { threshold: values.get('log_threshold')!.map(Math.exp) } : {}),
        };
        const acts = saeEncode(w, x);
        expectNear(`${arch} loaded acts`, got.acts, acts, { abs: 1e-5, rel: 1e-5 });
        expectNear(`${arch} loaded recons`, got.recons, saeDecode(w, acts), { abs: 1e-5, rel: 1e-5 });
      } finally {
        loaded.destroy();
      }
    } finally {
      t.destroy();
    }
  }
});
