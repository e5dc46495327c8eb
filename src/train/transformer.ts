/**
 * Training a transformer on the engine's own forward and backward plans (`model/forward.ts`,
 * `model/backward.ts`): the plans are built once for the batch shape and replayed every update,
 * as `runWithGrad` replays them, with a cross-entropy loss over the batch's chosen targets
 * (`token-loss.ts`) in place of a metric, and the optimizer over every weight in the forward's
 * layout (elementwise updates give the same result in any layout; saving maps back to the
 * checkpoint's names and layouts).
 *
 *   const training = new TransformerTraining(gpu, clock, model, { batch: 64, pos: 48, data: (t) => ... });
 *   const opt = new Optimizer(gpu, clock, training.entries, { kind: 'adamw', lr: 1e-3, clipNorm: 1 });
 *   await new Trainer(gpu, clock, training.task, opt).train({ until: 3000 }).done;
 *
 * Token batches come from the host (`data(t)`, the batch of update t): the embedding's backward
 * scatters by a token index the host builds from the tokens, so one update runs per submit.
 * The model's weights are trained in place: run it, ablate it, save it at any point.
 */
import type { Gpu } from '../gpu/device.ts';
import { NO_TARGET } from '../../shaders/token-loss.wgsl.ts';
import { tokenLoss } from '../gpu/kernels/token-loss.ts';
import type { Params, Step } from '../gpu/recorder.ts';
import { numel } from '../gpu/tensor.ts';
import type { RowChunk } from '../gpu/chunked.ts';
import { buildBackward, savedSites, type BackwardPlan, type MemoryMode } from '../model/backward.ts';
import type { ModelConfig } from '../model/config.ts';
import { buildForward, type ForwardPlan } from '../model/forward.ts';
import { GpuMetricBackward } from '../model/metric-backward.ts';
import type { Metric } from '../model/metric.ts';
import type { GpuWeights } from '../model/gpu-weights.ts';
import type { Model } from '../hooks/model.ts';
import { WeightGradients, toCheckpointLayout } from '../model/weight-grads.ts';
import type { UpdateEntry } from './optimizer.ts';
import type { TrainTask } from './trainer.ts';

/** One update's data: token rows, the (row, position, target) pairs scored, and the loss's divisor. */
export interface TrainBatch {
  ids: readonly (readonly number[])[];
  targets: readonly { row: number; pos: number; target: number }[];
  /** loss = sum of the targets' cross-entropies / divisor (default: the number of targets). */
  divisor?: number;
}

export interface TransformerTrainOptions {
  batch: number;
  pos: number;
  /** The batch of update t (1-based). */
  data: (t: number) => TrainBatch;
  /**
   * The checkpoint's tensor names: a forward-layout weight that feeds none of them is not a
   * parameter (a Llama checkpoint without biases still has zero bias buffers on the GPU) and is
   * not trained. Default: every weight is.
   */
  checkpointNames?: readonly string[];
  /**
   * Which weights to train, by the forward-layout names of `WeightGradients.tensors()`
   * (`blocks.0.attn.W_Q`, `embed.W_E`, ...). Default: all (that are parameters).
   */
  trainable?: (name: string) => boolean;
  /** 'keep' every layer's activations for the backward (default), or 'recompute' them. */
  memory?: MemoryMode;
  /**
   * Minimize this metric (`experiments/metric.ts`, one for every row; the objective is its sum
   * over rows) instead of the cross-entropy of the batch's targets. A loss metric is better given
   * as targets (`lossTargets`): it runs on a kernel made for it.
   */
  metric?: Metric;
}

/** The targets of `loss:start:end` on every row: predicting token t + 1 at t, start <= t < end, divided by end - start. */
export function lossTargets(ids: readonly (readonly number[])[], start: number, end: number): TrainBatch {
  const targets = ids.flatMap((row, r) => Array.from({ length: end - start }, (_, k) => ({ row: r, pos: start + k, target: row[start + k + 1]! })));
  return { ids, targets, divisor: end - start };
}

