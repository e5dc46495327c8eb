/**
 * The GPT-2 forward pass, top to bottom, for one shape.
 *
 * `buildForward` allocates every activation once, prepares every dispatch (pipeline, bind group,
 * uniforms) and returns a plan: a flat list of kernel dispatches interleaved with named hook
 * sites. A run replays the plan into one command encoder; at a site it may overwrite the
 * activation (interventions) and copy it into a cache. With nothing asked of a site, the site
 * costs nothing. Activation buffers are scratch shared by all layers, so memory does not grow
 * with depth; what a caller wants to keep is copied out at its site.
 *
 * A plan can also resume a pass (DESIGN decision 3): from layer L0 and position p0, given the
 * residual stream entering layer L0 at positions >= p0 and the keys and values of positions
 * < p0 at every layer >= L0 (from a cached run). Causality makes this exact for any change made
 * at or after (L0, p0); patching sweeps use it to skip the work a patch cannot change, and to
 * unembed only the positions a metric reads.
 *
 * Names of the sites are TransformerLens' hook points for GPT-2, and for the families' extra
 * steps TransformerLens' names too: Gemma 3's and Qwen3's per-head query/key norms
 * (`attn.q_norm`, `attn.k_norm`, hook points [batch, pos, head, d_head] and [.., 1] where
 * TransformerLens flattens them to [batch * pos * head, ..]) and Gemma 3's post-attention and
 * post-MLP norms (`ln1_post`, `ln2_post`, whose outputs are hook_attn_out and hook_mlp_out).
 *
 * Norms follow TransformerLens' split: `hook_scale` is the norm's scale and `hook_normalized`
 * its input normalized before the gain and bias. The fused kernel writes the scale and the
 * output and never the normalized input; the plan holds two on-demand steps around those sites
 * (see `OnDemand`) that compute the normalized input when a run reads it or changed the scale,
 * and apply the gain and bias again when a run changed either. A run that touches neither runs
 * the fused kernel alone, as it did before the split.
 */
import type { Gpu } from '../gpu/device.ts';
import type { Dispatch, Params } from '../gpu/recorder.ts';
import { matmul } from '../gpu/kernels/matmul.ts';
import { layernorm, layernormAffine, layernormNormalize } from '../gpu/kernels/layernorm.ts';
import { attnScores, attnSoftmax, attnZ } from '../gpu/kernels/attention.ts';
import { activation, add, softcap } from '../gpu/kernels/elementwise.ts';
import { rotary as rotaryOp } from '../gpu/kernels/rotary.ts';
import { gather } from '../gpu/kernels/embed.ts';
import { headResult, sumHeads } from '../gpu/kernels/head-result.ts';
import { kvAssemble } from '../gpu/kernels/kv-cache.ts';
import { sizeClass } from '../gpu/pool.ts';
import { attentionScale, type ModelConfig } from './config.ts';
import type { GpuWeights } from './gpu-weights.ts';
import { planUnembed } from './unembed.ts';
import type { HookName, NormPrefix, SiteName } from './hook-points.ts';

/** A named point of the pass where an activation of `shape` sits in `buffer`. */
export interface Site {
  kind: 'site';
  /** A hook point of the model (the forward's sites), or of a spliced SAE (`src/hooks/splice.ts`). */
  name: SiteName;
  buffer: GPUBuffer;
  shape: number[];
  /** Absolute position of the activation's position row 0 (> 0 in a resumed pass). */
  pos0: number;
}

/**
 * Dispatches a run performs only when it touches some sites: when a site in `ifRead` is cached,
 * intervened on or handed to a hook function, or a site in `ifChanged` is intervened on (a hook
 * function counts as a change). `executePlan` decides per run; nothing is rebuilt.
 */
export interface OnDemand {
  kind: 'on-demand';
  label: string;
  ifRead: string[];
  ifChanged: string[];
  dispatches: Dispatch[];
}

export type PlanStep = Dispatch | Site | OnDemand;

