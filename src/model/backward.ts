/**
 * The backward pass: `forward.ts` read bottom to top, for one shape.
 *
 * `buildBackward` takes a forward plan (a full pass: every row from position 0) and returns the
 * steps of its backward: the metric's logits gradient, then each op's backward kernel in reverse
 * order, interleaved with gradient sites that carry the forward's hook names. At a gradient site
 * the gradient of that activation is complete: a run may copy it into a gradient cache there,
 * and the forward's interventions at that hook act on it before it flows upstream, as PyTorch's
 * autograd would (a zero-ablated or patched activation passes no gradient to what it replaced,
 * a scaled one passes the scaled gradient; see `grad-run.ts`).
 *
 * What the backward reads (each norm's normalized input and scale, q/k/v or their rotated forms,
 * the pattern, z, the MLP's pre- and post-activations) is copied out of the forward at its site.
 * Memory is a choice per plan (`memory`):
 *   keep       one saved copy per layer, taken during the forward;
 *   recompute  only each layer's resid_pre is saved; just before a layer's backward, that layer's
 *              forward steps are replayed (with the run's interventions) from it into one shared
 *              set of saved buffers (activation checkpointing: one more forward's work).
 * Gradient buffers are scratch shared by all layers, as the forward's activations are.
 *
 * Weight gradients (optional) go into a `WeightGradients` store in the forward's layouts; the
 * tied embedding gets the unembedding's share first, then the embedding's added to it. Every
 * reduction runs in a fixed order, so two runs give the same bits.
 *
 * Gemma 3 and Qwen3's extra ops: the per-head q/k RMSNorms run the norm backward kernels on
 * B T heads rows of d_head; the post-norms (ln1_post, ln2_post) sit between hook_attn_out /
 * hook_mlp_out and their projections; the (1 + w) gains were folded at load, and since
 * d/dw (1 + w) = 1 the folded gain's gradient is the checkpoint weight's; the final logit
 * soft-cap's backward is folded into the metric's (`metric-backward.ts`); sliding windows mask
 * the pattern, whose masked entries are 0 and pass no gradient; each layer's rotary table and
 * attention scale are the forward's. Adding an op family to the forward means adding its backward
 * kernel and its steps here, at the mirrored place.
 */
import type { Gpu } from '../gpu/device.ts';
import type { Copy, Dispatch, Params } from '../gpu/recorder.ts';
import type { RowChunk } from '../gpu/chunked.ts';
import { sizeClass } from '../gpu/pool.ts';
import { gather } from '../gpu/kernels/embed.ts';
import { biasGrad, copyBlock, inputGrad, matmulDw, matmulDx, transposeInput } from '../gpu/kernels/matmul-backward.ts';
import { matmul } from '../gpu/kernels/matmul.ts';
import { normGainBackward, normInputGrad, normParamGrad, normScaleGrad } from '../gpu/kernels/layernorm-backward.ts';
import { attnDK, attnDPattern, attnDQ, attnDV, attnSoftmaxBackward } from '../gpu/kernels/attention-backward.ts';
import { rotaryBackward } from '../gpu/kernels/rotary-backward.ts';
import { activationBackward } from '../gpu/kernels/activation-backward.ts';
import { scatterAdd, writeScatterIndex, type ScatterIndex } from '../gpu/kernels/embed-backward.ts';
import { accumulate, fill } from '../gpu/kernels/grad-accumulate.ts';
import { attentionScale, type ModelConfig } from './config.ts';
import type { GpuWeights } from './gpu-weights.ts';
import type { ForwardPlan } from './forward.ts';
import type { WeightGradients } from './weight-grads.ts';

/** A point of the backward where the gradient of a hook point's activation is complete. */
export interface GradSite {
  kind: 'grad-site';
  name: string;
  buffer: GPUBuffer;
  shape: number[];
  pos0: number;
}

/** Recompute layer `layer`'s forward from its saved resid_pre (memory: 'recompute'). */
export interface Replay {
  kind: 'replay';
  layer: number;
}

export type BackwardStep = Dispatch | Copy | GradSite | Replay;

export type MemoryMode = 'keep' | 'recompute';

export interface BackwardOptions {
  /** Hold every hook_pattern constant: no gradient through the softmax to scores, q and k. */
  detachPattern?: boolean;
  /** Hold every norm's hook_scale constant (the linearized norm circuit-tracer uses). */
  detachScale?: boolean;
  /** Write weight gradients here (none when absent). */
  weightGrads?: WeightGradients | null;
  /** Add into the weight gradients instead of overwriting them. */
  accumulate?: boolean;
  /** The forward unembedded only these vocabulary columns (`PlanShape.logitTokens`). */
  columns?: readonly number[] | null;
  memory: MemoryMode;
}

export interface BackwardPlan {
  batch: number;
  pos: number;
  memory: MemoryMode;
  steps: BackwardStep[];
  /** Every gradient site, by hook name. */
  gradSites: Map<string, GradSite>;
  /** Forward sites to copy during the forward: name -> destination. */
  forwardSaves: Map<string, GPUBuffer>;
  /** Per layer (recompute): that layer's sites to copy during its replay. */
  replaySaves: Map<string, GPUBuffer>;
  /** Per layer (recompute): its saved resid_pre. */
  savedResid: GPUBuffer[];
  /** [batch * positions, d_vocab] the metric's logits gradient (the backward's first input): the forward's logits, overwritten. */
  dlogits: GPUBuffer;
  positions: number[];
  /** Writes the per-run token index (the embedding scatter's). */
  setTokens(flat: Uint32Array): void;
  /** Bytes: activations saved for the backward, and gradient scratch. */
  bytes: { saved: number; scratch: number };
  destroy(): void;
}

