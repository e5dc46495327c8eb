/**
 * Training an attention-only model on kernels made for small models: the induction recipe's
 * 2-layer, 64-wide GPT-2 without MLPs, and any model like it (LayerNorm, learned positions,
 * causal attention with its per-layer scale, tied or untied unembedding without bias, MLPs that
 * are zero and not trained). The general path (`transformer.ts`) runs the engine's forward and
 * backward plans, ~190 dispatches written for GPT-2-sized rows; this one is ~50 dispatches an
 * update (optimizer included), each over the whole batch, and works in the last layer only where
 * a target is scored. It is a drop-in for `TransformerTraining`: the same `task` and `entries`, the
 * model's own weights trained in place, the same numbers to float rounding (tests check both
 * against the float64 reference `attn-only.cpu.ts` and against each other).
 *
 * One update, B sequences of T tokens, R = B T rows:
 *
 *   batch         drawn on the GPU (`generate`), or copied from the host's staged slot
 *   pack          W_qkv and its transpose (last layer: W_kv, W_Q^T), b_qkv, W_O^T per layer
 *                 and W_U^T from the weights (the optimizer changed them): the operands the
 *                 matmuls read along their rows
 *   embed         x0 = W_E[ids] + W_pos
 *   layers        LayerNorm -> qkv = a W_qkv + b -> attention (p, or with v3 its lse, kept)
 *                 -> x += z W_O + b_O; the last layer: keys and values at every row, queries,
 *                 attention and output at the scored rows only (gathered: target space,
 *                 [CAP, ...]); or, where few rows are scored (`foldKeys`), no keys or values at
 *                 all: u = W_K q and z = (sum p a) W_V + b_V at the scored rows, the attention
 *                 scoring the ln outputs a directly (the induction recipe: 4 x fewer
 *                 multiply-adds in that layer)
 *   final         LayerNorm at the scored rows -> logits [CAP, V] -> loss and dlogits
 *   backward      dlogits -> d(ln_final) -> dx at the scored rows; per layer (last first):
 *                 dz = dx W_O^T, dW_O, attention backward -> dqkv, dW_qkv, da = dqkv W_qkv^T,
 *                 LayerNorm backward into dx, norm gains; then dW_pos, dW_E (CSR scatter) and
 *                 the unembedding's gradient
 *
 * Host-drawn batches are staged per update in `slots` slots so that many updates run per
 * submit: each slot holds the ids, the scored (row, target) pairs sorted by row with each
 * sequence's first, and the rows sorted by token (the embedding gradient's index).
 */
import type { Gpu } from '../gpu/device.ts';
import type { Step } from '../gpu/recorder.ts';
import { bindWindow } from '../gpu/window.ts';
import { attentionScale, type ModelConfig } from '../model/config.ts';
import type { Model } from '../hooks/model.ts';
import { readBuffer } from '../gpu/tensor.ts';
import {
  attnBackwardSource,
  attnBackwardV4Source,
  attnForwardV3Source,
  attnBackwardFoldedSource,
  attnForwardFoldedSource,
  packKvFoldedSource,
  attnForwardSource,
  colSumsSource,
  embedGradSource,
  embedSource,
  lnBackwardSource,
  lnForwardSource,
  lossRowsSource,
  packKvSource,
  packQkvSource,
  slotRowsSource,
  attnForwardSlotsSource,
  attnBackwardSlotsSource,
  attnBackwardSlotsV2Source,
  posGradSource,
  transposeSource,
  ROW_WG,
  type AttnOnlyDims,
} from '../../shaders/attn-only-train.wgsl.ts';
import { NARROW_WG, rowsTimesTSource, rowsTimesTV2Grid, rowsTimesTV2Source, weightGradSource, weightGradV2Grid, weightGradV2Source } from '../../shaders/narrow-matmul.wgsl.ts';
import { checkpointSources, weightTensors, type TrainBatch } from './transformer.ts';
import type { UpdateEntry } from './optimizer.ts';
import type { TrainTask } from './trainer.ts';
import type { InductionTask } from './induction-data.ts';
import { COUNTERS } from './induction-data-gpu.cpu.ts';
import { inductionDataSource, tokenIndexSource } from '../../shaders/induction-data.wgsl.ts';

export interface AttnOnlyTrainOptions {
  batch: number;
  pos: number;
  /** The batch of update t (1-based). */
  data: (t: number) => TrainBatch;
  /** Scored targets per batch at most (default batch x pos). */
  maxTargets?: number;
  /** The checkpoint's tensor names (as `TransformerTrainOptions.checkpointNames`). */
  checkpointNames?: readonly string[];
  /** Which forward-layout weights to train (as `TransformerTrainOptions.trainable`); MLP weights never are. */
  trainable?: (name: string) => boolean;
  /** Updates staged per submit at most (default 16). */
  slots?: number;
  /**
   * Draw the induction recipe's batches on the GPU instead of taking `data` from the host
   * (`shaders/induction-data.wgsl.ts`; `gpuBatch` in induction-data-gpu.cpu.ts is the same batches
   * on the CPU). `clock` is the trainer's clock buffer: update t reads its step.
   */
  generate?: { task: InductionTask; seed: number; K?: number; clock: GPUBuffer };
  /**
   * Fold the last layer's keys and values into its scored queries (`attn_forward_folded`):
   * default where that is less work (maxTargets x pos < batch x pos x d_head) and the device has
   * a fixed subgroup size of at least 8; false keeps keys and values at every row.
   */
  foldKeys?: boolean;
}