export interface PlanShape {
  batch: number;
  /** Positions of the sequence. */
  pos: number;
  /** Compute `hook_result` (per-head outputs) and sum attn_out from it. */
  withResult?: boolean;
  /** Resume at this layer: the caller fills `input` with resid_pre of this layer. */
  fromLayer?: number;
  /**
   * Start from a residual stream in `input` even at layer 0 (no embedding), as TransformerLens'
   * start_at_layer; `fromLayer` may then be n_layers (ln_final and the unembedding only).
   */
  fromResidual?: boolean;
  /**
   * Stop before this layer (TransformerLens' stop_at_layer, exclusive): `residual` then holds the
   * residual stream entering it; there is no ln_final, unembedding or logits.
   */
  toLayer?: number;
  /** Resume at this position: the caller fills `past` with earlier keys and values. */
  fromPos?: number;
  /** Absolute positions whose logits are computed, in this order (default: all computed ones). */
  logitPositions?: readonly number[];
  /**
   * Ragged rows: batch row b starts at absolute position starts[b] >= fromPos (a sweep's variant
   * changes nothing before its own position). Its earlier positions are neither computed nor
   * read: their keys and values come from `past`, which then holds max(starts) positions.
   */
  starts?: readonly number[];
  /** Compute only these vocabulary columns of the logits ([batch, logit positions, tokens]). */
  logitTokens?: readonly number[];
  /**
   * A batch of cached prompts: batch row b takes its earlier keys and values from row
   * pastRows[b] of `past` (which then holds max(pastRows) + 1 rows). Default: every row from row 0.
   */
  pastRows?: readonly number[];
  /**
   * The last layer computes queries, attention output and MLP only at the logit positions (keys
   * and values everywhere, since those rows attend to them); its other rows are left unset. For
   * passes that read nothing but the logits.
   */
  trimLastLayer?: boolean;
}

export interface ForwardPlan {
  batch: number;
  pos: number;
  withResult: boolean;
  fromLayer: number;
  fromPos: number;
  /** The layer the pass stops before (n_layers for a full pass). */
  toLayer: number;
  steps: PlanStep[];
  /** Token ids, [batch * pos] u32, written before each run (a fresh pass only). */
  ids: GPUBuffer | null;
  /** A resumed pass's input: resid_pre of `fromLayer` at positions >= fromPos, [batch, pos - fromPos, d_model]. */
  input: GPUBuffer | null;
  /** A resumed pass's cached keys and values of positions < pastLen, per layer >= fromLayer: [pastBatch, pastLen, kv heads * d_head] each. */
  past: Map<number, { k: GPUBuffer; v: GPUBuffer }>;
  /** Positions `past` holds: fromPos, or max(starts) for ragged rows. */
  pastLen: number;
  /** Cached prompts `past` holds, [pastBatch, pastLen, kv heads * d_head] per layer. */
  pastBatch: number;
  /** The hook points whose cached values fill `past`: `attn.hook_rot_k` (rotary) or `attn.hook_k`, and `attn.hook_v`. */
  pastHooks: { k: 'attn.hook_rot_k' | 'attn.hook_k'; v: 'attn.hook_v' };
  /** [batch, logit positions, d_vocab or logitTokens.length]; null for a pass stopped before the end. */
  logits: GPUBuffer | null;
  /** A stopped pass's output: the residual stream entering `toLayer`, [batch, pos - fromPos, d_model]. */
  residual: GPUBuffer | null;
  logitsShape: number[];
  logitPositions: number[];
  /** Every site in order, by name. */
  sites: Map<string, Site>;
  /** Bytes of activation scratch this plan holds. */
  bytes: number;
  destroy(): void;
}

interface Resolved {
  B: number;
  T: number;
  L0: number;
  /** The layer the pass stops before. */
  L1: number;
  /** Stopped before the end: no ln_final, no logits. */
  stopped: boolean;
  p0: number;
  /** Positions computed per row. */
  Tn: number;
  resumed: boolean;
  withResult: boolean;
  logitPositions: number[];
  /** Logit rows are a subset gathered from ln_final (not every computed position, in order). */
  select: boolean;
  /** Per batch row, the first position computed. */
  starts: number[];
  /** Some row starts after p0: matmuls go through a table of the computed rows. */
  ragged: boolean;
  /** Rows of [B, Tn] computed (ragged), in order. */
  liveRows: number[];
  pastLen: number;
  /** Vocabulary columns computed (all when null). */
  logitTokens: number[] | null;
  trim: boolean;
  /** Per batch row, the row of `past` it reads (null: all row 0). */
  pastRows: number[] | null;
  pastBatch: number;
}