/** Floats of the logits' gradient transposed at a time for the unembedding's weight gradient (4 MiB). */
const VOCAB_BLOCK_FLOATS = 1 << 20;

/** Per-layer sites the backward reads (relative to `blocks.L.`), in forward order. */
export function savedSites(cfg: ModelConfig): string[] {
  const rot = cfg.positional === 'rotary';
  const qk = cfg.qk_norm ? ['attn.q_norm.hook_scale', 'attn.q_norm.hook_normalized', 'attn.k_norm.hook_scale', 'attn.k_norm.hook_normalized'] : [];
  return [
    'ln1.hook_normalized',
    'ln1.hook_scale',
    ...qk,
    rot ? 'attn.hook_rot_q' : 'attn.hook_q',
    rot ? 'attn.hook_rot_k' : 'attn.hook_k',
    'attn.hook_v',
    'attn.hook_pattern',
    'attn.hook_z',
    ...(cfg.post_norms ? ['ln1_post.hook_scale', 'ln1_post.hook_normalized'] : []),
    'ln2.hook_normalized',
    'ln2.hook_scale',
    'mlp.hook_pre',
    ...(cfg.gated_mlp ? ['mlp.hook_pre_linear'] : []),
    'mlp.hook_post',
    ...(cfg.post_norms ? ['ln2_post.hook_scale', 'ln2_post.hook_normalized'] : []),
  ];
}

/** Floats of each saved site of one layer. */
function savedFloats(cfg: ModelConfig, B: number, T: number): Record<string, number> {
  const { d_model: C, n_heads: H, n_key_value_heads: Hkv, d_head: dh, d_mlp: M } = cfg;
  const BT = B * T;
  const f: Record<string, number> = {};
  for (const s of savedSites(cfg)) {
    if (s.startsWith('attn.q_norm.'))
      f[s] = s.endsWith('hook_scale') ? BT * H : BT * H * dh; // per query head
    else if (s.startsWith('attn.k_norm.'))
      f[s] = s.endsWith('hook_scale') ? BT * Hkv : BT * Hkv * dh; // per key/value head
    else if (s.endsWith('hook_scale')) f[s] = BT;
    else if (s.endsWith('hook_normalized')) f[s] = BT * C;
    else if (/hook_(rot_)?q$|hook_z$/.test(s)) f[s] = BT * H * dh;
    else if (/hook_(rot_)?k$|hook_v$/.test(s)) f[s] = BT * Hkv * dh;
    else if (s.endsWith('hook_pattern')) f[s] = B * H * T * T;
    else f[s] = BT * M; // the MLP's pre, pre_linear, post
  }
  return f;
}

/** The backward's gradient scratch, in floats (shapes in the comments); shared by every layer. */
function gradSizes(cfg: ModelConfig, B: number, T: number, P: number, weights: boolean, accumulate: boolean, NV = 0): Record<string, number> {
  const { d_model: C, n_heads: H, n_key_value_heads: Hkv, d_head: dh, d_mlp: M } = cfg;
  const BT = B * T;
  const select = P !== T;
  const rot = cfg.positional === 'rotary';
  return {
    ySel: select ? B * P * C : 0, // [B, P, C] ln_final's output at the metric's positions
    gYSel: select ? B * P * C : 0, // [B, P, C]
    sel: select ? B * P : 0, // [B, P] u32 rows of [B, T] the metric reads
    resid: BT * C, // [B, T, C] the residual stream's gradient, layer by layer
    normOut: BT * C, // [B, T, C] a norm's output gradient (ln_final: unembed.hook_in)
    sumPart: BT * C, // [B, T, C] one projection's share of normOut, before it is added in
    xT: Math.max(C, M, H * dh) * BT, // [in, B * T] a projection's input transposed (its weight gradient), or [out, B * T] its output gradient (its input gradient)
    dwPart: weights && accumulate ? C * Math.max(M, H * dh) : 0, // [in, out] a weight gradient before it is added to the store's
    normalized: BT * Math.max(C, cfg.qk_norm ? H * dh : 0), // [B, T, C] hook_normalized's gradient ([B, T, H, dh] for q_norm)
    scale: BT * (cfg.qk_norm ? Math.max(1, H) : 1), // [B, T, 1] hook_scale's gradient ([B, T, H, 1] for q_norm)
    mlpOut: BT * C, // [B, T, C]
    mlpOutRaw: cfg.post_norms ? BT * C : 0, // [B, T, C] the MLP's output before ln2_post
    attnOutRaw: cfg.post_norms ? BT * C : 0, // [B, T, C] the attention's output before ln1_post
    qNormOut: cfg.qk_norm ? BT * H * dh : 0, // [B, T, H, dh] q_norm's output (rotary's input)
    kNormOut: cfg.qk_norm ? BT * Hkv * dh : 0, // [B, T, Hkv, dh]
    post: BT * M, // [B, T, d_mlp]
    pre: BT * M, // [B, T, d_mlp]
    preLinear: cfg.gated_mlp ? BT * M : 0, // [B, T, d_mlp]
    attnOut: BT * C, // [B, T, C]
    z: BT * H * dh, // [B, T, H, dh]
    pattern: B * H * T * T, // [B, H, T, T]
    scores: B * H * T * T, // [B, H, T, T]
    q: BT * H * dh, // [B, T, H, dh]
    k: BT * Hkv * dh, // [B, T, Hkv, dh]
    v: BT * Hkv * dh, // [B, T, Hkv, dh]
    rotQ: rot ? BT * H * dh : 0, // [B, T, H, dh]
    rotK: rot ? BT * Hkv * dh : 0, // [B, T, Hkv, dh]
    embed: cfg.positional === 'learned' ? BT * C : 0, // [B, T, C] hook_embed's (resid_pre 0's, apart)
    posEmbed: cfg.positional === 'learned' ? BT * C : 0, // [B, T, C]
    // Scatter indexes (u32): token ids and positions of [B, T], and the selected rows.
    idxUniq: BT,
    idxOffsets: BT + 2,
    idxOrder: BT,
    posUniq: cfg.positional === 'learned' ? BT : 0,
    posOffsets: cfg.positional === 'learned' ? BT + 2 : 0,
    posOrder: cfg.positional === 'learned' ? BT : 0,
    vocab: !NV ? Math.min(VOCAB_BLOCK_FLOATS + 4 * B * P, cfg.d_vocab * B * P) : 0, // [B * P, vocabulary rows] (or transposed) a block of the logits' gradient
    colIds: NV, // [NV] u32 the unembedded vocabulary columns
    colW: NV * C, // [NV, C] their unembedding rows
    colT: weights ? NV * B * P : 0, // [NV, B * P] the logits' gradient transposed
    colDW: weights ? NV * C : 0, // [NV, C] their rows' weight gradient
    colDb: weights ? NV : 0, // [NV] their unembedding bias's gradient (processed weights)
    colUniq: weights ? NV : 0,
    colOffsets: weights && NV ? NV + 2 : 0,
    colOrder: weights ? NV : 0,
    selUniq: select ? B * P : 0,
    selOffsets: select ? B * P + 2 : 0,
    selOrder: select ? B * P : 0,
  };
}

