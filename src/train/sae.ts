/**
 * Training a sparse autoencoder on a model's cached activations, as SAELens trains one (its
 * "standard" ReLU + L1, TopK + AuxK and JumpReLU + L0 architectures; definitions in
 * `src/gpu/kernels/sae-train.cpu.ts`), each step on a batch of rows drawn on the GPU from an
 * activation store. Parameters carry SAELens' names (W_enc [d_in, d_sae], b_enc, W_dec
 * [d_sae, d_in], b_dec, and log_threshold for JumpReLU, saved as `threshold`), so the trained SAE
 * saves as SAELens' cfg.json + sae_weights.safetensors.
 *
 *   const store = await collectActivations(model, sequences, 'blocks.0.hook_resid_post');
 *   const sae = new SaeTraining(gpu, clock, store, { architecture: 'topk', dSae: 512, k: 8 });
 *   const opt = new Optimizer(gpu, clock, entriesOf(sae.params.list), { kind: 'adamw', lr: 3e-4, weightDecay: 0, clipNorm: 1 });
 *   await new Trainer(gpu, clock, sae.task, opt).train({ until: 2000 }).done;
 *
 * The step's metrics (`metrics`, 8 floats): loss, mse, the sparsity term, L0 (mean active
 * latents per row), FVU (sum of squared errors / sum of squared deviations from the batch mean:
 * 1 - SAELens' trainer's explained_variance), dead latents (not active in any row for more than
 * `deadWindow` steps, SAELens' dead_feature_window), explained variance, and the coefficient.
 */
import type { Gpu } from '../gpu/device.ts';
import { add } from '../gpu/kernels/elementwise.ts';
import { matmul } from '../gpu/kernels/matmul.ts';
import { transpose } from '../gpu/kernels/transpose.ts';
import type { SaeArchitecture } from '../gpu/kernels/sae-train.cpu.ts';
import { saeKernel, type SaeBinding, type SaeKernelArgs, type SaeKernelDims } from '../gpu/kernels/sae-train.ts';
import type { Params, Step } from '../gpu/recorder.ts';
import { Tensor } from '../gpu/tensor.ts';
import { writeSafetensors } from '../model/safetensors.ts';
import { blobModelSource } from '../model/source.ts';
import { loadSae } from '../features/sae-load.ts';
import type { Sae } from '../features/sae.ts';
import type { SaeWeights } from './sae-eval.ts';
import type { TrainClock } from './clock.ts';
import { ParamStore, type ParamSpec } from './params.ts';
import { SeededRandom } from '../util/random.ts';
import type { TrainTask } from './trainer.ts';

/** Activations to train on: `rows` rows of width `width` in one GPU buffer (row-major). */
export interface ActivationStore {
  buffer: GPUBuffer;
  rows: number;
  width: number;
  /** The hook they were cached at, for the SAE's config. */
  hookName: string;
  destroy(): void;
}

export interface SaeTrainConfig {
  architecture: SaeArchitecture;
  /** Latents. */
  dSae: number;
  /** Rows per step (SAELens' train_batch_size_tokens; default 4096). */
  batch?: number;
  /** TopK: active latents per row (default 100, SAELens'; keep it well below dSae). */
  k?: number;
  /**
   * The sparsity coefficient: l1_coefficient (standard, default 1), l0_coefficient (jumprelu,
   * default 1), aux_loss_coefficient (topk, default 1).
   */
  coefficient?: number;
  /** Linear warm-up of the coefficient over this many steps (SAELens' l1/l0_warm_up_steps; default 0). */
  coefficientWarmup?: number;
  /** JumpReLU: the straight-through estimator's bandwidth (default 0.05) and initial threshold (0.01). */
  bandwidth?: number;
  initThreshold?: number;
  /** Steps without firing before a latent counts as dead (dead_feature_window; default 1000). */
  deadWindow?: number;
  /** Decoder rows are initialized to this norm, the encoder to the decoder's transpose (default 0.1). */
  decoderInitNorm?: number;
  /** Seeds the initial weights and the rows drawn each step. */
  seed?: number;
  /** For the saved config: the model the activations came from. */
  modelName?: string;
}