function resolve(cfg: ModelConfig, s: PlanShape): Resolved {
  const L0 = s.fromLayer ?? 0;
  const p0 = s.fromPos ?? 0;
  const stopped = s.toLayer !== undefined;
  const L1 = s.toLayer ?? cfg.n_layers;
  const lastStart = s.fromResidual ? cfg.n_layers : cfg.n_layers - 1;
  if (!Number.isInteger(L0) || L0 < 0 || L0 > lastStart) throw new Error(`fromLayer ${L0} is out of range 0 .. ${lastStart}`);
  if (!Number.isInteger(L1) || L1 < L0 || L1 > cfg.n_layers) throw new Error(`toLayer ${L1} is out of range ${L0} .. ${cfg.n_layers}`);
  if (p0 < 0 || p0 >= s.pos) throw new Error(`fromPos ${p0} is out of range 0 .. ${s.pos - 1}`);
  const all = Array.from({ length: s.pos - p0 }, (_, i) => p0 + i);
  const logitPositions = s.logitPositions ? [...s.logitPositions] : all;
  for (const p of logitPositions) {
    if (!Number.isInteger(p) || p < p0 || p >= s.pos) throw new Error(`logit position ${p} is not computed by this pass (positions ${p0} .. ${s.pos - 1})`);
  }
  const select = logitPositions.length !== all.length || logitPositions.some((p, i) => p !== all[i]);
  const starts = s.starts ? [...s.starts] : Array<number>(s.batch).fill(p0);
  if (starts.length !== s.batch) throw new Error(`starts has ${starts.length} entries for a batch of ${s.batch}`);
  for (const st of starts) {
    if (!Number.isInteger(st) || st < p0 || st > logitPositions[0]) {
      throw new Error(`row start ${st} must lie in ${p0} .. ${logitPositions[0]} (the pass start .. the first logit position)`);
    }
  }
  const ragged = starts.some((st) => st > p0);
  const Tn = s.pos - p0;
  const liveRows = ragged ? starts.flatMap((st, b) => Array.from({ length: s.pos - st }, (_, i) => b * Tn + st - p0 + i)) : [];
  const logitTokens = s.logitTokens ? [...s.logitTokens] : null;
  if (logitTokens && logitTokens.length === 0) throw new Error('logitTokens is empty');
  const pastRows = s.pastRows ? [...s.pastRows] : null;
  if (pastRows && (pastRows.length !== s.batch || pastRows.some((r) => !Number.isInteger(r) || r < 0))) {
    throw new Error(`pastRows must give a row (a non-negative integer) for each of the ${s.batch} batch rows`);
  }
  return {
    B: s.batch,
    T: s.pos,
    L0,
    L1,
    stopped,
    p0,
    Tn,
    resumed: L0 > 0 || p0 > 0 || !!s.fromResidual,
    withResult: !!s.withResult,
    logitPositions,
    select,
    starts,
    ragged,
    liveRows,
    pastLen: Math.max(p0, ...starts),
    logitTokens,
    trim: !!s.trimLastLayer && select && !stopped,
    pastRows,
    pastBatch: pastRows ? Math.max(...pastRows) + 1 : 1,
  };
}

/** The forward's scratch activations, by name (see `scratchSizes` for each one's shape). */
export type Activation = keyof ReturnType<typeof activationSizes> | `pastK${number}` | `pastV${number}`;

/** The forward's scratch activations, in floats (shapes in the comments); shared by every layer. */
export function scratchSizes(cfg: ModelConfig, shape: PlanShape): Record<Activation, number> {
  const sizes: Record<Activation, number> = activationSizes(cfg, shape);
  const r = resolve(cfg, shape);
  const KD = cfg.n_key_value_heads * cfg.d_head;
  for (let l = r.L0; r.pastLen > 0 && l < r.L1; l++) {
    sizes[`pastK${l}`] = r.pastBatch * r.pastLen * KD; // [pastBatch, pastLen, Hkv, dh]
    sizes[`pastV${l}`] = r.pastBatch * r.pastLen * KD;
  }
  return sizes;
}