/** Every weight buffer of the forward, by the names `WeightGradients.tensors()` gives their gradients. */
export function weightTensors(cfg: ModelConfig, w: GpuWeights): Map<string, RowChunk[]> {
  const out = new Map<string, RowChunk[]>();
  const one = (buffer: GPUBuffer, rows: number): RowChunk[] => [{ buffer, row0: 0, rows }];
  out.set('embed.W_E', w.W_E);
  if (w.W_pos) out.set('pos_embed.W_pos', w.W_pos);
  const fields: [keyof GpuWeights['layers'][number], string][] = [
    ['ln1_w', 'ln1.w'],
    ['ln1_b', 'ln1.b'],
    ['W_Q', 'attn.W_Q'],
    ['b_Q', 'attn.b_Q'],
    ['W_K', 'attn.W_K'],
    ['b_K', 'attn.b_K'],
    ['W_V', 'attn.W_V'],
    ['b_V', 'attn.b_V'],
    ['W_O', 'attn.W_O'],
    ['b_O', 'attn.b_O'],
    ['ln2_w', 'ln2.w'],
    ['ln2_b', 'ln2.b'],
    ['W_in', 'mlp.W_in'],
    ['b_in', 'mlp.b_in'],
    ['W_gate', 'mlp.W_gate'],
    ['b_gate', 'mlp.b_gate'],
    ['W_out', 'mlp.W_out'],
    ['b_out', 'mlp.b_out'],
  ];
  w.layers.forEach((layer, l) => {
    for (const [key, name] of fields) {
      const b = layer[key] as GPUBuffer | null;
      if (b) out.set(`blocks.${l}.${name}`, one(b, 0));
    }
  });
  out.set('ln_final.w', one(w.lnf_w, cfg.d_model));
  if (w.lnf_b) out.set('ln_final.b', one(w.lnf_b, cfg.d_model));
  if (w.W_U_rows !== w.W_E) out.set('unembed.W_U', w.W_U_rows);
  return out;
}

/**
 * Which forward-layout weights each checkpoint tensor is made of: `toCheckpointLayout` run once
 * on weights filled with each tensor's index + 1 (exact in fp32), reading back the values each
 * checkpoint tensor holds. Checkpoint name -> forward names.
 */
export function checkpointSources(cfg: ModelConfig, shapes: ReadonlyMap<string, readonly number[]>): Map<string, string[]> {
  const names = [...shapes.keys()];
  const probe = new Map(names.map((n, k) => [n, { data: new Float32Array(numel(shapes.get(n)!)).fill(k + 1), shape: [...shapes.get(n)!] }]));
  const out = new Map<string, string[]>();
  for (const [ck, t] of toCheckpointLayout(cfg, probe))
    out.set(
      ck,
      [...new Set(t.data)].map((v) => names[v - 1]!),
    );
  return out;
}

export class TransformerTraining {
  readonly task: TrainTask;
  /** The optimizer's view: each trainable weight (each row chunk) with its gradient. */
  readonly entries: UpdateEntry[];
  readonly grads: WeightGradients;
  private readonly fwd: ForwardPlan;
  private readonly bwd: BackwardPlan;
  private readonly params: Params[] = [];
  private readonly owned: GPUBuffer[] = [];
  private metricBackward: GpuMetricBackward | null = null;

