/**
 * Toy Models of Superposition (Elhage et al. 2022) as a training task: I instances of
 * ReLU(W^T W x + b) side by side (one per sparsity, as the paper trains them), each with its own
 * feature probability and importances, features drawn on the GPU every step.
 *
 *   const clock = new TrainClock(gpu);
 *   const toy = new ToyModel(gpu, clock, { features: 5, hidden: 2, featureProbability: [1, 0.2, 0.1] });
 *   const opt = new Optimizer(gpu, clock, entriesOf(toy.params.list), { kind: 'adamw', lr: 1e-3 });
 *   await new Trainer(gpu, clock, toy.task, opt).train({ until: 10_000 }).done;
 *   const W = await toy.params.get('W').value.read(); // [I, F, H]
 *
 * Parameter names follow the paper's code: `W` [instances, features, hidden] and `b_final`
 * [instances, features].
 */
import type { Gpu } from '../gpu/device.ts';
import { sparseFeatures } from '../gpu/kernels/synthetic.ts';
import { TMS_MATMUL_FROM, tmsBackward, tmsForward, tmsStepV2, tmsStepV3, type TmsBuffers, type TmsVersion } from '../gpu/kernels/superposition.ts';
import type { TmsDims } from '../gpu/kernels/superposition.cpu.ts';
import type { Params, Step } from '../gpu/recorder.ts';
import { Tensor } from '../gpu/tensor.ts';
import type { TrainClock } from './clock.ts';
import { ParamStore } from './params.ts';
import { SeededRandom } from '../util/random.ts';
import type { TrainTask } from './trainer.ts';

export interface ToyModelConfig {
  /** n: input features (5 in the paper's first figure, 20, 100, 400 later). */
  features: number;
  /** m: hidden dimensions (2, 5, 20, 30). */
  hidden: number;
  /** Per instance, the probability that a feature is present (1 - sparsity). Its length is the instance count. */
  featureProbability: readonly number[];
  /** Importance of feature f: one list for every instance, or one per instance. Default 0.9^f. */
  importance?: readonly number[] | readonly (readonly number[])[];
  /** Batch rows per step. Default 1024, the paper's. */
  batch?: number;
  /** Seeds the initial weights and every batch. Default 0. */
  seed?: number;
  /** Kernel version (`shaders/superposition.wgsl.ts`); default v3 from F H >= TMS_MATMUL_FROM weights per instance, else v1. */
  version?: TmsVersion;
}

/** The importance 0.9^f of the paper's figures. */
export function geometricImportance(features: number, ratio = 0.9): number[] {
  return Array.from({ length: features }, (_, f) => ratio ** f);
}

/** Initial weights: W per instance ~ Xavier normal (std sqrt(2 / (F + H))), b = 0. */
export function toyInit(config: ToyModelConfig): { W: Float32Array; b: Float32Array } {
  const I = config.featureProbability.length;
  const { features: F, hidden: H } = config;
  const rng = new SeededRandom(config.seed ?? 0);
  return { W: rng.normal(I * F * H, Math.sqrt(2 / (F + H))), b: new Float32Array(I * F) };
}

/** The importances as [I, F]. */
export function importanceMatrix(config: ToyModelConfig): Float32Array {
  const I = config.featureProbability.length;
  const F = config.features;
  const imp = config.importance ?? geometricImportance(F);
  const out = new Float32Array(I * F);
  for (let i = 0; i < I; i++) {
    const row = (Array.isArray(imp[0]) ? (imp as readonly (readonly number[])[])[i] : imp) as readonly number[] | undefined;
    if (!row || row.length !== F) throw new Error(`importance: expected ${F} values${Array.isArray(imp[0]) ? ` for instance ${i}` : ''}`);
    out.set(row, i * F);
  }
  return out;
}

export class ToyModel {
  readonly dims: TmsDims;
  readonly params: ParamStore;
  readonly task: TrainTask;
  /** The step's tensors, by the names of `shaders/superposition.wgsl.ts`. */
  readonly buffers: Record<'importance' | 'prob' | 'x' | 'h' | 'y' | 'lossPart' | 'loss' | 'dpre' | 'dh', Tensor> & Partial<Record<'hh' | 'xt' | 'wt' | 'ht' | 'dht' | 'dwa' | 'dwb', Tensor>>;
  readonly version: TmsVersion;
  private readonly uniforms: Params[] = [];