/** Bytes a backward of this shape holds (pool size classes), by part. */
export function backwardBytes(cfg: ModelConfig, B: number, T: number, P: number, memory: MemoryMode, weights = false, accumulate = false, columns = 0): { saved: number; scratch: number } {
  const cls = (f: number) => (f ? sizeClass(f * 4) : 0);
  const scratch = Object.values(gradSizes(cfg, B, T, P, weights, accumulate, columns)).reduce((n, f) => n + cls(f), 0);
  const layer = Object.values(savedFloats(cfg, B, T)).reduce((n, f) => n + cls(f), 0);
  const final = cls(B * T * cfg.d_model) + cls(B * T);
  const saved = memory === 'keep' ? cfg.n_layers * layer + final : layer + cfg.n_layers * cls(B * T * cfg.d_model) + final;
  return { saved, scratch };
}

export function buildBackward(gpu: Gpu, cfg: ModelConfig, w: GpuWeights, fwd: ForwardPlan, o: BackwardOptions): BackwardPlan {
  const { d_model: C, n_heads: H, n_key_value_heads: Hkv, d_head: dh, d_mlp: M, d_vocab: V } = cfg;
  if (fwd.fromLayer !== 0 || fwd.fromPos !== 0) throw new Error('a backward needs a full forward (from layer 0, position 0)');
  const B = fwd.batch;
  const T = fwd.pos;
  const BT = B * T;
  const HD = H * dh;
  const KD = Hkv * dh;
  const positions = fwd.logitPositions;
  const P = positions.length;
  const select = P !== T;
  // The metric's backward overwrites the logits with their gradient: no second [B, P, V] buffer.
  const dlogits = fwd.logits!;
  // The vocabulary columns the forward unembedded (a logit difference), or all.
  const columns = o.columns && o.columns.length ? [...o.columns] : null;
  if (columns && fwd.logitsShape[2] !== columns.length) throw new Error('the forward plan unembeds other columns than the backward was given');
  const ldo = columns ? columns.length : V;
  const rotary = cfg.positional === 'rotary' ? w.rotary! : null;
  const wg = o.weightGrads ?? null;
  const acc = !!o.accumulate;
  const params: Params[] = [];
  const owned: GPUBuffer[] = [];
  const take = (floats: number, label: string) => {
    const b = gpu.pool.acquire(floats * 4, label);
    owned.push(b);
    return b;
  };
  try {
    const g: Record<string, GPUBuffer> = {};
    for (const [name, floats] of Object.entries(gradSizes(cfg, B, T, P, !!wg, acc, columns?.length ?? 0))) if (floats > 0) g[name] = take(floats, `grad ${name}`);

    // Saved activations: per layer (keep) or one shared set plus each layer's resid_pre (recompute).
    const sizes = savedFloats(cfg, B, T);
    const shared = o.memory === 'recompute' ? Object.fromEntries(Object.entries(sizes).map(([n, f]) => [n, take(f, `saved ${n}`)])) : null;
    const perLayer = Array.from({ length: cfg.n_layers }, (_, l) => shared ?? Object.fromEntries(Object.entries(sizes).map(([n, f]) => [n, take(f, `saved blocks.${l}.${n}`)])));
    const savedResid = o.memory === 'recompute' ? Array.from({ length: cfg.n_layers }, (_, l) => take(BT * C, `saved blocks.${l}.hook_resid_pre`)) : [];
    const finalN = take(BT * C, 'saved ln_final.hook_normalized');
    const finalS = take(BT, 'saved ln_final.hook_scale');
    const forwardSaves = new Map<string, GPUBuffer>([
      ['ln_final.hook_normalized', finalN],
      ['ln_final.hook_scale', finalS],
    ]);
    const replaySaves = new Map<string, GPUBuffer>();
    if (shared) {
      savedResid.forEach((b, l) => forwardSaves.set(`blocks.${l}.hook_resid_pre`, b));
      for (const [n, b] of Object.entries(shared)) replaySaves.set(n, b);
    } else {
      perLayer.forEach((set, l) => {
        for (const [n, b] of Object.entries(set)) forwardSaves.set(`blocks.${l}.${n}`, b);
      });
    }

    const index = (uniq: GPUBuffer, offsets: GPUBuffer, order: GPUBuffer, n: number): ScatterIndex => ({ uniq, offsets, order, n });
    const tokenIndex = index(g.idxUniq, g.idxOffsets, g.idxOrder, BT);
    const posIndex = g.posUniq ? index(g.posUniq, g.posOffsets, g.posOrder, BT) : null;
    const selIndex = select ? index(g.selUniq, g.selOffsets, g.selOrder, B * P) : null;
    const colIndex = columns && wg ? index(g.colUniq, g.colOffsets, g.colOrder, columns.length) : null;
    if (posIndex)
      writeScatterIndex(
        gpu,
        posIndex,
        Uint32Array.from({ length: BT }, (_, i) => i % T),
      );
    if (select) {
      const rows = Uint32Array.from({ length: B * P }, (_, i) => Math.floor(i / P) * T + positions[i % P]);
      gpu.device.queue.writeBuffer(g.sel, 0, rows);
      writeScatterIndex(gpu, selIndex!, rows);
    }

    const steps: BackwardStep[] = [];
    const gradSites = new Map<string, GradSite>();
    const op = (...d: Dispatch[]) => steps.push(...d);
    const copy = (src: GPUBuffer, dst: GPUBuffer, floats: number) => steps.push({ kind: 'copy', src, srcOffset: 0, dst, dstOffset: 0, size: floats * 4 });
    const site = (name: string, buffer: GPUBuffer, shape: number[]) => {
      const s: GradSite = { kind: 'grad-site', name, buffer, shape, pos0: 0 };
      steps.push(s);
      gradSites.set(name, s);
    };
    const dims = { B, T, H, Hkv, dh };
    // Masked keys (causal, sliding window) have pattern 0, so their gradients vanish on their own.
    const rotDims = { B, T, dh, rot: cfg.rotary_dim, pos0: 0, nCtx: cfg.n_ctx };
    // A projection's backward, on the forward's own matmul (its tuned tiles): dX (+)= dY W^T (see
    // `inputGrad`), and with weight gradients dW (+)= X'^T dY from X' transposed (the norm's
    // output rebuilt from hook_normalized on the way), db the column sums of dY.
    const linear = (
      label: string,
      dY: GPUBuffer,
      N: number,
      K: number,
      W: GPUBuffer,
      dX: GPUBuffer,
      accumulateX: boolean,
      x: GPUBuffer,
      affine: { gain: GPUBuffer; bias: GPUBuffer } | null,
      dW: GPUBuffer | undefined,
      db: GPUBuffer | undefined,
    ) => {
      op(...inputGrad(gpu, { dy: dY, w: W, f16W: w.f16, dx: dX, M: BT, N, K, accumulate: accumulateX, scratch: g.xT, label: `${label} dX` }, params)); // (B, T, K)
      if (dW) {
        op(transposeInput(gpu, { x, M: BT, K, affine, out: g.xT, label: `${label} input transposed` }, params)); // (K, B T)
        op(matmul(gpu, { out: acc ? g.dwPart : dW, a: g.xT, b: dY, M: K, N, K: BT, label: `${label} dW` }, params)); // (K, N)
        if (acc) op(accumulate(gpu, { y: dW, x: g.dwPart, n: K * N, label: `${label} dW add` }, params));
      }
      if (db) op(biasGrad(gpu, { M: BT, N, g: dY, db, accumulate: acc, label: `${label} db` }, params));
    };
    // A norm's backward from its output's gradient dY, mirrored from forward.ts's `norm`: gain ->
    // hook_normalized -> hook_scale -> the input, written or added (addInto) into dX. For RMSNorm
    // (no bias) the gain is the gain buffer alone. `heads`: a per-head norm (q_norm, k_norm) over
    // d_head, the same kernels on B T heads rows of d_head; its hook points are [B, T, heads, ..].
    const norm = (
      prefix: string,
      n: GPUBuffer,
      s: GPUBuffer,
      gain: GPUBuffer,
      bias: GPUBuffer | null,
      dGain: GPUBuffer | null | undefined,
      dBias: GPUBuffer | null | undefined,
      io: { dY: GPUBuffer; dX: GPUBuffer; addInto: boolean; heads?: number },
    ) => {
      const rows = io.heads ? BT * io.heads : BT;
      const width = io.heads ? dh : C;
      const lead = io.heads ? [B, T, io.heads] : [B, T];
      op(normGainBackward(gpu, { dn: g.normalized, dy: io.dY, w: gain, rows, C: width, label: `${prefix} gain backward` }, params)); // (B, T, C)
      if (dGain) op(normParamGrad(gpu, { dw: dGain, db: dBias ?? null, dy: io.dY, n, rows, C: width, accumulate: acc, label: `${prefix} dw` }, params));
      site(`${prefix}.hook_normalized`, g.normalized, [...lead, width]);
      op(normScaleGrad(gpu, { dscale: g.scale, dn: g.normalized, n, scale: s, rows, C: width, label: `${prefix} scale backward` }, params)); // (B, T, 1)
      site(`${prefix}.hook_scale`, g.scale, [...lead, 1]);
      op(
        normInputGrad(
          gpu,
          { dx: io.dX, dn: g.normalized, n, scale: s, dscale: o.detachScale ? null : g.scale, rms: bias === null, rows, C: width, accumulate: io.addInto, label: `${prefix} input backward` },
          params,
        ),
      ); // (B, T, C)
    };
    // The residual stream's norms (ln1, ln2, ln_final): from g.normOut into the residual gradient.
    const residNorm = (addInto: boolean) => ({ dY: g.normOut, dX: g.resid, addInto });
    // RMSNorm has no bias: the weight-gradient affine needs one; zeros of width C.
    const zeroBias = cfg.normalization === 'RMS' ? take(C, 'zero bias') : null;
    if (zeroBias) gpu.device.queue.writeBuffer(zeroBias, 0, new Float32Array(C));
    const affineOf = (gain: GPUBuffer, bias: GPUBuffer | null) => ({ gain, bias: bias ?? zeroBias! });

    // ---- The unembedding and ln_final (the forward's last steps, first). ----
    // dlogits (the forward's logits, overwritten) is written per run by the metric's backward
    // (grad-run.ts) before these steps.
    const yF = fwd.sites.get('unembed.hook_in')!.buffer; // (B, T, C) ln_final's output
    let yRows = yF;
    let gRows = g.normOut;
    if (select) {
      op(...gather(gpu, { out: g.ySel, ids: g.sel, table: [{ buffer: yF, row0: 0, rows: BT }], n: B * P, C, label: 'unembed input rows' }, params)); // (B, P, C)
      yRows = g.ySel;
      gRows = g.gYSel;
    }
    const unembedGrads: readonly RowChunk[] | null = wg ? (wg.W_U ?? wg.W_E) : null;
    if (columns) {
      // Only a few vocabulary columns were unembedded (a logit difference): their unembedding rows,
      // gathered, carry the gradient back; their weight gradient is scattered into those rows.
      const NV = columns.length;
      gpu.device.queue.writeBuffer(g.colIds, 0, Uint32Array.from(columns));
      if (colIndex) writeScatterIndex(gpu, colIndex, columns);
      op(...gather(gpu, { out: g.colW, ids: g.colIds, table: w.W_U_rows, n: NV, C, f16Table: w.f16, label: 'unembed columns' }, params)); // (NV, C)
      op(matmul(gpu, { out: gRows, a: dlogits, b: g.colW, M: B * P, N: C, K: NV, label: 'unembed columns dX' }, params)); // (B, P, C)
      if (unembedGrads) {
        op(transposeInput(gpu, { x: dlogits, M: B * P, K: NV, out: g.colT, label: 'logits gradient transposed' }, params)); // (NV, B P)
        op(matmul(gpu, { out: g.colDW, a: g.colT, b: yRows, M: NV, N: C, K: B * P, label: 'unembed columns dW' }, params)); // (NV, C)
        if (!acc) for (const c of unembedGrads) op(fill(gpu, { y: c.buffer, n: c.rows * C, label: 'unembedding gradient' }, params));
        op(...scatterAdd(gpu, { dtable: unembedGrads, dsrc: g.colDW, index: colIndex!, C, accumulate: true, label: 'unembed columns dW scatter' }, params)); // (d_vocab, C)
        if (wg!.b_U) {
          op(biasGrad(gpu, { M: B * P, N: NV, g: dlogits, db: g.colDb, label: 'unembed columns db' }, params)); // (NV)
          if (!acc) for (const c of wg!.b_U) op(fill(gpu, { y: c.buffer, n: c.rows, label: 'unembedding bias gradient' }, params));
          op(...scatterAdd(gpu, { dtable: wg!.b_U, dsrc: g.colDb, index: colIndex!, C: 1, accumulate: true, label: 'unembed columns db scatter' }, params)); // (d_vocab)
        }
      }
    } else {
      // As the forward's unembedding: per vocabulary chunk, and in blocks of rows whose window of
      // the logits' gradient fits one binding.
      const slack = gpu.limits.minStorageBufferOffsetAlignment;
      const perBlock = Math.max(1, Math.min(B * P, Math.floor((gpu.maxBinding - slack) / (ldo * 4))));
      if (!acc && perBlock >= B * P) {
        // On the forward's matmul, a block of vocabulary rows at a time (at most VOCAB_BLOCK_FLOATS
        // of the logits' gradient): the block made contiguous times its unembedding rows gives
        // the input gradient's share; the block transposed times ln_final's output gives the
        // unembedding's weight gradient, written straight into its rows.
        const sub = Math.max(4, Math.floor(VOCAB_BLOCK_FLOATS / (B * P)));
        let first = true;
        w.W_U_rows.forEach((chunk, ci) => {
          for (let v0 = 0; v0 < chunk.rows; v0 += sub) {
            const vs = Math.min(sub, chunk.rows - v0);
            const what = `vocab ${chunk.row0 + v0}+${vs}`;
            const block = { x: dlogits, xStart: chunk.row0 + v0, ldx: ldo, M: B * P, K: vs, out: g.vocab };
            op(copyBlock(gpu, { ...block, label: `logits gradient ${what}` }, params)); // (B P, vs)
            op(matmul(gpu, { out: first ? gRows : g.sumPart, a: g.vocab, b: chunk.buffer, bStart: v0 * C, f16B: w.f16, M: B * P, N: C, K: vs, label: `unembed dX ${what}` }, params)); // (B P, C)
            if (!first) op(accumulate(gpu, { y: gRows, x: g.sumPart, n: B * P * C, label: `unembed dX ${what} add` }, params));
            first = false;
            if (unembedGrads) {
              if (wg!.b_U) op(biasGrad(gpu, { M: B * P, N: vs, g: dlogits, gStart: chunk.row0 + v0, ldg: ldo, db: wg!.b_U[ci].buffer, dbStart: v0, label: `unembed db ${what}` }, params)); // (vs)
              op(transposeInput(gpu, { ...block, label: `logits gradient ${what} transposed` }, params)); // (vs, B P)
              op(matmul(gpu, { out: unembedGrads[ci].buffer, outStart: v0 * C, a: g.vocab, b: yRows, M: vs, N: C, K: B * P, label: `unembed dW ${what}` }, params)); // (vs, C)
            }
          }
        });
      } else {
        // Accumulating across runs, or more rows than one binding holds: the v2 tiles, which add in place.
        for (let r0 = 0; r0 < B * P; r0 += perBlock) {
          const m = Math.min(perBlock, B * P - r0);
          w.W_U_rows.forEach((chunk, ci) => {
            const cols = { M: m, N: chunk.rows, K: C, g: dlogits, gStart: r0 * ldo + chunk.row0, ldg: ldo };
            const what = `rows ${r0}+${m} vocab ${chunk.row0}+${chunk.rows}`;
            op(matmulDx(gpu, { ...cols, w: chunk.buffer, transW: true, f16W: w.f16, dx: gRows, dxStart: r0 * C, accumulate: ci > 0, label: `unembed dX ${what}` }, params)); // (m, C)
            if (unembedGrads) op(matmulDw(gpu, { ...cols, x: yRows, xStart: r0 * C, dw: unembedGrads[ci].buffer, transOut: true, accumulate: acc || r0 > 0, label: `unembed dW ${what}` }, params)); // (chunk, C)
            if (wg?.b_U)
              op(biasGrad(gpu, { M: m, N: chunk.rows, g: dlogits, gStart: r0 * ldo + chunk.row0, ldg: ldo, db: wg.b_U[ci].buffer, accumulate: acc || r0 > 0, label: `unembed db ${what}` }, params)); // (chunk)
          });
        }
      }
    }
    if (select) {
      op(fill(gpu, { y: g.normOut, n: BT * C, label: 'unembed.hook_in gradient' }, params)); // zero where the metric reads nothing
      op(...scatterAdd(gpu, { dtable: [{ buffer: g.normOut, row0: 0, rows: BT }], dsrc: g.gYSel, index: selIndex!, C, label: 'unembed input rows backward' }, params)); // (B, T, C)
    }
    site('unembed.hook_in', g.normOut, [B, T, C]);
    norm('ln_final', finalN, finalS, w.lnf_w, w.lnf_b, wg?.lnf_w, wg?.lnf_b, residNorm(false));

    // ---- The blocks, last to first. ----
    for (let l = cfg.n_layers - 1; l >= 0; l--) {
      const L = `blocks.${l}`;
      const p = w.layers[l];
      const d = wg?.layers[l];
      const S = perLayer[l];
      if (o.memory === 'recompute') steps.push({ kind: 'replay', layer: l });
      site(`${L}.hook_resid_post`, g.resid, [B, T, C]);
      copy(g.resid, g.mlpOut, BT * C);
      // A parallel block's attention output also feeds resid_post directly.
      if (cfg.parallel_attn_mlp) copy(g.resid, g.attnOut, BT * C);

      // MLP.
      site(`${L}.hook_mlp_out`, g.mlpOut, [B, T, C]);
      let mlpProj = g.mlpOut;
      if (cfg.post_norms) {
        // Gemma 3: hook_mlp_out is ln2_post's output; the projection wrote its input.
        norm(`${L}.ln2_post`, S['ln2_post.hook_normalized'], S['ln2_post.hook_scale'], p.ln2_post_w!, null, d?.ln2_post_w, null, { dY: g.mlpOut, dX: g.mlpOutRaw, addInto: false }); // (B, T, C)
        mlpProj = g.mlpOutRaw;
      }
      linear(`${L}.mlp.out`, mlpProj, C, M, p.W_out, g.post, false, S['mlp.hook_post'], null, d?.W_out, d?.b_out); // (B, T, d_mlp)
      site(`${L}.mlp.hook_post`, g.post, [B, T, M]);
      const ln2 = affineOf(p.ln2_w, p.ln2_b);
      if (p.W_gate) {
        op(
          activationBackward(
            gpu,
            { fn: cfg.act_fn, dx: g.pre, x: S['mlp.hook_pre'], dy: g.post, n: BT * M, gate: { up: S['mlp.hook_pre_linear'], dUp: g.preLinear }, label: `${L}.mlp.${cfg.act_fn} * up backward` },
            params,
          ),
        ); // (B, T, d_mlp) x2
        site(`${L}.mlp.hook_pre_linear`, g.preLinear, [B, T, M]);
        site(`${L}.mlp.hook_pre`, g.pre, [B, T, M]);
        linear(`${L}.mlp.gate`, g.pre, M, C, p.W_gate, g.normOut, false, S['ln2.hook_normalized'], ln2, d?.W_gate ?? undefined, d?.b_gate ?? undefined); // (B, T, C)
        linear(`${L}.mlp.up`, g.preLinear, M, C, p.W_in, g.normOut, true, S['ln2.hook_normalized'], ln2, d?.W_in, d?.b_in);
      } else {
        op(activationBackward(gpu, { fn: cfg.act_fn, dx: g.pre, x: S['mlp.hook_pre'], dy: g.post, n: BT * M, label: `${L}.mlp.${cfg.act_fn} backward` }, params)); // (B, T, d_mlp)
        site(`${L}.mlp.hook_pre`, g.pre, [B, T, M]);
        linear(`${L}.mlp.in`, g.pre, M, C, p.W_in, g.normOut, false, S['ln2.hook_normalized'], ln2, d?.W_in, d?.b_in); // (B, T, C)
      }
      norm(`${L}.ln2`, S['ln2.hook_normalized'], S['ln2.hook_scale'], p.ln2_w, p.ln2_b, d?.ln2_w, d?.ln2_b, residNorm(true));
      if (!cfg.parallel_attn_mlp) {
        site(`${L}.hook_resid_mid`, g.resid, [B, T, C]);
        copy(g.resid, g.attnOut, BT * C);
      }

      // Attention.
      site(`${L}.hook_attn_out`, g.attnOut, [B, T, C]);
      let attnProj = g.attnOut;
      if (cfg.post_norms) {
        norm(`${L}.ln1_post`, S['ln1_post.hook_normalized'], S['ln1_post.hook_scale'], p.ln1_post_w!, null, d?.ln1_post_w, null, { dY: g.attnOut, dX: g.attnOutRaw, addInto: false }); // (B, T, C)
        attnProj = g.attnOutRaw;
      }
      linear(`${L}.attn.out`, attnProj, C, HD, p.W_O, g.z, false, S['attn.hook_z'], null, d?.W_O, d?.b_O); // (B, T, H, dh)
      site(`${L}.attn.hook_z`, g.z, [B, T, H, dh]);
      const q = S[rotary ? 'attn.hook_rot_q' : 'attn.hook_q'];
      const k = S[rotary ? 'attn.hook_rot_k' : 'attn.hook_k'];
      const ldims = { ...dims, scale: attentionScale(cfg, l) };
      op(attnDPattern(gpu, { dims: ldims, dpattern: g.pattern, dz: g.z, v: S['attn.hook_v'], label: `${L}.attn.pattern backward` }, params)); // (B, H, T, T)
      op(attnDV(gpu, { dims: ldims, dv: g.v, pattern: S['attn.hook_pattern'], dz: g.z, label: `${L}.attn.v backward` }, params)); // (B, T, Hkv, dh)
      site(`${L}.attn.hook_pattern`, g.pattern, [B, H, T, T]);
      if (o.detachPattern) op(fill(gpu, { y: g.scores, n: B * H * T * T, label: `${L}.attn.scores gradient (pattern detached)` }, params));
      else op(attnSoftmaxBackward(gpu, { dims: ldims, dscores: g.scores, pattern: S['attn.hook_pattern'], dpattern: g.pattern, label: `${L}.attn.softmax backward` }, params)); // (B, H, T, T)
      site(`${L}.attn.hook_attn_scores`, g.scores, [B, H, T, T]);
      // The gradients of what the scores read: rotary's output, else the q/k norms' (Gemma 3,
      // Qwen3), else hook_q / hook_k.
      const qIn = cfg.qk_norm ? g.qNormOut : g.q;
      const kIn = cfg.qk_norm ? g.kNormOut : g.k;
      const gq = rotary ? g.rotQ : qIn;
      const gk = rotary ? g.rotK : kIn;
      op(attnDQ(gpu, { dims: ldims, dq: gq, dscores: g.scores, k, label: `${L}.attn.q backward` }, params)); // (B, T, H, dh)
      op(attnDK(gpu, { dims: ldims, dk: gk, dscores: g.scores, q, label: `${L}.attn.k backward` }, params)); // (B, T, Hkv, dh)
      if (rotary) {
        site(`${L}.attn.hook_rot_k`, g.rotK, [B, T, Hkv, dh]);
        site(`${L}.attn.hook_rot_q`, g.rotQ, [B, T, H, dh]);
        // The layer's own tables, as the forward's (local layers may have a rotary base of their own).
        const table = cfg.attn_types?.[l] === 'local' && w.rotaryLocal ? w.rotaryLocal : rotary;
        op(rotaryBackward(gpu, { dims: { ...rotDims, H: Hkv }, dx: kIn, dy: g.rotK, cos: table.cos, sin: table.sin, label: `${L}.attn.rot_k backward` }, params)); // (B, T, Hkv, dh)
        op(rotaryBackward(gpu, { dims: { ...rotDims, H }, dx: qIn, dy: g.rotQ, cos: table.cos, sin: table.sin, label: `${L}.attn.rot_q backward` }, params)); // (B, T, H, dh)
      }
      if (cfg.qk_norm) {
        // RMSNorm over each head's d_head: the norm kernels on B T H rows of d_head.
        norm(`${L}.attn.k_norm`, S['attn.k_norm.hook_normalized'], S['attn.k_norm.hook_scale'], p.k_norm_w!, null, d?.k_norm_w, null, { dY: g.kNormOut, dX: g.k, addInto: false, heads: Hkv }); // (B, T, Hkv, dh)
        norm(`${L}.attn.q_norm`, S['attn.q_norm.hook_normalized'], S['attn.q_norm.hook_scale'], p.q_norm_w!, null, d?.q_norm_w, null, { dY: g.qNormOut, dX: g.q, addInto: false, heads: H }); // (B, T, H, dh)
      }
      site(`${L}.attn.hook_v`, g.v, [B, T, Hkv, dh]);
      site(`${L}.attn.hook_k`, g.k, [B, T, Hkv, dh]);
      site(`${L}.attn.hook_q`, g.q, [B, T, H, dh]);
      const ln1 = affineOf(p.ln1_w, p.ln1_b);
      const n1 = S['ln1.hook_normalized'];
      linear(`${L}.attn.v`, g.v, KD, C, p.W_V, g.normOut, false, n1, ln1, d?.W_V, d?.b_V); // (B, T, C)
      linear(`${L}.attn.k`, g.k, KD, C, p.W_K, g.normOut, true, n1, ln1, d?.W_K, d?.b_K);
      linear(`${L}.attn.q`, g.q, HD, C, p.W_Q, g.normOut, true, n1, ln1, d?.W_Q, d?.b_Q);
      norm(`${L}.ln1`, n1, S['ln1.hook_scale'], p.ln1_w, p.ln1_b, d?.ln1_w, d?.ln1_b, residNorm(true));
      site(`${L}.hook_resid_pre`, g.resid, [B, T, C]);
    }

    // ---- The embeddings. ----
    if (cfg.positional === 'learned') {
      copy(g.resid, g.embed, BT * C);
      site('hook_embed', g.embed, [B, T, C]);
      copy(g.resid, g.posEmbed, BT * C);
      site('hook_pos_embed', g.posEmbed, [B, T, C]);
    } else {
      site('hook_embed', g.resid, [B, T, C]);
    }
    if (wg) {
      let embedGrad = cfg.positional === 'learned' ? g.embed : g.resid;
      const embedScale = cfg.embed_scale ?? 1;
      if (embedScale !== 1) {
        // hook_embed = W_E[token] * embed_scale: the table's gradient is the scaled one.
        op(fill(gpu, { y: g.normOut, n: BT * C, label: 'embedding gradient scaled' }, params));
        op(accumulate(gpu, { y: g.normOut, x: embedGrad, n: BT * C, alpha: embedScale, label: 'embedding gradient scaled' }, params));
        embedGrad = g.normOut;
      }
      // A tied embedding already holds the unembedding's share: add to it. Otherwise start from
      // zeros (tokens that do not occur get none) unless accumulating across runs.
      const tied = wg.W_U === null;
      if (!tied && !acc) for (const c of wg.W_E) op(fill(gpu, { y: c.buffer, n: c.rows * C, label: 'embed.W_E gradient' }, params));
      op(...scatterAdd(gpu, { dtable: wg.W_E, dsrc: embedGrad, index: tokenIndex, C, accumulate: true, label: 'embed.W_E backward' }, params)); // (d_vocab, C)
      if (wg.W_pos && posIndex) {
        if (!acc) for (const c of wg.W_pos) op(fill(gpu, { y: c.buffer, n: c.rows * C, label: 'pos_embed.W_pos gradient' }, params));
        op(...scatterAdd(gpu, { dtable: wg.W_pos, dsrc: g.posEmbed, index: posIndex, C, accumulate: true, label: 'pos_embed.W_pos backward' }, params)); // (n_ctx, C)
      }
    }

    const bytes = owned.reduce((n, b) => n + b.size, 0);
    const savedBytes = [...new Set([...forwardSaves.values(), ...replaySaves.values()])].reduce((n, b) => n + b.size, 0);
    return {
      batch: B,
      pos: T,
      memory: o.memory,
      steps,
      gradSites,
      forwardSaves,
      replaySaves,
      savedResid,
      dlogits,
      positions,
      setTokens: (flat) => writeScatterIndex(gpu, tokenIndex, flat),
      bytes: { saved: savedBytes, scratch: bytes - savedBytes },
      destroy() {
        for (const b of owned) gpu.pool.release(b);
        for (const u of params) u.destroy();
        owned.length = 0;
      },
    };
  } catch (e) {
    for (const b of owned) gpu.pool.release(b);
    for (const u of params) u.destroy();
    throw e;
  }
}