/** SAELens' coefficient schedule: 0 at update 1, then a linear ramp to the final value over `warmup` updates. */
export function coefficientAt(final: number, warmup: number, t: number): number {
  return warmup > 0 ? final * Math.min(1, (t - 1) / warmup) : final;
}

/**
 * Initial weights as SAELens' TrainingSAE makes them: W_dec uniform as torch's kaiming_uniform_
 * (bound sqrt(6 / d_in)), each row scaled to `decoderInitNorm`, W_enc = W_dec^T, biases 0,
 * JumpReLU's log_threshold = log(initThreshold).
 */
export function saeInit(dIn: number, c: SaeTrainConfig): ParamSpec[] {
  const S = c.dSae;
  const rng = new SeededRandom(c.seed ?? 0);
  const bound = Math.sqrt(6 / dIn);
  const W_dec = new Float32Array(S * dIn);
  for (let j = 0; j < S; j++) {
    let n = 0;
    for (let i = 0; i < dIn; i++) {
      const v = (2 * rng.next() - 1) * bound;
      W_dec[j * dIn + i] = v;
      n += v * v;
    }
    const scale = (c.decoderInitNorm ?? 0.1) / Math.sqrt(n);
    for (let i = 0; i < dIn; i++) W_dec[j * dIn + i]! *= scale;
  }
  const W_enc = new Float32Array(dIn * S);
  for (let j = 0; j < S; j++) for (let i = 0; i < dIn; i++) W_enc[i * S + j] = W_dec[j * dIn + i]!;
  const specs: ParamSpec[] = [
    { name: 'W_enc', shape: [dIn, S], init: W_enc },
    { name: 'b_enc', shape: [S], init: new Float32Array(S) },
    { name: 'W_dec', shape: [S, dIn], init: W_dec },
    { name: 'b_dec', shape: [dIn], init: new Float32Array(dIn) },
  ];
  if (c.architecture === 'jumprelu') specs.push({ name: 'log_threshold', shape: [S], init: new Float32Array(S).fill(Math.log(c.initThreshold ?? 0.01)) });
  return specs;
}

export interface SaeLensFiles {
  'cfg.json': string;
  'sae_weights.safetensors': Uint8Array;
}

/** SAELens' files for an SAE's weights (cfg.json as SAELens' inference config writes it). */
export function saeLensFiles(w: SaeWeights, meta: { hookName: string; modelName?: string | null }): SaeLensFiles {
  const { dIn: D, dSae: S } = w;
  const tensors = [
    { name: 'W_enc', shape: [D, S], data: w.W_enc },
    { name: 'b_enc', shape: [S], data: w.b_enc },
    { name: 'W_dec', shape: [S, D], data: w.W_dec },
    { name: 'b_dec', shape: [D], data: w.b_dec },
  ];
  if (w.architecture === 'jumprelu') tensors.push({ name: 'threshold', shape: [S], data: w.threshold! });
  const cfg: Record<string, unknown> = {
    architecture: w.architecture,
    d_in: D,
    d_sae: S,
    dtype: 'float32',
    device: 'cpu',
    apply_b_dec_to_input: true,
    normalize_activations: 'none',
    reshape_activations: 'none',
    metadata: { model_name: meta.modelName ?? null, hook_name: meta.hookName, hook_head_index: null, prepend_bos: true, trained_by: 'patchbay' },
  };
  if (w.architecture === 'topk') {
    cfg.k = w.k;
    cfg.rescale_acts_by_decoder_norm = false;
  }
  return { 'cfg.json': JSON.stringify(cfg, null, 1), 'sae_weights.safetensors': writeSafetensors(tensors) };
}