  constructor(
    readonly gpu: Gpu,
    clock: TrainClock,
    readonly config: ToyModelConfig,
  ) {
    const I = config.featureProbability.length;
    const { features: F, hidden: H } = config;
    const B = config.batch ?? 1024;
    if (I < 1 || F < 1 || H < 1 || B < 1) throw new Error(`toy model: instances ${I}, features ${F}, hidden ${H} and batch ${B} must all be at least 1`);
    for (const p of config.featureProbability) if (!(p >= 0 && p <= 1)) throw new Error(`toy model: feature probability ${p} is not in [0, 1]`);
    this.dims = { B, I, F, H };
    this.version = config.version ?? (F * H >= TMS_MATMUL_FROM ? 'v3' : 'v1');
    const v = this.version;
    const init = toyInit(config);
    this.params = new ParamStore(gpu, [
      { name: 'W', shape: [I, F, H], init: init.W },
      { name: 'b_final', shape: [I, F], init: init.b },
    ]);
    const made: Tensor[] = [];
    const t = (shape: number[], label: string, data?: Float32Array) => {
      const x = data ? Tensor.from(gpu, data, shape, label) : Tensor.empty(gpu, shape, label);
      made.push(x);
      return x;
    };
    try {
      this.buffers = {
        importance: t([I, F], 'importance', importanceMatrix(config)),
        prob: t([I], 'feature probability', Float32Array.from(config.featureProbability)),
        x: t([I, B, F], 'features'),
        h: t(v === 'v1' ? [I, B, H] : [1], 'hidden'), // v2 keeps h in hh, v3 in ht

        y: t([I, B, F], 'output'),
        lossPart: t(v === 'v3' ? [I, F] : [I, B], 'loss per row (v3: per feature)'),
        loss: t([I], 'loss per instance'),
        dpre: t([I, B, F], 'd pre-activation'),
        dh: t(v === 'v1' ? [I, B, H] : [1], 'd hidden'),
        ...(v === 'v2' ? { hh: t([I, 2 * B, H], 'hidden and d hidden'), xt: t([I, F, 2 * B], 'dpre and features transposed') } : {}),
        ...(v === 'v3'
          ? {
              xt: t([I, F, B], 'features transposed'),
              wt: t([I, H, F], 'W transposed'),
              ht: t([I, H, B], 'hidden transposed'),
              dht: t([I, H, B], 'd hidden transposed'),
              dwa: t([I, H, F], 'dW^T part a'),
              dwb: t([I, H, F], 'dW^T part b'),
            }
          : {}),
      };
      const W = this.params.get('W');
      const b = this.params.get('b_final');
      const k = this.buffers;
      const bufs: TmsBuffers = {
        W: W.value.buffer,
        b: b.value.buffer,
        importance: k.importance.buffer,
        x: k.x.buffer,
        h: k.h.buffer,
        y: k.y.buffer,
        lossPart: k.lossPart.buffer,
        loss: k.loss.buffer,
        dpre: k.dpre.buffer,
        dh: k.dh.buffer,
        dW: W.grad.buffer,
        db: b.grad.buffer,
        ...Object.fromEntries((['hh', 'xt', 'wt', 'ht', 'dht', 'dwa', 'dwb'] as const).filter((n) => k[n]).map((n) => [n, k[n]!.buffer])),
      };
      const steps: Step[] = [
        sparseFeatures(gpu, { x: k.x.buffer, prob: k.prob.buffer, B, I, F, seed: config.seed ?? 0, clock: clock.buffer, label: 'toy features' }, this.uniforms),
        ...(v === 'v3'
          ? tmsStepV3(gpu, { bufs, dims: this.dims, label: 'toy' }, this.uniforms)
          : v === 'v2'
            ? tmsStepV2(gpu, { bufs, dims: this.dims, label: 'toy' }, this.uniforms)
            : [...tmsForward(gpu, { bufs, dims: this.dims, label: 'toy' }, this.uniforms), ...tmsBackward(gpu, { bufs, dims: this.dims, label: 'toy' }, this.uniforms)]),
      ];
      this.task = { steps, metrics: { loss: { buffer: k.loss.buffer, count: I } } };
    } catch (e) {
      for (const x of made) x.release();
      this.params.destroy();
      for (const u of this.uniforms) u.destroy();
      throw e;
    }
  }

  /** W [I, F, H] and b_final [I, F] as they are now. */
  async weights(): Promise<{ W: Float32Array; b: Float32Array }> {
    return { W: await this.params.get('W').value.read(), b: await this.params.get('b_final').value.read() };
  }

  destroy(): void {
    for (const x of Object.values(this.buffers)) x?.release();
    this.params.destroy();
    for (const u of this.uniforms) u.destroy();
  }
}