/** Why `model` cannot train on these kernels, or null if it can (the MLPs' zero weights are checked by `create`). */
export function attnOnlyUnsupported(cfg: ModelConfig, model: Model, pos: number): string | null {
  const w = model.gpuWeights;
  if (w.f16) return 'the weights are f16 (load with { f16: false })';
  if (model.processing !== 'none') return "the model is processed (load with processing 'none')";
  if (cfg.normalization !== 'LN') return 'it uses RMSNorm';
  if (cfg.positional !== 'learned') return 'it uses rotary positions';
  if (cfg.n_key_value_heads !== cfg.n_heads) return 'it groups its key/value heads';
  if (cfg.parallel_attn_mlp || cfg.post_norms || cfg.qk_norm || cfg.attn_types || cfg.output_logits_soft_cap || (cfg.embed_scale ?? 1) !== 1)
    return 'it has parallel blocks, post-norms, q/k norms, local attention, a logit cap or a scaled embedding';
  if (cfg.d_model % 4 || cfg.d_head % 4) return `d_model (${cfg.d_model}) and d_head (${cfg.d_head}) must be multiples of 4`;
  if (pos > ROW_WG) return `sequences of ${pos} tokens are longer than ${ROW_WG}`;
  if (w.b_U) return 'it has an unembedding bias';
  if (cfg.d_vocab % 4) return `the vocabulary (${cfg.d_vocab}) must be a multiple of 4`;
  if (w.W_E.length !== 1 || w.W_U_rows.length !== 1 || !w.W_pos || w.W_pos.length !== 1) return 'its embedding is split into chunks';
  return null;
}

export interface Slot {
  ids: number; // [R] u32
  tRow: number; // [CAP]
  tTok: number; // [CAP]
  count: number; // [1]
  offsets: number; // [V + 1]
  order: number; // [R]
  seqOff: number; // [B + 1] each sequence's first slot
  words: number;
}

export class AttnOnlyTraining {
  readonly task: TrainTask;
  readonly entries: UpdateEntry[] = [];
  /** Gradient buffers by forward-layout name (W_Q, W_K, W_V of a layer share one: [3, D, HE]). */
  readonly gradBuffers = new Map<string, { buffer: GPUBuffer; start: number; n: number }>();
  /** Whether the last layer's keys and values are folded into its scored queries (`foldKeys`). */
  keysFolded = false;
  private readonly owned: GPUBuffer[] = [];
  /** The current batch (ids, scored slots, token index) and where each part lies, in u32 words. */
  batch!: { buffer: GPUBuffer; layout: Readonly<Slot> };
  /** With `generate`: the dispatches that draw update t's batch (the first of `task.steps`). */
  generation: Step[] = [];

  /** Checks that the model's MLPs are zero (they are skipped), then builds. */
  static async create(gpu: Gpu, model: Model, options: AttnOnlyTrainOptions): Promise<AttnOnlyTraining> {
    const cfg = model.config;
    const why = attnOnlyUnsupported(cfg, model, options.pos);
    if (why) throw new Error(`attention-only training: ${model.config.architecture} is not supported: ${why}`);
    for (const [l, layer] of model.gpuWeights.layers.entries()) {
      const out = await readBuffer(gpu, layer.W_out, 0, cfg.d_mlp * cfg.d_model * 4);
      const bias = await readBuffer(gpu, layer.b_out, 0, cfg.d_model * 4);
      if (out.some((v) => v !== 0) || bias.some((v) => v !== 0)) throw new Error(`attention-only training: layer ${l}'s MLP is not zero (its W_out or b_out has nonzero weights)`);
    }
    return new AttnOnlyTraining(gpu, model, options);
  }

