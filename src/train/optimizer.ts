/**
 * Optimizers on the GPU: AdamW and SGD exactly as torch.optim computes them, with optional
 * gradient clipping by global norm (torch.nn.utils.clip_grad_norm_) and a learning-rate schedule.
 * An optimizer is a list of dispatches recorded once (clip, then one update per tensor) plus the
 * clock row of each update; its state (exp_avg, exp_avg_sq or momentum_buffer per parameter)
 * lives in GPU tensors named after the parameter.
 */
import type { Gpu } from '../gpu/device.ts';
import { clip, sumsq, sumsqPartials } from '../gpu/kernels/grad-norm.ts';
import { adamScalars, type AdamWHyper, type SgdHyper } from '../gpu/kernels/optim.cpu.ts';
import { adamw, sgd } from '../gpu/kernels/optim.ts';
import type { Params, Step } from '../gpu/recorder.ts';
import { Tensor } from '../gpu/tensor.ts';
import type { ClockRow, TrainClock } from './clock.ts';
import type { Param } from './params.ts';
import { asSchedule, type LrSchedule } from './schedule.ts';

/** A tensor to update: a parameter and its gradient, where they lie (a store's, or a model's weights). */
export interface UpdateEntry {
  name: string;
  param: GPUBuffer;
  paramStart?: number;
  grad: GPUBuffer;
  gradStart?: number;
  n: number;
  /** Overrides the optimizer's weight decay for this tensor. */
  weightDecay?: number;
}

export interface AdamWOptions {
  kind: 'adamw';
  /** A learning rate or a schedule of update t (1-based). Default 1e-3. */
  lr?: number | LrSchedule;
  betas?: [number, number]; // (0.9, 0.999)
  eps?: number; // 1e-8
  weightDecay?: number; // 0.01, torch.optim.AdamW's default
  /** Clip gradients to this global L2 norm first (0 or absent: no clipping). */
  clipNorm?: number;
}

export interface SgdOptions {
  kind: 'sgd';
  lr?: number | LrSchedule; // 1e-3
  momentum?: number; // 0
  dampening?: number; // 0
  nesterov?: boolean;
  weightDecay?: number; // 0
  clipNorm?: number;
}

export type OptimizerOptions = AdamWOptions | SgdOptions;

/** Update entries for every parameter of a store. */
export function entriesOf(params: readonly Param[]): UpdateEntry[] {
  return params.map((p) => ({ name: p.name, param: p.value.buffer, grad: p.grad.buffer, n: p.value.numel, ...(p.weightDecay !== undefined ? { weightDecay: p.weightDecay } : {}) }));
}

/**
 * The gradient ranges whose squares the norm sums: each entry's, except that entries lying back
 * to back in one buffer (after sorting each buffer's entries by position) are one range, summed
 * by one dispatch. Entries sharing a range exactly (a zero gradient two names point at) stay
 * apart, so every entry counts once as before.
 */
export function sumsqRanges(entries: readonly UpdateEntry[]): { grad: GPUBuffer; start: number; n: number; name: string }[] {
  const byBuffer = new Map<GPUBuffer, UpdateEntry[]>();
  for (const e of entries) byBuffer.set(e.grad, [...(byBuffer.get(e.grad) ?? []), e]);
  const ranges: { grad: GPUBuffer; start: number; n: number; name: string }[] = [];
  for (const [grad, list] of byBuffer) {
    const sorted = [...list].sort((a, b) => (a.gradStart ?? 0) - (b.gradStart ?? 0));
    let cur: (typeof ranges)[number] | null = null;
    for (const e of sorted) {
      const start = e.gradStart ?? 0;
      if (cur && cur.start + cur.n === start) {
        cur.n += e.n;
        cur.name = `${cur.name.split(' .. ')[0]} .. ${e.name}`;
      } else {
        cur = { grad, start, n: e.n, name: e.name };
        ranges.push(cur);
      }
    }
  }
  return ranges;
}

export class Optimizer {
  /** The dispatches of one update: gradient norm and clipping factor (when clipping), then each tensor. */
  readonly steps: Step[] = [];
  readonly kind: 'adamw' | 'sgd';
  readonly schedule: LrSchedule;
  private readonly stateTensors = new Map<string, Tensor>();
  private readonly params: Params[] = [];
  private readonly partials: GPUBuffer | null = null;
  private readonly adam: AdamWHyper | null = null;