/** The activations every plan has (a size of 0 where this shape or model does not use one). */
function activationSizes(cfg: ModelConfig, shape: PlanShape) {
  const { d_model: C, n_heads: H, n_key_value_heads: Hkv, d_head: dh, d_mlp: M, d_vocab: V } = cfg;
  const r = resolve(cfg, shape);
  const { B, T, Tn } = r;
  const BT = B * Tn;
  const HD = H * dh;
  const KD = cfg.n_key_value_heads * dh;
  const P = r.logitPositions.length;
  const NV = r.logitTokens?.length ?? V; // vocabulary columns computed
  const head = r.stopped ? 0 : 1; // ln_final and the unembedding run
  const learned = cfg.positional === 'learned';
  const rotary = cfg.positional === 'rotary';
  const qk = !!cfg.qk_norm;
  const post = !!cfg.post_norms;
  return {
    ids: r.resumed ? 0 : BT, // [B, T] u32
    posIds: r.resumed || !learned ? 0 : BT, // [B, T] u32
    embed: r.resumed || !learned ? 0 : BT * C, // [B, T, C] (rotary models gather straight into the residual)
    posEmbed: r.resumed || !learned ? 0 : BT * C, // [B, T, C]
    residA: BT * C, // [B, Tn, C] ping-pong with residB: resid_pre / resid_post alternate per layer
    residB: BT * C, // [B, Tn, C]
    ln1: BT * C, // [B, Tn, C] ln1's output (gain and bias applied)
    ln1Scale: BT, // [B, Tn, 1]
    normalized: BT * Math.max(C, qk ? HD : 0), // [B, Tn, C] a norm's input before gain and bias, on demand; shared by every norm ([B, Tn, H, dh] for q_norm)
    q: BT * HD, // [B, Tn, H, dh]
    k: BT * KD, // [B, Tn, Hkv, dh] this pass's keys
    v: BT * KD, // [B, Tn, Hkv, dh]
    qNormed: qk ? BT * HD : 0, // [B, Tn, H, dh] queries after their per-head RMSNorm
    qScale: qk ? BT * H : 0, // [B, Tn, H, 1]
    kNormed: qk ? BT * KD : 0, // [B, Tn, Hkv, dh]
    kScale: qk ? BT * Hkv : 0, // [B, Tn, Hkv, 1]
    rotQ: rotary ? BT * HD : 0, // [B, Tn, H, dh] after rotary embeddings
    rotK: rotary ? BT * KD : 0, // [B, Tn, Hkv, dh]
    kFull: r.pastLen ? B * T * KD : 0, // [B, T, Hkv, dh] cached keys of positions < p0, then this pass's
    vFull: r.pastLen ? B * T * KD : 0, // [B, T, Hkv, dh]
    scores: B * H * Tn * T, // [B, H, Tn, T]
    pattern: B * H * Tn * T, // [B, H, Tn, T]
    z: BT * HD, // [B, Tn, H, dh]
    result: r.withResult ? BT * H * C : 0, // [B, Tn, H, C] per-head outputs, only when asked for
    attnOut: BT * C, // [B, Tn, C]
    attnOutRaw: post ? BT * C : 0, // [B, Tn, C] attention output before ln1_post
    ln1PostScale: post ? BT : 0, // [B, Tn, 1]
    residMid: BT * C, // [B, Tn, C]
    ln2: BT * C, // [B, Tn, C] ln2's output
    ln2Scale: BT, // [B, Tn, 1]
    mlpPre: BT * M, // [B, Tn, d_mlp] (the gate in a gated MLP)
    mlpPreLinear: cfg.gated_mlp ? BT * M : 0, // [B, Tn, d_mlp] the up projection
    mlpPost: BT * M, // [B, Tn, d_mlp]
    mlpOut: BT * C, // [B, Tn, C]
    mlpOutRaw: post ? BT * C : 0, // [B, Tn, C] MLP output before ln2_post
    ln2PostScale: post ? BT : 0, // [B, Tn, 1]
    lnf: head * BT * C, // [B, Tn, C] ln_final's output (unembed.hook_in)
    lnfScale: head * BT, // [B, Tn, 1]
    selIds: r.select ? head * B * P : 0, // [B, P] u32 rows of lnf to unembed
    lnfSel: r.select ? head * B * P * C : 0, // [B, P, C]
    liveRows: r.liveRows.length, // [rows computed] u32 indices into [B, Tn]
    starts: r.ragged ? B : 0, // [B] u32 first position of each row
    pastRows: r.pastRows && r.pastLen ? B : 0, // [B] u32 row of past each row reads
    unembedIds: r.logitTokens ? head * NV : 0, // [NV] u32 vocabulary columns
    unembedW: r.logitTokens ? head * NV * C : 0, // [NV, C] their unembedding rows
    unembedB: r.logitTokens ? head * NV : 0, // [NV] their unembedding bias (written only when the model has one)
    logits: head * B * P * NV, // [B, P, NV]
  };
}

/** Bytes of pool memory a plan of this shape takes (size classes included). */
export function scratchBytes(cfg: ModelConfig, shape: PlanShape): number {
  return Object.values(scratchSizes(cfg, shape)).reduce((n, f) => n + (f ? sizeClass(f * 4) : 0), 0);
}

export function buildForward(gpu: Gpu, cfg: ModelConfig, w: GpuWeights, shape: PlanShape): ForwardPlan {
  const params: Params[] = [];
  const owned: GPUBuffer[] = [];
  try {
    return planForward(gpu, cfg, w, shape, params, owned);
  } catch (e) {
    // A plan that fails half-built (a binding over the device's limit, a rejected pipeline)
    // gives back the scratch and uniforms it took, so a retry finds the pool as it was.
    for (const b of owned) gpu.pool.release(b);
    for (const u of params) u.destroy();
    throw e;
  }
}