  constructor(
    readonly gpu: Gpu,
    readonly model: Model,
    readonly options: TransformerTrainOptions,
  ) {
    const cfg = model.config;
    const weights = model.gpuWeights;
    if (weights.f16) throw new Error('training needs fp32 weights: load the model with { f16: false }');
    if (model.processing !== 'none') throw new Error("training needs the checkpoint's own weights: load the model with processing 'none'");
    const { batch: B, pos: T } = options;
    const positions = Array.from({ length: T }, (_, t) => t);
    const V = cfg.d_vocab;
    this.grads = new WeightGradients(gpu, cfg, weights);
    try {
      this.fwd = buildForward(gpu, cfg, weights, { batch: B, pos: T, logitPositions: positions });
      this.bwd = buildBackward(gpu, cfg, weights, this.fwd, { detachPattern: false, detachScale: false, weightGrads: this.grads, accumulate: false, columns: null, memory: options.memory ?? 'keep' });
      const buf = (bytes: number, label: string, usage = 0x80 | 0x8 | 0x4) => {
        const b = gpu.device.createBuffer({ size: Math.max(16, bytes), usage, label });
        this.owned.push(b);
        return b;
      };
      const targets = buf(B * T * 4, 'training targets');
      const count = buf(4, 'training target count');
      const lossPart = buf(B * T * 4, 'training loss per row');
      const loss = buf(4, 'training loss');
      const standIn = buf(16, 'unused', 0x80);
      const steps: Step[] = [];
      this.recordForward(steps);
      let objective: { buffer: GPUBuffer; count: number };
      if (options.metric) {
        // The metric's gradient overwrites the logits, as in runWithGrad; its values ([B, T]) are the objective's terms.
        this.metricBackward = new GpuMetricBackward(gpu, options.metric, { logits: this.bwd.dlogits, B, positions, V });
        steps.push(...this.metricBackward.dispatches);
        objective = { buffer: this.metricBackward.values.buffer, count: B * T };
      } else {
        steps.push(...tokenLoss(gpu, { logits: this.fwd.logits!, targets, count, dlogits: null, lossPart, loss, R: B * T, V, label: 'training loss' }, this.params, standIn));
        objective = { buffer: loss, count: 1 };
      }
      this.recordBackward(steps);
      // Without rotary embeddings the key bias has no gradient: it adds q . b_K to every score of a
      // query, which the softmax cancels. The backward's fp32 sum leaves ~1e-9 of noise there, and
      // Adam, which divides each gradient by its own running scale, would turn that noise into
      // steps of up to lr; exact zeros it is, as in float64.
      if (cfg.positional !== 'rotary') {
        const n = cfg.n_key_value_heads * cfg.d_head;
        const zeros = buf(n * 4, 'zero key-bias gradient');
        for (const layer of this.grads.layers) steps.push({ kind: 'copy', src: zeros, srcOffset: 0, dst: layer.b_K, dstOffset: 0, size: n * 4 });
      }

      let isParameter = (_: string) => true;
      if (options.checkpointNames) {
        const shapes = new Map(this.grads.tensors().map((t) => [t.name, t.shape]));
        const present = new Set(options.checkpointNames);
        const fed = new Set([...checkpointSources(cfg, shapes)].filter(([ck]) => present.has(ck)).flatMap(([, fwd]) => fwd));
        isParameter = (n) => fed.has(n);
      }
      const trainable = (n: string) => isParameter(n) && (options.trainable?.(n) ?? true);
      const wt = weightTensors(cfg, weights);
      this.entries = [];
      for (const g of this.grads.tensors()) {
        if (!trainable(g.name)) continue;
        const w = wt.get(g.name);
        if (!w) throw new Error(`internal: no weight buffer for the gradient ${g.name}`);
        const width = numel(g.shape) / g.shape[0]!;
        g.chunks.forEach((gc, k) => {
          const rows = gc.rows || g.shape[0]!;
          this.entries.push({ name: g.chunks.length > 1 ? `${g.name}[${gc.row0}]` : g.name, param: w[k]!.buffer, grad: gc.buffer, n: rows * width });
        });
      }

      const flat = new Uint32Array(B * T);
      const tgt = new Uint32Array(B * T);
      this.task = {
        steps,
        slots: 1,
        // `objective`: the loss ([1]), or with a metric its terms ([B, T]): `objectiveValue` sums them.
        metrics: { objective },
        prepare: (t0) => {
          const batch = options.data(t0 + 1);
          if (batch.ids.length !== B || batch.ids.some((r) => r.length !== T)) throw new Error(`the batch of update ${t0 + 1} is not ${B} rows of ${T} tokens`);
          batch.ids.forEach((row, b) => flat.set(row, b * T));
          tgt.fill(NO_TARGET);
          for (const { row, pos, target } of batch.targets) tgt[row * T + pos] = target;
          gpu.device.queue.writeBuffer(this.fwd.ids!, 0, flat);
          this.bwd.setTokens(flat);
          gpu.device.queue.writeBuffer(targets, 0, tgt);
          gpu.device.queue.writeBuffer(count, 0, Uint32Array.of(Math.round(batch.divisor ?? batch.targets.length)));
        },
      };
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  /** The forward's dispatches, copying what the backward reads (no hooks). */
  private recordForward(out: Step[], from = 0, to = this.fwd.steps.length, copies: ReadonlyMap<string, GPUBuffer> = this.bwd.forwardSaves): void {
    for (let i = from; i < to; i++) {
      const s = this.fwd.steps[i]!;
      if (s.kind === 'dispatch') out.push(s);
      else if (s.kind === 'on-demand') {
        if (s.ifRead.some((n) => copies.has(n))) out.push(...s.dispatches);
      } else {
        const dst = copies.get(s.name);
        if (dst) out.push({ kind: 'copy', src: s.buffer, srcOffset: 0, dst, dstOffset: 0, size: numel(s.shape) * 4 });
      }
    }
  }

  /** The backward's dispatches; a recomputed layer replays its forward from its saved input. */
  private recordBackward(out: Step[]): void {
    const cfg = this.model.config;
    const { batch: B, pos: T } = this.options;
    const siteIndex = (name: string) => this.fwd.steps.findIndex((s) => s.kind === 'site' && s.name === name);
    for (const s of this.bwd.steps) {
      if (s.kind === 'dispatch' || s.kind === 'copy') out.push(s);
      else if (s.kind === 'replay') {
        const l = s.layer;
        const start = siteIndex(`blocks.${l}.hook_resid_pre`);
        const end = siteIndex(`blocks.${l}.mlp.hook_post`) + 1;
        const resid = (this.fwd.steps[start] as { buffer: GPUBuffer }).buffer;
        out.push({ kind: 'copy', src: this.bwd.savedResid[l]!, srcOffset: 0, dst: resid, dstOffset: 0, size: B * T * cfg.d_model * 4 });
        const copies = new Map(savedSites(cfg).map((rel) => [`blocks.${l}.${rel}`, this.bwd.replaySaves.get(rel)!]));
        this.recordForward(out, start + 1, end, copies);
      }
    }
  }

  /** The objective from a report's `objective` metric: the loss, or the metric summed over rows. */
  static objectiveValue(values: Float32Array): number {
    let s = 0;
    for (const v of values) s += v;
    return s;
  }

  destroy(): void {
    this.metricBackward?.release();
    this.bwd?.destroy();
    this.fwd?.destroy();
    this.grads.release();
    for (const p of this.params) p.destroy();
    for (const b of this.owned) b.destroy();
  }
}