  constructor(
    gpu: Gpu,
    clock: TrainClock,
    entries: readonly UpdateEntry[],
    readonly options: OptimizerOptions,
  ) {
    this.kind = options.kind;
    this.schedule = asSchedule(options.lr ?? 1e-3);
    try {
      const clipNorm = options.clipNorm ?? 0;
      if (clipNorm > 0) {
        const ranges = sumsqRanges(entries);
        const counts = ranges.map((r) => sumsqPartials(r.n));
        const total = counts.reduce((a, b) => a + b, 0);
        this.partials = gpu.device.createBuffer({ size: total * 4, usage: 0x80, label: 'gradient norm partials' });
        let at = 0;
        ranges.forEach((r, k) => {
          this.steps.push(sumsq(gpu, { grad: r.grad, gradStart: r.start, n: r.n, partials: this.partials!, partStart: at, label: `${r.name} sum of squares` }, this.params));
          at += counts[k]!;
        });
        this.steps.push(clip(gpu, { partials: this.partials, count: total, clock: clock.buffer, maxNorm: clipNorm, label: 'clip gradients' }, this.params));
      }
      const zeros = (e: UpdateEntry, slot: string) => {
        const t = Tensor.from(gpu, new Float32Array(e.n), [e.n], `${e.name}.${slot}`);
        this.stateTensors.set(`${e.name}.${slot}`, t);
        return t.buffer;
      };
      for (const e of entries) {
        const target = { param: e.param, paramStart: e.paramStart ?? 0, grad: e.grad, gradStart: e.gradStart ?? 0, n: e.n, clock: clock.buffer, label: `${options.kind} ${e.name}` };
        if (options.kind === 'adamw') {
          const [beta1, beta2] = options.betas ?? [0.9, 0.999];
          this.adam = { beta1, beta2, eps: options.eps ?? 1e-8, weightDecay: options.weightDecay ?? 0.01 };
          const h = { ...this.adam, weightDecay: e.weightDecay ?? this.adam.weightDecay };
          this.steps.push(adamw(gpu, { ...target, m: zeros(e, 'exp_avg'), v: zeros(e, 'exp_avg_sq'), hyper: h }, this.params));
        } else {
          const h: SgdHyper = { momentum: options.momentum ?? 0, dampening: options.dampening ?? 0, nesterov: options.nesterov ?? false, weightDecay: e.weightDecay ?? options.weightDecay ?? 0 };
          if (h.nesterov && (h.momentum <= 0 || h.dampening !== 0)) throw new Error('SGD: Nesterov momentum requires a momentum and zero dampening (as in torch.optim.SGD)');
          // Without momentum the buffer is never read or written, but it is bound (a writable
          // binding may not alias the gradient's): a one-element stand-in.
          const buf = h.momentum !== 0 ? zeros(e, 'momentum_buffer') : this.standIn(gpu);
          this.steps.push(sgd(gpu, { ...target, buf, hyper: h }, this.params));
        }
      }
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  private unused: Tensor | null = null;

  private standIn(gpu: Gpu): GPUBuffer {
    this.unused ??= Tensor.from(gpu, new Float32Array(1), [1], 'no momentum buffer');
    return this.unused.buffer;
  }

  /** The clock row of update t (1-based): lr, and for AdamW its step size and sqrt(1 - beta2^t). */
  row(t: number): ClockRow {
    const lr = this.schedule(t);
    if (!this.adam) return [lr, 0, 0];
    const { stepSize, bc2Sqrt } = adamScalars(lr, this.adam.beta1, this.adam.beta2, t);
    return [lr, stepSize, bc2Sqrt];
  }

  /** Optimizer state by `<parameter>.<slot>` (exp_avg, exp_avg_sq; momentum_buffer), [n] each. */
  get state(): ReadonlyMap<string, Tensor> {
    return this.stateTensors;
  }

  destroy(): void {
    for (const t of this.stateTensors.values()) t.release();
    this.stateTensors.clear();
    for (const p of this.params) p.destroy();
    this.params.length = 0;
    this.partials?.destroy();
    this.unused?.release();
  }
}