/** `buildForward`'s body: every buffer it takes goes into `owned`, every uniform into `params`. */
function planForward(gpu: Gpu, cfg: ModelConfig, w: GpuWeights, shape: PlanShape, params: Params[], owned: GPUBuffer[]): ForwardPlan {
  const { d_model: C, n_heads: H, n_key_value_heads: Hkv, d_head: dh, d_mlp: M, d_vocab: V, eps } = cfg;
  const r = resolve(cfg, shape);
  const { B, T, Tn, L0, L1, p0, withResult } = r;
  const BT = B * Tn;
  const HD = H * dh;
  const KD = Hkv * dh;
  const P = r.logitPositions.length;
  const NV = r.logitTokens?.length ?? V;
  const rotary = cfg.positional === 'rotary' ? w.rotary! : null;
  const rotDims = { B, T: Tn, dh, rot: cfg.rotary_dim, pos0: p0, nCtx: cfg.n_ctx };
  // Every activation by name; one of size 0 (unused by this shape or model) is never read.
  const a = {} as Record<Activation, GPUBuffer>;
  for (const [name, floats] of Object.entries(scratchSizes(cfg, shape)) as [Activation, number][]) {
    if (floats === 0) continue;
    a[name] = gpu.pool.acquire(floats * 4, name);
    owned.push(a[name]);
  }
  const resid = [a.residA, a.residB];

  const steps: PlanStep[] = [];
  const sites = new Map<string, Site>();
  const op = (...d: Dispatch[]) => steps.push(...d);
  const site = (name: HookName, buffer: GPUBuffer, siteShape: number[]) => {
    const s: Site = { kind: 'site', name, buffer, shape: siteShape, pos0: p0 };
    steps.push(s);
    sites.set(name, s);
  };
  // A norm at TransformerLens' two hook points. The fused kernel writes the output and the scale;
  // the normalized input is computed on demand from x and the (possibly changed) scale, and the
  // gain and bias are applied again on demand after a change to either hook point.
  // `heads`: a per-head norm (q_norm, k_norm) over d_head, hook points [B, Tn, heads, ..].
  const norm = (prefix: NormPrefix, out: GPUBuffer, scale: GPUBuffer, x: GPUBuffer, gain: GPUBuffer, bias: GPUBuffer | null, heads = 0) => {
    const dims = heads ? { rows: BT * heads, C: dh } : { rows: BT, C };
    const lead = heads ? [B, Tn, heads] : [B, Tn];
    op(layernorm(gpu, { out, scale, x, w: gain, b: bias, eps, label: prefix, ...dims }, params)); // (B, Tn, C), (B, Tn, 1)
    site(`${prefix}.hook_scale`, scale, [...lead, 1]);
    steps.push({
      kind: 'on-demand',
      label: `${prefix} normalize`,
      ifRead: [`${prefix}.hook_normalized`],
      ifChanged: [`${prefix}.hook_scale`],
      dispatches: [layernormNormalize(gpu, { normalized: a.normalized, x, scale, rms: bias === null, label: `${prefix} normalize`, ...dims }, params)], // (B, Tn, C)
    });
    site(`${prefix}.hook_normalized`, a.normalized, [...lead, dims.C]);
    steps.push({
      kind: 'on-demand',
      label: `${prefix} gain and bias`,
      ifRead: [],
      ifChanged: [`${prefix}.hook_scale`, `${prefix}.hook_normalized`],
      dispatches: [layernormAffine(gpu, { out, normalized: a.normalized, w: gain, b: bias, label: `${prefix} gain and bias`, ...dims }, params)], // (B, Tn, C)
    });
  };
  const attnDims = { B, T, H, Hkv, dh, Tq: Tn, q0: p0 };
  const embedScale = cfg.embed_scale ?? 1;
  if (r.ragged) {
    gpu.device.queue.writeBuffer(a.liveRows, 0, new Uint32Array(r.liveRows));
    gpu.device.queue.writeBuffer(a.starts, 0, new Uint32Array(r.starts));
  }
  if (a.pastRows) gpu.device.queue.writeBuffer(a.pastRows, 0, new Uint32Array(r.pastRows!));
  if (r.select && !r.stopped) {
    const rows = new Uint32Array(B * P);
    for (let b = 0; b < B; b++) r.logitPositions.forEach((pos, i) => (rows[b * P + i] = b * Tn + pos - p0));
    gpu.device.queue.writeBuffer(a.selIds, 0, rows);
  }
  // The rows a matmul computes: every row, the live rows of a ragged pass, or (trimmed last
  // layer, past its keys and values) only the logit rows.
  const rowsOf = (l: number, part: 'kv' | 'rest'): { M: number; rows?: GPUBuffer; bufferRows?: number } => {
    if (r.trim && l === cfg.n_layers - 1 && part === 'rest') return { M: B * P, rows: a.selIds, bufferRows: BT };
    if (r.ragged) return { M: r.liveRows.length, rows: a.liveRows, bufferRows: BT };
    return { M: BT };
  };

  if (!r.resumed && w.W_pos) {
    gpu.device.queue.writeBuffer(
      a.posIds,
      0,
      new Uint32Array(BT).map((_, i) => i % T),
    );
    op(...gather(gpu, { out: a.embed, ids: a.ids, table: w.W_E, n: BT, C, f16Table: w.f16, scale: embedScale, label: 'embed' }, params)); // (B, T, C)
    site('hook_embed', a.embed, [B, T, C]);
    op(...gather(gpu, { out: a.posEmbed, ids: a.posIds, table: w.W_pos, n: BT, C, f16Table: w.f16, label: 'pos_embed' }, params)); // (B, T, C)
    site('hook_pos_embed', a.posEmbed, [B, T, C]);
    op(add(gpu, { out: resid[0], a: a.embed, b: a.posEmbed, n: BT * C, label: 'embed + pos_embed' }, params)); // (B, T, C)
  } else if (!r.resumed) {
    // Rotary models add no position vector: the embedding is the residual stream.
    op(...gather(gpu, { out: resid[0], ids: a.ids, table: w.W_E, n: BT, C, f16Table: w.f16, scale: embedScale, label: 'embed' }, params)); // (B, T, C) (Gemma: times sqrt(d_model))
    site('hook_embed', resid[0], [B, T, C]);
  }

  for (let l = L0; l < L1; l++) {
    const p = w.layers[l];
    const L = `blocks.${l}` as const;
    // resid_pre of layer l lives in resid[(l - L0) % 2] (a resumed pass's input is resid[0]).
    const residPre = resid[(l - L0) % 2];
    const residPost = resid[(l - L0 + 1) % 2];
    site(`${L}.hook_resid_pre`, residPre, [B, Tn, C]);

    // Attention.
    norm(`${L}.ln1`, a.ln1, a.ln1Scale, residPre, p.ln1_w, p.ln1_b); // (B, Tn, C)
    op(matmul(gpu, { out: a.q, a: a.ln1, b: p.W_Q, bias: p.b_Q, f16B: w.f16, ...rowsOf(l, 'rest'), N: HD, K: C, label: `${L}.attn.q` }, params)); // (B, Tn, H, dh)
    site(`${L}.attn.hook_q`, a.q, [B, Tn, H, dh]);
    op(matmul(gpu, { out: a.k, a: a.ln1, b: p.W_K, bias: p.b_K, f16B: w.f16, ...rowsOf(l, 'kv'), N: KD, K: C, label: `${L}.attn.k` }, params)); // (B, Tn, Hkv, dh)
    site(`${L}.attn.hook_k`, a.k, [B, Tn, Hkv, dh]);
    op(matmul(gpu, { out: a.v, a: a.ln1, b: p.W_V, bias: p.b_V, f16B: w.f16, ...rowsOf(l, 'kv'), N: KD, K: C, label: `${L}.attn.v` }, params)); // (B, Tn, Hkv, dh)
    site(`${L}.attn.hook_v`, a.v, [B, Tn, Hkv, dh]);
    let q = a.q;
    let k = a.k;
    let v = a.v;
    if (cfg.qk_norm) {
      // Gemma 3 / Qwen3: RMSNorm over each head's d_head, before rotary.
      norm(`${L}.attn.q_norm`, a.qNormed, a.qScale, a.q, p.q_norm_w!, null, H); // (B, Tn, H, dh)
      norm(`${L}.attn.k_norm`, a.kNormed, a.kScale, a.k, p.k_norm_w!, null, Hkv); // (B, Tn, Hkv, dh)
      q = a.qNormed;
      k = a.kNormed;
    }
    const local = cfg.attn_types?.[l] === 'local';
    const layerDims = { ...attnDims, scale: attentionScale(cfg, l), ...(local ? { window: cfg.window_size! } : {}) };
    if (rotary) {
      const table = local && w.rotaryLocal ? w.rotaryLocal : rotary;
      op(rotaryOp(gpu, { dims: { ...rotDims, H }, y: a.rotQ, x: q, cos: table.cos, sin: table.sin, label: `${L}.attn.rot_q` }, params)); // (B, Tn, H, dh)
      site(`${L}.attn.hook_rot_q`, a.rotQ, [B, Tn, H, dh]);
      op(rotaryOp(gpu, { dims: { ...rotDims, H: Hkv }, y: a.rotK, x: k, cos: table.cos, sin: table.sin, label: `${L}.attn.rot_k` }, params)); // (B, Tn, Hkv, dh)
      site(`${L}.attn.hook_rot_k`, a.rotK, [B, Tn, Hkv, dh]);
      q = a.rotQ;
      k = a.rotK;
    }
    if (r.pastLen > 0) {
      const starts = r.ragged ? a.starts : null; // per row: positions before its start come from past
      const rows = a.pastRows ?? null; // per row: which cached prompt
      op(
        kvAssemble(gpu, { full: a.kFull, past: a[`pastK${l}`], fresh: k, B, T, q0: p0, HD: KD, starts, pastLen: r.pastLen, pastRows: rows, pastBatch: r.pastBatch, label: `${L}.attn.k past` }, params),
      ); // (B, T, Hkv, dh)
      op(
        kvAssemble(gpu, { full: a.vFull, past: a[`pastV${l}`], fresh: v, B, T, q0: p0, HD: KD, starts, pastLen: r.pastLen, pastRows: rows, pastBatch: r.pastBatch, label: `${L}.attn.v past` }, params),
      ); // (B, T, Hkv, dh)
      k = a.kFull;
      v = a.vFull;
    }
    op(attnScores(gpu, { dims: layerDims, scores: a.scores, q, k, label: `${L}.attn.scores` }, params)); // (B, H, Tn, T)
    site(`${L}.attn.hook_attn_scores`, a.scores, [B, H, Tn, T]);
    op(attnSoftmax(gpu, { dims: layerDims, pattern: a.pattern, scores: a.scores, label: `${L}.attn.softmax` }, params)); // (B, H, Tn, T)
    site(`${L}.attn.hook_pattern`, a.pattern, [B, H, Tn, T]);
    op(attnZ(gpu, { dims: layerDims, z: a.z, pattern: a.pattern, v, label: `${L}.attn.z` }, params)); // (B, Tn, H, dh)
    site(`${L}.attn.hook_z`, a.z, [B, Tn, H, dh]);
    // With post norms (Gemma 3) the projection's output is ln1_post's input; hook_attn_out is after it.
    const attnProj = cfg.post_norms ? a.attnOutRaw : a.attnOut;
    if (withResult) {
      op(headResult(gpu, { result: a.result, z: a.z, W_O: p.W_O, BT, H, dh, C, f16W: w.f16, label: `${L}.attn.result` }, params)); // (B, Tn, H, C)
      site(`${L}.attn.hook_result`, a.result, [B, Tn, H, C]);
      op(sumHeads(gpu, { out: attnProj, result: a.result, b_O: p.b_O, BT, H, C, label: `${L}.attn.out` }, params)); // (B, Tn, C)
    } else {
      op(matmul(gpu, { out: attnProj, a: a.z, b: p.W_O, bias: p.b_O, f16B: w.f16, ...rowsOf(l, 'rest'), N: C, K: HD, label: `${L}.attn.out` }, params)); // (B, Tn, C)
    }
    if (cfg.post_norms) norm(`${L}.ln1_post`, a.attnOut, a.ln1PostScale, a.attnOutRaw, p.ln1_post_w!, null); // (B, Tn, C)
    site(`${L}.hook_attn_out`, a.attnOut, [B, Tn, C]);
    op(add(gpu, { out: a.residMid, a: residPre, b: a.attnOut, n: BT * C, label: `${L}.resid_mid` }, params)); // (B, Tn, C)
    // A parallel block (GPT-NeoX) has no resid_mid: its MLP reads resid_pre too.
    if (!cfg.parallel_attn_mlp) site(`${L}.hook_resid_mid`, a.residMid, [B, Tn, C]);

    // MLP.
    const mlpIn = cfg.parallel_attn_mlp ? residPre : a.residMid;
    norm(`${L}.ln2`, a.ln2, a.ln2Scale, mlpIn, p.ln2_w, p.ln2_b); // (B, Tn, C)
    if (p.W_gate) {
      op(matmul(gpu, { out: a.mlpPre, a: a.ln2, b: p.W_gate, bias: p.b_gate, f16B: w.f16, ...rowsOf(l, 'rest'), N: M, K: C, label: `${L}.mlp.gate` }, params)); // (B, Tn, d_mlp)
      site(`${L}.mlp.hook_pre`, a.mlpPre, [B, Tn, M]);
      op(matmul(gpu, { out: a.mlpPreLinear, a: a.ln2, b: p.W_in, bias: p.b_in, f16B: w.f16, ...rowsOf(l, 'rest'), N: M, K: C, label: `${L}.mlp.up` }, params)); // (B, Tn, d_mlp)
      site(`${L}.mlp.hook_pre_linear`, a.mlpPreLinear, [B, Tn, M]);
      op(activation(gpu, { fn: cfg.act_fn, y: a.mlpPost, x: a.mlpPre, n: BT * M, up: a.mlpPreLinear, label: `${L}.mlp.${cfg.act_fn} * up` }, params)); // (B, Tn, d_mlp)
    } else {
      op(matmul(gpu, { out: a.mlpPre, a: a.ln2, b: p.W_in, bias: p.b_in, f16B: w.f16, ...rowsOf(l, 'rest'), N: M, K: C, label: `${L}.mlp.in` }, params)); // (B, Tn, d_mlp)
      site(`${L}.mlp.hook_pre`, a.mlpPre, [B, Tn, M]);
      op(activation(gpu, { fn: cfg.act_fn, y: a.mlpPost, x: a.mlpPre, n: BT * M, label: `${L}.mlp.${cfg.act_fn}` }, params)); // (B, Tn, d_mlp)
    }
    site(`${L}.mlp.hook_post`, a.mlpPost, [B, Tn, M]);
    op(matmul(gpu, { out: cfg.post_norms ? a.mlpOutRaw : a.mlpOut, a: a.mlpPost, b: p.W_out, bias: p.b_out, f16B: w.f16, ...rowsOf(l, 'rest'), N: C, K: M, label: `${L}.mlp.out` }, params)); // (B, Tn, C)
    if (cfg.post_norms) norm(`${L}.ln2_post`, a.mlpOut, a.ln2PostScale, a.mlpOutRaw, p.ln2_post_w!, null); // (B, Tn, C)
    site(`${L}.hook_mlp_out`, a.mlpOut, [B, Tn, C]);
    op(add(gpu, { out: residPost, a: a.residMid, b: a.mlpOut, n: BT * C, label: `${L}.resid_post` }, params)); // (B, Tn, C)
    site(`${L}.hook_resid_post`, residPost, [B, Tn, C]);
  }

  const past = new Map<number, { k: GPUBuffer; v: GPUBuffer }>();
  for (let l = L0; r.pastLen > 0 && l < L1; l++) past.set(l, { k: a[`pastK${l}`], v: a[`pastV${l}`] });
  const plan = (logits: GPUBuffer | null, residual: GPUBuffer | null): ForwardPlan => ({
    batch: B,
    pos: T,
    withResult,
    fromLayer: L0,
    fromPos: p0,
    toLayer: L1,
    steps,
    ids: r.resumed ? null : a.ids,
    input: r.resumed ? resid[0] : null,
    past,
    pastLen: r.pastLen,
    pastBatch: r.pastBatch,
    pastHooks: { k: rotary ? 'attn.hook_rot_k' : 'attn.hook_k', v: 'attn.hook_v' },
    logits,
    logitsShape: logits ? [B, P, NV] : [],
    logitPositions: logits ? r.logitPositions : [],
    residual,
    sites,
    bytes: owned.reduce((n, b) => n + b.size, 0),
    destroy() {
      for (const b of owned) gpu.pool.release(b);
      for (const u of params) u.destroy();
      owned.length = 0;
    },
  });
  // Stopped before the end: the residual stream entering L1 is the output.
  if (r.stopped) return plan(null, resid[(L1 - L0) % 2]);

  const residFinal = resid[(cfg.n_layers - L0) % 2];
  norm('ln_final', a.lnf, a.lnfScale, residFinal, w.lnf_w, w.lnf_b); // (B, Tn, C)
  site('unembed.hook_in', a.lnf, [B, Tn, C]);
  let unembedIn = a.lnf;
  if (r.select) {
    // Only the positions a metric reads: gather their ln_final rows (the gather kernel, with
    // ln_final itself as a one-chunk table).
    op(...gather(gpu, { out: a.lnfSel, ids: a.selIds, table: [{ buffer: a.lnf, row0: 0, rows: BT }], n: B * P, C, label: 'logit positions' }, params)); // (B, P, C)
    unembedIn = a.lnfSel;
  }
  if (r.logitTokens) {
    // A few vocabulary columns (a logit difference): gather their unembedding rows, then one small product.
    gpu.device.queue.writeBuffer(a.unembedIds, 0, new Uint32Array(r.logitTokens));
    op(...gather(gpu, { out: a.unembedW, ids: a.unembedIds, table: w.W_U_rows, n: NV, C, f16Table: w.f16, label: 'unembed columns' }, params)); // (NV, C)
    const bias = w.host.b_U ? a.unembedB : null;
    if (bias)
      gpu.device.queue.writeBuffer(
        bias,
        0,
        Float32Array.from(r.logitTokens, (t) => w.host.b_U![t]),
      );
    op(matmul(gpu, { out: a.logits, a: unembedIn, b: a.unembedW, bias, M: B * P, N: NV, K: C, transB: true, label: 'unembed columns' }, params)); // (B, P, NV)
  } else {
    op(...planUnembed(gpu, a.logits, unembedIn, w.W_U_rows, B * P, C, V, params, w.f16, w.b_U)); // (B, P, V)
  }
  // The logits are a hook point only when the pass computes all of them (every position, every token).
  if (!r.select && !r.logitTokens) site('unembed.hook_out', a.logits, [B, Tn, V]);
  // A final soft-cap (Gemma 2 style; TransformerLens applies it after unembed.hook_out too).
  if (cfg.output_logits_soft_cap) op(softcap(gpu, { y: a.logits, n: B * P * NV, cap: cfg.output_logits_soft_cap, label: 'logit soft-cap' }, params)); // (B, P, NV)
  return plan(a.logits, null);
}