export class SaeTraining {
  readonly params: ParamStore;
  readonly task: TrainTask;
  readonly dims: SaeKernelDims;
  /** [8]: loss, mse, sparsity term, L0, FVU, dead latents, explained variance, coefficient. */
  readonly metrics: Tensor;
  private readonly owned: Tensor[] = [];
  private readonly uniforms: Params[] = [];
  private readonly stand: GPUBuffer[] = [];

  constructor(
    readonly gpu: Gpu,
    clock: TrainClock,
    readonly store: ActivationStore,
    readonly config: SaeTrainConfig,
  ) {
    const arch = config.architecture;
    const [D, S, B] = [store.width, config.dSae, config.batch ?? 4096];
    const k = config.k ?? 100;
    if (arch === 'topk' && !(k >= 1 && k <= S)) throw new Error(`TopK SAE: k = ${k} must be between 1 and d_sae = ${S}`);
    if (!(S >= 1 && B >= 1 && store.rows >= 1)) throw new Error(`SAE: d_sae ${S}, batch ${B} and ${store.rows} stored rows must all be positive`);
    this.dims = { B, D, S, N: store.rows, seed: config.seed ?? 0, k, architecture: arch, window: config.deadWindow ?? 1000, bandwidth: config.bandwidth ?? 0.05 };
    this.params = new ParamStore(gpu, saeInit(D, config));
    try {
      const t = (n: number, label: string, zero = false) => {
        const x = zero ? Tensor.from(gpu, new Float32Array(n), [n], label) : Tensor.empty(gpu, [n], label);
        this.owned.push(x);
        return x.buffer;
      };
      // A distinct stand-in per binding an architecture does not use (a writable binding may not alias another).
      const standIn = () => {
        const b = gpu.device.createBuffer({ size: 16, usage: 0x80, label: 'unused SAE binding' });
        this.stand.push(b);
        return b;
      };
      this.metrics = Tensor.empty(gpu, [8], 'SAE metrics');
      this.owned.push(this.metrics);
      const p = (n: string) => this.params.get(n);
      const buf = {
        x: t(B * D, 'sae x'),
        xc: t(B * D, 'sae x - b_dec'),
        pre: t(B * S, 'sae pre'),
        acts: t(B * S, 'sae acts'),
        recon: t(B * D, 'sae recon'),
        gRecon: t(B * D, 'sae g_recon'),
        dActs: t(B * S, 'sae d_acts'),
        dPre: t(B * S, 'sae d_pre'),
        norms: t(S, 'sae decoder norms'),
        mean: t(D, 'sae batch mean'),
        rowStats: t(B * 4, 'sae row stats'),
        stats: t(4, 'sae stats', true),
        since: t(S, 'sae steps since fired', true),
        colsumS: t(S, 'sae colsum S'),
        colsumD: t(D, 'sae colsum D'),
        xcT: t(D * B, 'sae xc transposed'),
        actsT: t(S * B, 'sae acts transposed'),
      };
      const topk = arch === 'topk';
      const aux = topk
        ? {
            acts: t(B * S, 'sae aux acts'),
            sel: t(B * S, 'sae aux selected'),
            recon: t(B * D, 'sae aux recon'),
            g: t(B * D, 'sae g_aux'),
            dActs: t(B * S, 'sae d_aux'),
            actsT: t(S * B, 'sae aux acts transposed'),
            dW: t(S * D, 'sae dW_dec auxk'),
            dWmain: t(S * D, 'sae dW_dec main'),
          }
        : null;
      const logT = arch === 'jumprelu' ? p('log_threshold') : null;
      const U = this.uniforms;
      const dims = this.dims;
      const k1 = (entry: SaeKernelArgs['entry'], b: Partial<Record<SaeBinding, GPUBuffer>>, label: string, extra = {}) => saeKernel(gpu, { entry, dims, buffers: b, extra, label: `sae ${label}` }, U);
      const W_enc = p('W_enc'),
        b_enc = p('b_enc'),
        W_dec = p('W_dec'),
        b_dec = p('b_dec');
      const clk = clock.buffer;
      const steps: Step[] = [
        k1('sae_dead_v1', { since: buf.since, stats: buf.stats }, 'dead latents'),
        k1('sae_gather_v1', { clk, store: store.buffer, b_dec: b_dec.value.buffer, x: buf.x, xc: buf.xc }, 'gather'),
        k1('sae_norms_v1', { W_dec: W_dec.value.buffer, norms: buf.norms }, 'decoder norms'),
        matmul(gpu, { out: buf.pre, a: buf.xc, b: W_enc.value.buffer, bias: b_enc.value.buffer, M: B, N: S, K: D, label: 'sae encode' }, U),
        topk
          ? k1('sae_topk_v1', { pre: buf.pre, acts: buf.acts, aux_sel: aux!.sel, since: buf.since, stats: buf.stats }, 'topk', { mode: 0 })
          : k1('sae_activate_v1', { pre: buf.pre, log_threshold: logT?.value.buffer ?? standIn(), acts: buf.acts }, 'activate'),
        matmul(gpu, { out: buf.recon, a: buf.acts, b: W_dec.value.buffer, bias: b_dec.value.buffer, M: B, N: D, K: S, label: 'sae decode' }, U),
        k1('sae_mean_v1', { x: buf.x, mean: buf.mean }, 'batch mean'),
        k1('sae_recon_grad_v1', { x: buf.x, recon: buf.recon, mean: buf.mean, g_out: buf.gRecon, row_stats: buf.rowStats }, 'reconstruction gradient'),
        k1('sae_sparsity_v1', { acts: buf.acts, norms: buf.norms, pre: buf.pre, log_threshold: logT?.value.buffer ?? standIn(), row_stats: buf.rowStats }, 'sparsity'),
      ];
      if (aux) {
        steps.push(
          k1('sae_topk_v1', { pre: buf.pre, acts: aux.acts, aux_sel: aux.sel, since: buf.since, stats: buf.stats }, 'auxk select', { mode: 1 }),
          matmul(gpu, { out: aux.recon, a: aux.acts, b: W_dec.value.buffer, bias: b_dec.value.buffer, M: B, N: D, K: S, label: 'sae auxk decode' }, U),
          k1('sae_aux_grad_v1', { clk, stats: buf.stats, recon: aux.recon, x: buf.x, d_in_a: buf.recon, g_out: aux.g, row_stats: buf.rowStats }, 'auxk gradient'),
          matmul(gpu, { out: aux.dActs, a: aux.g, b: W_dec.value.buffer, M: B, N: S, K: D, transB: true, label: 'sae auxk d acts' }, U),
        );
      }
      steps.push(
        matmul(gpu, { out: buf.dActs, a: buf.gRecon, b: W_dec.value.buffer, M: B, N: S, K: D, transB: true, label: 'sae d acts' }, U),
        k1(
          'sae_act_backward_v1',
          { clk, acts: buf.acts, d_in_a: buf.dActs, norms: buf.norms, aux_sel: aux?.sel ?? standIn(), d_in_b: aux?.dActs ?? standIn(), g_out: buf.dPre },
          'activation backward',
        ),
      );
      if (logT) steps.push(k1('sae_threshold_grad_v1', { clk, log_threshold: logT.value.buffer, pre: buf.pre, d_in_a: buf.dActs, g_out: logT.grad.buffer }, 'threshold gradient'));
      // Weight gradients A^T B on the matmul: A transposed first (the matmul reads A row-major).
      steps.push(
        transpose(gpu, { out: buf.xcT, x: buf.xc, R: B, C: D, label: 'sae xc^T' }, U),
        matmul(gpu, { out: W_enc.grad.buffer, a: buf.xcT, b: buf.dPre, M: D, N: S, K: B, label: 'sae dW_enc' }, U),
        transpose(gpu, { out: buf.actsT, x: buf.acts, R: B, C: S, label: 'sae acts^T' }, U),
        // TopK: the reconstruction's share into a scratch, then added to AuxK's.
        matmul(gpu, { out: aux?.dWmain ?? W_dec.grad.buffer, a: buf.actsT, b: buf.gRecon, M: S, N: D, K: B, label: 'sae dW_dec' }, U),
      );
      if (aux) {
        steps.push(
          transpose(gpu, { out: aux.actsT, x: aux.acts, R: B, C: S, label: 'sae aux acts^T' }, U),
          matmul(gpu, { out: aux.dW, a: aux.actsT, b: aux.g, M: S, N: D, K: B, label: 'sae dW_dec auxk' }, U),
          add(gpu, { out: W_dec.grad.buffer, a: aux.dWmain, b: aux.dW, n: S * D, label: 'sae dW_dec + auxk' }, U),
        );
      }
      steps.push(k1('sae_colsum_v1', { d_in_a: buf.dPre, g_out: b_enc.grad.buffer }, 'db_enc', { I: S }));
      if (arch === 'standard') {
        steps.push(
          k1('sae_colsum_v1', { d_in_a: buf.acts, g_out: buf.colsumS }, 'activation sums', { I: S }),
          k1('sae_dec_l1_v1', { clk, norms: buf.norms, g_out: W_dec.grad.buffer, d_in_b: buf.colsumS, W_dec: W_dec.value.buffer }, 'dW_dec L1'),
        );
      }
      steps.push(k1('sae_colsum_v1', { d_in_a: buf.gRecon, g_out: buf.colsumD }, 'g_recon sums', { I: D }));
      if (aux) steps.push(k1('sae_colsum_v1', { d_in_a: aux.g, g_out: buf.colsumD }, 'g_aux sums', { I: D, accumulate: true }));
      steps.push(
        k1('sae_bias_dec_v1', { W_enc: W_enc.value.buffer, d_in_a: b_enc.grad.buffer, g_out: b_dec.grad.buffer, d_in_b: buf.colsumD }, 'db_dec'),
        k1('sae_fired_v1', { acts: buf.acts, since: buf.since }, 'fired'),
        k1('sae_reduce_v1', { row_stats: buf.rowStats, clk, stats: buf.stats, metrics: this.metrics.buffer }, 'metrics'),
      );
      const final = config.coefficient ?? 1;
      const warmup = config.coefficientWarmup ?? 0;
      this.task = { steps, metrics: { sae: { buffer: this.metrics.buffer, count: 8 } }, scalar: (t) => coefficientAt(final, warmup, t) };
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  /**
   * The SAE in SAELens' format: `cfg.json` (an inference config of the architecture) and
   * `sae_weights.safetensors` (W_enc, b_enc, W_dec, b_dec, and for JumpReLU `threshold`).
   */
  async toSaeLens(): Promise<SaeLensFiles> {
    const v = await this.params.read();
    return saeLensFiles(
      {
        architecture: this.config.architecture,
        W_enc: v.get('W_enc')!,
        b_enc: v.get('b_enc')!,
        W_dec: v.get('W_dec')!,
        b_dec: v.get('b_dec')!,
        ...(v.has('log_threshold') ? { threshold: v.get('log_threshold')!.map(Math.exp) } : {}),
        k: this.dims.k,
        dIn: this.store.width,
        dSae: this.config.dSae,
      },
      { hookName: this.store.hookName, modelName: this.config.modelName ?? null },
    );
  }

  /** The trained SAE loaded as src/features loads any SAELens SAE (on this GPU), to splice into runs. */
  async toSae(): Promise<Sae> {
    const files = await this.toSaeLens();
    return loadSae(this.gpu, blobModelSource({ 'cfg.json': new TextEncoder().encode(files['cfg.json']), 'sae_weights.safetensors': files['sae_weights.safetensors'] }, 'trained SAE'));
  }

  destroy(): void {
    for (const x of this.owned) x.release();
    this.owned.length = 0;
    for (const u of this.uniforms) u.destroy();
    for (const b of this.stand) b.destroy();
    this.params.destroy();
  }
}