  private constructor(
    readonly gpu: Gpu,
    readonly model: Model,
    readonly options: AttnOnlyTrainOptions,
  ) {
    try {
      this.task = this.build();
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  private buf(floats: number, label: string, usage = 0x80 | 0x8 | 0x4): GPUBuffer {
    const b = this.gpu.device.createBuffer({ size: Math.max(16, Math.ceil(floats) * 4), usage, label: `attn-only ${label}` });
    this.owned.push(b);
    return b;
  }

  private build(): TrainTask {
    const { gpu, model, options } = this;
    const cfg = model.config;
    const w = model.gpuWeights;
    const { batch: B, pos: T } = options;
    const D = cfg.d_model;
    const H = cfg.n_heads;
    const E = cfg.d_head;
    const HE = H * E;
    const V = cfg.d_vocab;
    const L = cfg.n_layers;
    const R = B * T;
    const CAP = Math.min(options.maxTargets ?? R, R);
    const P = cfg.n_ctx;
    const dims: AttnOnlyDims = { B, T, D, H, E, V, CAP, P, eps: cfg.eps };
    const sg = gpu.subgroupSize !== null && gpu.subgroupSize >= 8;
    // The last layer's keys and values folded into its scored queries: the attention reads the
    // ln outputs at every row and the projections run at the CAP scored slots only (see
    // attn_forward_folded), H D T multiply-adds per slot and head against 2 H E per row.
    const fold = options.foldKeys ?? (sg && CAP * T < R * E);
    if (fold && !sg) throw new Error('folded keys need a fixed subgroup size of at least 8');
    this.keysFolded = fold;
    const steps: Step[] = [];
    const dev = gpu.device;

    const pipe = (label: string, code: string, entry: string) => gpu.pipelines.get(`attn-only ${label}`, code, entry);
    const dispatch = (label: string, code: string, entry: string, bindings: Record<number, GPUBuffer | GPUBufferBinding>, groups: [number, number, number]) => {
      const pipeline = pipe(label, code, entry);
      const bindGroup = dev.createBindGroup({
        label,
        layout: pipeline.getBindGroupLayout(0),
        entries: Object.entries(bindings).map(([k, r]) => ({ binding: Number(k), resource: 'buffer' in r ? r : { buffer: r } })),
      });
      steps.push({ kind: 'dispatch', label, pipeline, bindGroup, workgroups: groups });
    };
    const items = (n: number): [number, number, number] => [Math.ceil(n / ROW_WG), 1, 1];
    /** A norm's gain and bias gradients: column sums over `rows` rows in row chunks, then the chunks. */
    const CHUNKS = 16;
    const colPart = this.buf(CHUNKS * 2 * D, 'norm gradient chunks'); // [CHUNKS, 2, D]
    const normGrads = (label: string, rows: number, daBuf: GPUBuffer, nrmBuf: GPUBuffer, dw: GPUBufferBinding, db: GPUBufferBinding) => {
      const chunks = Math.min(CHUNKS, rows);
      const code = colSumsSource(dims, rows, chunks);
      const b = { 0: daBuf, 1: nrmBuf, 4: colPart };
      dispatch(`${label} chunks`, code, 'col_sums_part_v1', b, [1, chunks, 1]);
      dispatch(label, code, 'col_sums_total_v1', { 2: dw, 3: db, 4: colPart }, items(D));
    };
    const region = (buffer: GPUBuffer, start: number, n: number, what: string): GPUBufferBinding => {
      const win = bindWindow(gpu, buffer, start, n, what);
      if (win.elemOffset) throw new Error(`internal: ${what} starts off the binding alignment`);
      return win.binding;
    };
    /** Y[M, N] = A Z^T (+ bias) (+ res). */
    const rowsTimesT = (label: string, M: number, K: number, N: number, A: GPUBuffer, Z: GPUBuffer | GPUBufferBinding, Y: GPUBuffer, bias: GPUBuffer | null, res: GPUBuffer | null) => {
      const b: Record<number, GPUBuffer | GPUBufferBinding> = { 0: A, 1: Z, 2: Y };
      if (bias) b[3] = bias;
      if (res) b[4] = res;
      if (gpu.subgroupSize === 8 && N % 4 === 0) {
        // 8-lane subgroups (lavapipe): v2's 4 columns a lane, 32 rows a workgroup (timed: 24 and
        // 40 rows were slower on every trainer shape); fewer for small products, which have few
        // workgroups either way and compile 2-4x faster with smaller blocks.
        const shape = { M, K, N, RB: M >= 256 ? 32 : M >= 64 ? 16 : 8, bias: !!bias, residual: !!res };
        dispatch(label, rowsTimesTV2Source(shape), 'rows_times_t_v2', b, rowsTimesTV2Grid(shape));
        return;
      }
      // Register blocks chosen by timing these shapes on lavapipe: a wider block reuses each
      // broadcast row more, until the accumulators spill.
      const C = Math.min(4, Math.ceil(N / NARROW_WG));
      const RB = C === 1 ? (K >= 128 ? 32 : 24) : C <= 3 ? 16 : 8;
      const ROWS = RB === 24 ? 96 : 64;
      const code = rowsTimesTSource({ M, K, N, C, RB, ROWS, bias: !!bias, residual: !!res, subgroups: sg });
      dispatch(label, code, 'rows_times_t_v1', b, [Math.ceil(N / (NARROW_WG * C)), Math.ceil(M / ROWS), 1]);
    };
    /** out[Kin, N] (+)= A^T G over M rows (column blocks of `split`), bias sums into `bsum`. */
    const weightGrad = (
      label: string,
      M: number,
      Kin: number,
      N: number,
      A: GPUBuffer,
      G: GPUBuffer,
      out: GPUBuffer | GPUBufferBinding,
      o: { split?: number; accumulate?: boolean; bsum?: GPUBuffer | GPUBufferBinding; base?: number; biasBase?: number; diagonal?: { rows: number; cols: number } } = {},
    ) => {
      const b: Record<number, GPUBufferBinding | GPUBuffer> = { 0: A, 1: G, 2: out };
      if (o.bsum) b[3] = o.bsum;
      const common = { M, Kin, N, split: o.split ?? N, accumulate: !!o.accumulate, bias: !!o.bsum, base: o.base ?? 0, biasBase: o.biasBase ?? 0, diagonal: o.diagonal };
      if (gpu.subgroupSize === 8 && N % 4 === 0) {
        // 8-lane subgroups (lavapipe): v2's 4 columns a lane, 16 output rows a workgroup (timed:
        // 8 and 32 were slower on the trainer's shapes).
        const shape = { ...common, C: 1, subgroups: true, KR: 16 };
        dispatch(label, weightGradV2Source(shape), 'weight_grad_v2', b, weightGradV2Grid(shape));
        return;
      }
      const C = Math.min(3, Math.ceil(N / NARROW_WG));
      // One column per invocation: 24 rows of output reuse each G load more (at D 64 the third
      // block is a third idle, and still 1.5x faster than 8 rows on lavapipe).
      const KR = C >= 2 ? 16 : 24;
      const code = weightGradSource({ ...common, C, subgroups: sg, KR });
      dispatch(label, code, 'weight_grad_v1', b, [Math.ceil(N / (NARROW_WG * C)), Math.ceil(Kin / KR), 1]);
    };

    // ---- gradients: regions of one buffer, one per forward-layout tensor (a layer's W_Q, W_K, W_V
    // share one, as [3, D, HE]), back to back where the sizes allow (each region starts on the
    // binding alignment): the optimizer sums their squares in one dispatch instead of one each ----
    const gAlign = Math.max(1, gpu.limits.minStorageBufferOffsetAlignment / 4);
    const gUp = (n: number) => Math.ceil(n / gAlign) * gAlign;
    const gSizes = [V * D, P * D, cfg.tied_embeddings ? 0 : V * D, ...Array.from({ length: L }, () => [3 * D * HE, 3 * HE, D, HE * D, D, D, D]).flat(), D, D];
    const gArena = this.buf(
      gSizes.reduce((a, n) => a + gUp(n), 0),
      'gradients',
    );
    let gAt = 0;
    const gRegion = (n: number): GPUBufferBinding => {
      const r = { buffer: gArena, offset: gAt * 4, size: n * 4 };
      gAt += gUp(n);
      return r;
    };
    const grad = (name: string, n: number) => {
      const r = gRegion(n);
      this.gradBuffers.set(name, { buffer: gArena, start: r.offset! / 4, n });
      return r;
    };
    const gWE = grad('embed.W_E', V * D);
    const gWpos = grad('pos_embed.W_pos', P * D);
    const gWU = cfg.tied_embeddings ? null : grad('unembed.W_U', V * D);
    const gLayers = Array.from({ length: L }, (_, l) => {
      const p = `blocks.${l}.`;
      const qkv = gRegion(3 * D * HE); // [3, D, HE]
      const bqkv = gRegion(3 * HE); // [3HE]
      ['W_Q', 'W_K', 'W_V'].forEach((n, c) => this.gradBuffers.set(`${p}attn.${n}`, { buffer: gArena, start: qkv.offset! / 4 + c * D * HE, n: D * HE }));
      ['b_Q', 'b_K', 'b_V'].forEach((n, c) => this.gradBuffers.set(`${p}attn.${n}`, { buffer: gArena, start: bqkv.offset! / 4 + c * HE, n: HE }));
      const ln2 = gRegion(D); // zero: the MLPs are not trained
      this.gradBuffers.set(`${p}ln2.w`, { buffer: gArena, start: ln2.offset! / 4, n: D });
      this.gradBuffers.set(`${p}ln2.b`, { buffer: gArena, start: ln2.offset! / 4, n: D });
      return { qkv, bqkv, WO: grad(`${p}attn.W_O`, HE * D), bO: grad(`${p}attn.b_O`, D), lnw: grad(`${p}ln1.w`, D), lnb: grad(`${p}ln1.b`, D) };
    });
    const gLnfW = grad('ln_final.w', D);
    const gLnfB = grad('ln_final.b', D);

    // ---- per-update data, staged in slots ----
    const align = Math.max(1, gpu.limits.minStorageBufferOffsetAlignment / 4);
    const up = (n: number) => Math.ceil(n / align) * align;
    const slot: Slot = { ids: 0, tRow: 0, tTok: 0, count: 0, offsets: 0, order: 0, seqOff: 0, words: 0 };
    let at = 0;
    for (const [k, n] of [
      ['ids', R],
      ['tRow', CAP],
      ['tTok', CAP],
      ['count', 1],
      ['offsets', V + 1],
      ['order', R],
      ['seqOff', B + 1],
    ] as const) {
      slot[k] = at;
      at = up(at + n);
    }
    slot.words = at;
    const S = Math.max(1, options.slots ?? 16);
    const data = this.buf(slot.words, 'batch');
    this.batch = { buffer: data, layout: slot };
    const d = (k: keyof Omit<Slot, 'words'>, n: number) => region(data, slot[k], n, `batch ${k}`);
    const ids = d('ids', R);
    const tRow = d('tRow', CAP);
    const tTok = d('tTok', CAP);
    const count = d('count', 1);
    const offsets = d('offsets', V + 1);
    const order = d('order', R);
    const seqOff = d('seqOff', B + 1);

    // ---- activations (the last layer's queries, outputs and residual in target space, [CAP, ...]) ----
    const last = L - 1;
    const xs = Array.from({ length: L }, (_, l) => this.buf(R * D, `x${l}`)); // [R, D] each layer's input
    const acts = Array.from({ length: L }, (_, l) => {
      const isLast = l === last;
      return {
        nrm: this.buf(R * D, `L${l} nrm`), // [R, D]
        rstd: this.buf(R, `L${l} rstd`), // [R]
        a: this.buf(R * D, `L${l} ln out`), // [R, D]
        qkv: isLast ? null : this.buf(R * 3 * HE, `L${l} qkv`), // [R, 3HE]
        q: isLast ? this.buf(CAP * HE, `L${l} q`) : null, // [CAP, HE]
        kv: isLast && !fold ? this.buf(R * 2 * HE, `L${l} kv`) : null, // [R, 2HE]
        // The pattern [B, H, T, T], or with v3 attention its log-normaliser lse [B, H, T]; the last
        // layer's [CAP, H, T], or folded its lse [CAP, H]
        p: this.buf(isLast ? (fold ? CAP * H : CAP * H * T) : sg ? B * H * T : B * H * T * T, `L${l} ${(isLast ? fold : sg) ? 'lse' : 'pattern'}`),
        z: this.buf((isLast ? CAP : R) * HE, `L${l} z`), // [R or CAP, HE]
        Wqkv: isLast ? null : this.buf(D * 3 * HE, `L${l} W_qkv`), // [D, 3HE]
        WqkvT: isLast ? null : this.buf(3 * HE * D, `L${l} W_qkv^T`), // [3HE, D]
        bqkv: isLast ? null : this.buf(3 * HE, `L${l} b_qkv`), // [3HE]
        WqT: isLast ? this.buf(HE * D, `L${l} W_Q^T`) : null, // [HE, D]
        Wkv: isLast && !fold ? this.buf(D * 2 * HE, `L${l} W_kv`) : null, // [D, 2HE]
        WkvT: isLast && !fold ? this.buf(2 * HE * D, `L${l} W_kv^T`) : null, // [2HE, D]
        bkv: isLast && !fold ? this.buf(2 * HE, `L${l} b_kv`) : null, // [2HE]
        WOT: this.buf(D * HE, `L${l} W_O^T`), // [D, HE]
      };
    });
    const aT = this.buf(CAP * D, 'last layer ln out at targets'); // [CAP, D]
    const xg = this.buf(CAP * D, 'last layer input at targets'); // [CAP, D]
    const xT = this.buf(CAP * D, 'final residual at targets'); // [CAP, D]
    const nf = this.buf(CAP * D, 'ln_final nrm'); // [CAP, D]
    const rstdf = this.buf(CAP, 'ln_final rstd');
    const af = this.buf(CAP * D, 'ln_final out');
    const logits = this.buf(CAP * V, 'logits'); // [CAP, V], then dlogits
    const part = this.buf(CAP + 1, 'loss terms'); // [CAP] terms, then the loss
    const WUT = this.buf(D * V, 'W_U^T'); // [D, V]
    const daf = this.buf(CAP * D, 'd ln_final out'); // [CAP, D]
    const dx = this.buf(R * D, 'dx'); // [R, D] the residual stream's gradient
    const dxT = this.buf(CAP * D, 'dx at targets'); // [CAP, D]
    const zeros = this.buf(Math.max(R * D, CAP * HE, fold ? CAP * H * D : 0), 'zeros');
    const dz = this.buf(R * HE, 'dz'); // [R or CAP, HE]
    const dq = this.buf(CAP * HE, 'dq at targets'); // [CAP, HE]
    const dkv = fold ? null : this.buf(R * 2 * HE, 'dkv'); // [R, 2HE] (last layer)
    // The folded last layer (attn_forward_folded): block-diagonal key and value weights, and per
    // scored slot and head u = W_K q, y = sum_j p_j a_j and their gradients, [CAP, H, D] each.
    const folded = fold
      ? {
          ZK: this.buf(H * D * HE, 'last layer W_K block-diagonal'), // [H D, HE]
          ZKt: this.buf(HE * H * D, 'last layer W_K block-diagonal^T'), // [HE, H D]
          ZV: this.buf(H * D * HE, 'last layer W_V block-diagonal'), // [H D, HE]
          ZVt: this.buf(HE * H * D, 'last layer W_V block-diagonal^T'), // [HE, H D]
          u: this.buf(CAP * H * D, 'u = W_K q at targets'), // [CAP, H, D]
          y: this.buf(CAP * H * D, 'y = p a at targets'), // [CAP, H, D]
          dy: this.buf(CAP * H * D, 'dy at targets'), // [CAP, H, D]
          du: this.buf(CAP * H * D, 'du at targets'), // [CAP, H, D]
        }
      : null;
    const ds = L > 1 && !sg ? this.buf(B * H * T * T, 'd scores') : null; // [B, H, T, T] (layers before, v1 attention)
    const dqkv = L > 1 ? this.buf(R * 3 * HE, 'dqkv') : null; // [R, 3HE] (layers before)
    const da1 = this.buf(CAP * D, 'da from queries at targets'); // [CAP, D]
    const da = this.buf(R * D, 'da'); // [R, D]

    const WE = w.W_E[0]!.buffer;
    const WU = w.W_U_rows[0]!.buffer;
    const Wpos = w.W_pos![0]!.buffer;
    const scale = (l: number) => attentionScale(cfg, l);

    // ---- the batch, drawn on the GPU (or staged by the host: stepsAt) ----
    const gen = options.generate;
    const genSteps: Step[] = [];
    if (gen) {
      const K = gen.K ?? 4;
      const NT = gen.task === 'recall' ? K : T - 1;
      if (gen.task === 'recall' && (T < 6 || V - 1 < T - 1 || V > 1024)) throw new Error(`GPU recall data needs 6 <= T <= V <= 1024 (T ${T}, V ${V})`);
      if (gen.task === 'repeated' && T < 41) throw new Error(`GPU repeated-segment data needs T >= 41 (segments of up to 20 tokens copied once), not ${T}`);
      if (B * NT > CAP) throw new Error(`GPU ${gen.task} data scores up to ${B * NT} targets; this trainer was built for ${CAP} (maxTargets)`);
      const pairs = this.buf(B * NT * 2, 'drawn pairs'); // [B, NT, 2]
      const cnt = this.buf(B, 'pairs per sequence'); // [B]
      const counters = this.buf(2 * V, 'token counters'); // [2V] atomics
      const seedBuf = this.buf(1, 'data seed');
      dev.queue.writeBuffer(seedBuf, 0, Uint32Array.of(gen.seed >>> 0));
      const src = inductionDataSource({ task: gen.task, B, T, V, K, counters: COUNTERS });
      const idx = tokenIndexSource({ B, T, V });
      const before = steps.length;
      dispatch('draw sequences', src, 'gen_sequence_v1', { 0: gen.clock, 1: ids, 2: pairs, 3: cnt, 8: seedBuf }, items(B));
      dispatch('scored slots', src, 'compact_v1', { 2: pairs, 3: cnt, 4: tRow, 5: tTok, 6: count, 7: seqOff }, items(B));
      dispatch('token counts', idx, 'token_count_v1', { 0: ids, 1: counters }, items(R));
      dispatch('token offsets', idx, 'token_offsets_v1', { 1: counters, 2: offsets }, [1, 1, 1]);
      dispatch('token rows', idx, 'token_fill_v1', { 0: ids, 1: counters, 2: offsets, 3: order }, items(R));
      dispatch('token rows sorted', idx, 'token_sort_v1', { 2: offsets, 3: order }, items(V));
      genSteps.push(...steps.splice(before));
      this.generation = genSteps;
    }

    // ---- forward ----
    const nn = <T>(x: T | null): T => x!;
    w.layers.forEach((layer, l) => {
      const ac = acts[l]!;
      if (l < last) {
        dispatch(`L${l} pack qkv`, packQkvSource(dims), 'pack_qkv_v1', { 0: layer.W_Q, 1: layer.W_K, 2: layer.W_V, 3: nn(ac.Wqkv), 4: nn(ac.WqkvT) }, items(D * 3 * HE));
        [layer.b_Q, layer.b_K, layer.b_V].forEach((bias, c) => steps.push({ kind: 'copy', src: bias, srcOffset: 0, dst: nn(ac.bqkv), dstOffset: c * HE * 4, size: HE * 4 }));
      } else {
        if (folded)
          dispatch(`L${l} pack kv folded`, packKvFoldedSource(dims), 'pack_kv_folded_v1', { 0: layer.W_K, 1: layer.W_V, 2: folded.ZK, 3: folded.ZKt, 4: folded.ZV, 5: folded.ZVt }, items(D * HE));
        else dispatch(`L${l} pack kv`, packKvSource(dims), 'pack_kv_v1', { 0: layer.W_K, 1: layer.W_V, 2: layer.b_K, 3: layer.b_V, 4: nn(ac.Wkv), 5: nn(ac.WkvT), 6: nn(ac.bkv) }, items(D * 2 * HE));
        dispatch(`L${l} W_Q^T`, transposeSource(D, HE), 'transpose_v1', { 0: layer.W_Q, 1: nn(ac.WqT) }, items(D * HE));
      }
      dispatch(`L${l} W_O^T`, transposeSource(HE, D), 'transpose_v1', { 0: layer.W_O, 1: ac.WOT }, items(HE * D));
    });
    dispatch('W_U^T', transposeSource(V, D), 'transpose_v1', { 0: WU, 1: WUT }, items(V * D));
    dispatch('embed', embedSource(dims), 'embed_v1', { 0: ids, 1: WE, 2: Wpos, 3: xs[0]! }, items((R * D) / 4));
    w.layers.forEach((layer, l) => {
      const ac = acts[l]!;
      dispatch(`L${l} ln1`, lnForwardSource(dims, R, false), 'ln_forward_v1', { 0: xs[l]!, 1: layer.ln1_w, 2: layer.ln1_b!, 3: ac.nrm, 4: ac.rstd, 5: ac.a }, items(R));
      if (l < last) {
        rowsTimesT(`L${l} qkv`, R, D, 3 * HE, ac.a, nn(ac.WqkvT), nn(ac.qkv), nn(ac.bqkv), null);
        if (sg) dispatch(`L${l} attention`, attnForwardV3Source(dims, scale(l), gpu.subgroupSize!), 'attn_forward_v3', { 0: nn(ac.qkv), 1: ac.p, 2: ac.z }, [B * H, 1, 1]);
        else dispatch(`L${l} attention`, attnForwardSource(dims, scale(l)), 'attn_forward_v1', { 0: nn(ac.qkv), 1: ac.p, 2: ac.z }, [B * H, 1, 1]);
        rowsTimesT(`L${l} out`, R, HE, D, ac.z, ac.WOT, xs[l + 1]!, layer.b_O, xs[l]!);
      } else {
        if (!folded) rowsTimesT(`L${l}t kv`, R, D, 2 * HE, ac.a, nn(ac.WkvT), nn(ac.kv), nn(ac.bkv), null);
        dispatch(`L${l}t gather ln out`, slotRowsSource(dims, D, 'gather'), 'gather_rows_v1', { 0: ac.a, 1: tRow, 2: count, 3: aT }, items((CAP * D) / 4));
        dispatch(`L${l}t gather input`, slotRowsSource(dims, D, 'gather'), 'gather_rows_v1', { 0: xs[l]!, 1: tRow, 2: count, 3: xg }, items((CAP * D) / 4));
        rowsTimesT(`L${l}t q`, CAP, D, HE, aT, nn(ac.WqT), nn(ac.q), layer.b_Q, null);
        if (folded) {
          // u = W_K q per head ([CAP, HE] x the block-diagonal [HE, H D]), the attention over the
          // ln outputs, then z = y W_V + b_V per head.
          rowsTimesT(`L${l}t u`, CAP, HE, H * D, nn(ac.q), folded.ZK, folded.u, null, null);
          dispatch(`L${l}t attention`, attnForwardFoldedSource(dims, scale(l), gpu.subgroupSize!), 'attn_forward_folded_v1', { 0: ac.a, 1: folded.u, 2: folded.y, 3: ac.p, 4: tRow, 5: seqOff }, [
            B,
            1,
            1,
          ]);
          rowsTimesT(`L${l}t z`, CAP, H * D, HE, folded.y, folded.ZVt, ac.z, layer.b_V, null);
        } else dispatch(`L${l}t attention`, attnForwardSlotsSource(dims, scale(l)), 'attn_forward_slots_v1', { 0: nn(ac.q), 1: ac.p, 2: ac.z, 3: nn(ac.kv), 4: tRow, 5: count }, items(CAP * H));
        rowsTimesT(`L${l}t out`, CAP, HE, D, ac.z, ac.WOT, xT, layer.b_O, xg);
      }
    });
    dispatch('ln_final', lnForwardSource(dims, CAP, false), 'ln_forward_v1', { 0: xT, 1: w.lnf_w, 2: w.lnf_b!, 3: nf, 4: rstdf, 5: af }, items(CAP));
    rowsTimesT('logits', CAP, D, V, af, WU, logits, null, null);
    const loss = lossRowsSource(dims);
    dispatch('loss', loss, 'loss_rows_v1', { 0: logits, 1: tTok, 2: count, 3: part }, items(CAP));
    dispatch('loss sum', loss, 'loss_sum_v1', { 2: count, 3: part }, [1, 1, 1]);

    // ---- backward ----
    rowsTimesT('d ln_final', CAP, V, D, logits, WUT, daf, null, null);
    steps.push({ kind: 'copy', src: zeros, srcOffset: 0, dst: dx, dstOffset: 0, size: R * D * 4 });
    dispatch('ln_final backward', lnBackwardSource(dims, CAP, true), 'ln_backward_v1', { 0: daf, 1: nf, 2: rstdf, 3: w.lnf_w, 4: dx, 5: tRow, 6: count, 7: dxT }, items(CAP));
    normGrads('ln_final gain', CAP, daf, nf, gLnfW, gLnfB);
    for (let l = last; l >= 0; l--) {
      const layer = w.layers[l]!;
      const ac = acts[l]!;
      const g = gLayers[l]!;
      if (l === last) {
        // Target space: dx of the scored rows is dxT.
        rowsTimesT(`L${l}t dz`, CAP, D, HE, dxT, layer.W_O, dz, null, null);
        weightGrad(`L${l}t W_O grad`, CAP, HE, D, ac.z, dxT, g.WO, { bsum: g.bO });
        if (folded) {
          // dy = W_V dz and dW_V = sum y dz (diagonal blocks), db_V; the attention backward
          // (du at the slots, da at every row); dq = W_K^T du and dW_K = sum du q; db_K = 0 (a
          // key bias shifts every score of a query alike).
          rowsTimesT(`L${l}t dy`, CAP, HE, H * D, dz, folded.ZV, folded.dy, null, null);
          weightGrad(`L${l}t W_V grad`, CAP, H * D, HE, folded.y, dz, g.qkv, { diagonal: { rows: D, cols: E }, bsum: g.bqkv, base: 2 * D * HE, biasBase: 2 * HE });
          // du of the slots past count stays zero (so does their dq: b_Q's gradient sums every slot).
          steps.push({ kind: 'copy', src: zeros, srcOffset: 0, dst: folded.du, dstOffset: 0, size: CAP * H * D * 4 });
          dispatch(
            `L${l}t attention backward`,
            attnBackwardFoldedSource(dims, scale(l), gpu.subgroupSize!),
            'attn_backward_folded_v1',
            {
              0: ac.a,
              1: folded.u,
              2: folded.dy,
              3: ac.p,
              4: tRow,
              5: seqOff,
              6: folded.du,
              7: da,
            },
            [B, 1, 1],
          );
          rowsTimesT(`L${l}t dq`, CAP, H * D, HE, folded.du, folded.ZKt, dq, null, null);
          weightGrad(`L${l}t W_K grad`, CAP, H * D, HE, folded.du, nn(ac.q), g.qkv, { diagonal: { rows: D, cols: E }, base: D * HE });
        } else {
          steps.push({ kind: 'copy', src: zeros, srcOffset: 0, dst: dq, dstOffset: 0, size: CAP * HE * 4 });
          const slotsBwd = sg ? attnBackwardSlotsV2Source(dims, scale(l), gpu.subgroupSize!) : attnBackwardSlotsSource(dims, scale(l));
          dispatch(
            `L${l}t attention backward`,
            slotsBwd,
            sg ? 'attn_backward_slots_v2' : 'attn_backward_slots_v1',
            { 0: nn(ac.q), 1: ac.p, 2: dz, 3: seqOff, 4: dq, 5: nn(ac.kv), 6: nn(dkv), 7: tRow },
            [B * H, 1, 1],
          );
        }
        weightGrad(`L${l}t W_Q grad`, CAP, D, HE, aT, dq, g.qkv, { bsum: g.bqkv });
        if (!folded) weightGrad(`L${l}t W_kv grad`, R, D, 2 * HE, ac.a, nn(dkv), g.qkv, { split: HE, bsum: g.bqkv, base: D * HE, biasBase: HE });
        rowsTimesT(`L${l}t da from q`, CAP, HE, D, dq, layer.W_Q, da1, null, null);
        if (!folded) rowsTimesT(`L${l}t da`, R, 2 * HE, D, nn(dkv), nn(ac.Wkv), da, null, null);
        dispatch(`L${l}t da scatter`, slotRowsSource(dims, D, 'scatter'), 'scatter_add_v1', { 0: da1, 1: tRow, 2: count, 3: da }, items((CAP * D) / 4));
      } else {
        rowsTimesT(`L${l} dz`, R, D, HE, dx, layer.W_O, dz, null, null);
        weightGrad(`L${l} W_O grad`, R, HE, D, ac.z, dx, g.WO, { bsum: g.bO });
        if (sg)
          dispatch(`L${l} attention backward`, attnBackwardV4Source(dims, scale(l), gpu.subgroupSize!), 'attn_backward_v4', { 0: nn(ac.qkv), 1: ac.p, 2: dz, 3: nn(dqkv), 4: ac.z }, [B * H, 1, 1]);
        else dispatch(`L${l} attention backward`, attnBackwardSource(dims, scale(l)), 'attn_backward_v1', { 0: nn(ac.qkv), 1: ac.p, 2: dz, 3: nn(ds), 4: nn(dqkv) }, [B * H, 1, 1]);
        weightGrad(`L${l} W_qkv grad`, R, D, 3 * HE, ac.a, nn(dqkv), g.qkv, { split: HE, bsum: g.bqkv });
        rowsTimesT(`L${l} da`, R, 3 * HE, D, nn(dqkv), nn(ac.Wqkv), da, null, null);
      }
      dispatch(`L${l} ln1 backward`, lnBackwardSource(dims, R, false), 'ln_backward_v1', { 0: da, 1: ac.nrm, 2: ac.rstd, 3: layer.ln1_w, 4: dx }, items(R));
      normGrads(`L${l} ln1 gain`, R, da, ac.nrm, g.lnw, g.lnb);
      // Without rotary embeddings the key bias has no gradient (q . b_K is the same for every key of
      // a query: the softmax cancels it); the sums leave ~1e-9 of noise, which Adam would scale up
      // to steps of lr. Exact zeros, as in float64 (and as the general path does).
      steps.push({ kind: 'copy', src: zeros, srcOffset: 0, dst: g.bqkv.buffer, dstOffset: g.bqkv.offset! + HE * 4, size: HE * 4 });
    }
    dispatch('W_pos grad', posGradSource(dims), 'pos_grad_v1', { 0: dx, 1: gWpos }, items((P * D) / 4));
    dispatch('W_E grad', embedGradSource(dims), 'embed_grad_v1', { 0: dx, 1: offsets, 2: order, 3: gWE }, items((V * D) / 4));
    weightGrad('W_U grad', CAP, V, D, logits, af, gWU ?? gWE, { accumulate: !gWU });

    // ---- the optimizer's view ----
    let isParameter = (_: string) => true;
    if (options.checkpointNames) {
      const present = new Set(options.checkpointNames);
      const fed = new Set([...checkpointSources(cfg, shapesOf(cfg))].filter(([ck]) => present.has(ck)).flatMap(([, fwd]) => fwd));
      isParameter = (n) => fed.has(n);
    }
    const params = paramBuffers(cfg, model);
    for (const name of shapesOf(cfg).keys()) {
      if (name.includes('.mlp.') || !isParameter(name) || !(options.trainable?.(name) ?? true)) continue;
      const g = this.gradBuffers.get(name);
      const p = params.get(name);
      if (!g || !p) throw new Error(`internal: no gradient or weight for ${name}`);
      this.entries.push({ name, param: p, grad: g.buffer, gradStart: g.start, n: g.n });
    }

    // ---- staging (host-drawn batches: S updates' worth per submit) ----
    const objective = { buffer: part, count: 1, offset: CAP };
    if (gen) return { steps: [...genSteps, ...steps], metrics: { objective } };
    const staging = this.buf(S * slot.words, 'staged batches');
    const words = new Uint32Array(S * slot.words);
    return {
      steps,
      slots: S,
      metrics: { objective },
      prepare: (t0, n) => {
        for (let k = 0; k < n; k++) stage(words.subarray(k * slot.words, (k + 1) * slot.words), options.data(t0 + k + 1), t0 + k + 1);
        dev.queue.writeBuffer(staging, 0, words, 0, n * slot.words);
      },
      stepsAt: (k) => [{ kind: 'copy', src: staging, srcOffset: k * slot.words * 4, dst: data, dstOffset: 0, size: slot.words * 4 }, ...steps],
    };

    function stage(out: Uint32Array, batch: TrainBatch, t: number): void {
      if (batch.ids.length !== B || batch.ids.some((r) => r.length !== T)) throw new Error(`the batch of update ${t} is not ${B} rows of ${T} tokens`);
      if (batch.targets.length > CAP) throw new Error(`the batch of update ${t} scores ${batch.targets.length} targets; this trainer was built for at most ${CAP} (maxTargets)`);
      const counts = new Uint32Array(V + 1);
      batch.ids.forEach((row, b) =>
        row.forEach((id, s) => {
          if (!(id >= 0 && id < V)) throw new Error(`the batch of update ${t} has token ${id} (vocabulary ${V})`);
          out[slot.ids + b * T + s] = id;
          counts[id + 1]!++;
        }),
      );
      for (let v = 0; v < V; v++) counts[v + 1]! += counts[v]!;
      out.set(counts, slot.offsets);
      const next = counts.slice(0, V);
      for (let r = 0; r < R; r++) out[slot.order + next[out[slot.ids + r]!]!++] = r;
      // Slots sorted by row (the last layer's backward walks each sequence's slots in order).
      const sorted = batch.targets.map(({ row, pos, target }) => ({ r: row * T + pos, target, row, pos })).sort((x, y) => x.r - y.r);
      sorted.forEach(({ r, target, row, pos }, i) => {
        if (!(row >= 0 && row < B && pos >= 0 && pos < T)) throw new Error(`the batch of update ${t} scores row ${row} position ${pos}, outside ${B} x ${T}`);
        if (i > 0 && sorted[i - 1]!.r === r) throw new Error(`the batch of update ${t} scores row ${row} position ${pos} twice`);
        if (!(target >= 0 && target < V)) throw new Error(`the batch of update ${t} has target ${target} (vocabulary ${V})`);
        out[slot.tRow + i] = r;
        out[slot.tTok + i] = target;
      });
      let i = 0;
      for (let b = 0; b <= B; b++) {
        while (i < sorted.length && sorted[i]!.row < b) i++;
        out[slot.seqOff + b] = i;
      }
      out[slot.count] = Math.round(batch.divisor ?? batch.targets.length);
      if (out[slot.count] !== batch.targets.length) throw new Error('attention-only training: the loss divisor must be the number of targets');
    }
  }

  /** Each forward-layout weight's shape, by the names of `WeightGradients.tensors()`. */
  shapes(): Map<string, number[]> {
    return shapesOf(this.model.config);
  }

  destroy(): void {
    for (const b of this.owned) b.destroy();
    this.owned.length = 0;
  }
}

/** Every forward-layout weight of a GPT-2-style model with its shape, in `WeightGradients.tensors()`'s names and order. */
function shapesOf(cfg: ModelConfig): Map<string, number[]> {
  const { d_model: D, n_heads: H, d_head: E, d_vocab: V, n_ctx: P, d_mlp: M } = cfg;
  const s = new Map<string, number[]>([
    ['embed.W_E', [V, D]],
    ['pos_embed.W_pos', [P, D]],
  ]);
  for (let l = 0; l < cfg.n_layers; l++) {
    const p = `blocks.${l}.`;
    for (const [n, shape] of [
      ['ln1.w', [D]],
      ['ln1.b', [D]],
      ['attn.W_Q', [D, H * E]],
      ['attn.b_Q', [H * E]],
      ['attn.W_K', [D, H * E]],
      ['attn.b_K', [H * E]],
      ['attn.W_V', [D, H * E]],
      ['attn.b_V', [H * E]],
      ['attn.W_O', [H * E, D]],
      ['attn.b_O', [D]],
      ['ln2.w', [D]],
      ['ln2.b', [D]],
      ['mlp.W_in', [D, M]],
      ['mlp.b_in', [M]],
      ['mlp.W_out', [M, D]],
      ['mlp.b_out', [D]],
    ] as const)
      s.set(p + n, [...shape]);
  }
  s.set('ln_final.w', [D]);
  s.set('ln_final.b', [D]);
  if (!cfg.tied_embeddings) s.set('unembed.W_U', [V, D]);
  return s;
}

/** The model's weight buffers by forward-layout name (each is one chunk: `attnOnlyUnsupported`). */
function paramBuffers(cfg: ModelConfig, model: Model): Map<string, GPUBuffer> {
  return new Map([...weightTensors(cfg, model.gpuWeights)].map(([name, chunks]) => [name, chunks[0]!.buffer]));
}
