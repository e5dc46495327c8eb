/**
 * The cache analyses TransformerLens users reach for, with TransformerLens' meanings (its
 * `ActivationCache` methods; also available as methods of Patchbay's `ActivationCache`). They
 * read the activations they need from a cache, and the weights from the model that made it, and
 * return CPU stacks with labels:
 *
 *   accumulatedResid   resid_pre of each layer (+ resid_mid with inclMid, + the final resid_post)
 *   decomposeResid     embed, pos_embed (learned positions only), then attn_out and mlp_out per layer
 *   stackHeadResults   each head's output z_h W_O[h] (hook_result if cached, else computed from hook_z)
 *   stackActivation    one hook point of every layer, stacked
 *   applyLnToStack     each component as input to a norm: centred (LayerNorm only) and divided by
 *                      that norm's cached hook_scale
 *   logitAttrs         each component's direct logit attribution: applyLnToStack into ln_final,
 *                      dotted with the tokens' residual directions (TransformerLens'
 *                      `logit_attrs`, which applies ln_final's scale itself: pass it an
 *                      un-normalized stack)
 *
 * Stacks are [components, batch, pos, d_model]; `posSlice` (a position, negative from the end,
 * which drops the pos axis, or a list of positions) takes part of the pos axis as TransformerLens'
 * `pos_slice` does, and a stack remembers it so later helpers scale by the same positions.
 *
 * The directions: `model.tokensToResidualDirections(t)` is W_U[:, t] scaled by ln_final's gain,
 * the direction in the space of ln_final's normalized input that gives token t's logit. On
 * weights processed as TransformerLens does (`processing: 'transformer-lens'`) the gain is folded
 * into W_U (all ones), so it is TransformerLens' W_U[:, t] exactly; on raw weights it is what
 * TransformerLens' fold_ln would make it, so direct logit attributions mean the same either way
 * and add up to the logit difference less the part no component writes (`model.logitBias`).
 */
import type { SiteName } from '../model/hook-points.ts';
import type { ActivationCache } from './activation-cache.ts';
import type { Model } from './model.ts';

/** Part of the pos axis: one position (negative counts from the end; the axis is dropped) or a list of positions. */
export type PosSlice = number | readonly number[];

export interface Stack {
  /** Row-major, leading axis = components. */
  data: Float32Array;
  shape: number[];
  /** One label per component, as TransformerLens writes them ("0_pre", "embed", "L3H7"). */
  labels: string[];
  /** The positions the stack holds (undefined: all of them). */
  posSlice?: PosSlice;
  /** The cache it came from (its scales and model serve later helpers). */
  cache?: ActivationCache;
}

/** The model a cache came from; helpers need its config and weights. */
function modelOf(cache: ActivationCache): Model {
  if (!cache.model) throw new Error("this ActivationCache was not made by a model run, so the helpers cannot read the model's weights");
  return cache.model;
}

function layerCount(cache: ActivationCache): number {
  return modelOf(cache).config.n_layers;
}

/** TransformerLens' `layer` argument: undefined or -1 is "all layers" (the unembedding's input). */
function resolveLayer(layer: number | undefined, L: number, what: string): number {
  const l = layer === undefined || layer === -1 ? L : layer;
  if (!Number.isInteger(l) || l < 0 || l > L) throw new Error(`${what}: layer ${layer} is out of range 0 .. ${L} (or -1 for all)`);
  return l;
}

/** Positions of a pos axis of length T that `s` selects, and whether the axis is kept. */
function positions(s: PosSlice | undefined, T: number): { pos: number[]; keep: boolean } {
  if (s === undefined) return { pos: [...Array(T).keys()], keep: true };
  const one = (p: number) => {
    const q = p < 0 ? T + p : p;
    if (!Number.isInteger(p) || q < 0 || q >= T) throw new Error(`position ${p} is out of range for ${T} positions`);
    return q;
  };
  if (typeof s === 'number') return { pos: [one(s)], keep: false };
  return { pos: s.map(one), keep: true };
}

/**
 * An activation [batch, pos, ...rest] with its pos axis sliced: [batch, P, ...rest], or
 * [batch, ...rest] for a single position.
 */
async function sliced(cache: ActivationCache, name: ActName, s: PosSlice | undefined): Promise<{ data: Float32Array; shape: number[] }> {
  const t = cache.get(name);
  const full = await t.read();
  const [B, T, ...rest] = t.shape;
  const inner = rest.reduce((a, b) => a * b, 1);
  const { pos, keep } = positions(s, T);
  if (s === undefined) return { data: full, shape: [...t.shape] };
  const data = new Float32Array(B * pos.length * inner);
  for (let b = 0; b < B; b++) pos.forEach((p, i) => data.set(full.subarray((b * T + p) * inner, (b * T + p + 1) * inner), (b * pos.length + i) * inner));
  return { data, shape: keep ? [B, pos.length, ...rest] : [B, ...rest] };
}

/** Stacks same-shaped parts along a new leading axis. */
function stackParts(parts: Array<{ data: Float32Array; shape: number[] }>, labels: string[], cache: ActivationCache, s: PosSlice | undefined, emptyShape: number[]): Stack {
  if (parts.length === 0) return { data: new Float32Array(0), shape: [0, ...emptyShape], labels, posSlice: s, cache };
  const n = parts[0].data.length;
  const data = new Float32Array(parts.length * n);
  parts.forEach((p, i) => data.set(p.data, i * n));
  return { data, shape: [parts.length, ...parts[0].shape], labels, posSlice: s, cache };
}

/** The shape of one component of a stack at these positions: [batch, (P,) d_model]. */
function componentShape(cache: ActivationCache, s: PosSlice | undefined): number[] {
  const [B, T] = cache.get('blocks.0.hook_resid_pre').shape;
  const { pos, keep } = positions(s, T);
  return keep ? [B, pos.length, modelOf(cache).config.d_model] : [B, modelOf(cache).config.d_model];
}

async function ensureStackable(cache: ActivationCache, names: SiteName[]): Promise<void> {
  const missing = names.filter((n) => !cache.has(n));
  if (missing.length) throw new Error(`the cache has no ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', ...' : ''}; run with runWithCache (every hook point) or cache these names`);
}

export interface AccumulatedResidOptions {
  /** Up to the input of this layer (undefined or -1: every layer and the final resid_post). */
  layer?: number;
  /** Also resid_mid of every layer before `layer`. */
  inclMid?: boolean;
  /** Also resid_mid of `layer` itself (the input of its MLP). */
  mlpInput?: boolean;
  /**
   * Apply the norm the stack feeds: for the final layer, ln_final on each component's own
   * statistics (the logit lens, gain and bias included on unprocessed weights); before it, the
   * cached scale of the layer's ln1 (ln2 with mlpInput), as `applyLnToStack`.
   */
  applyLn?: boolean;
  posSlice?: PosSlice;
}

/**
 * The residual stream before each layer up to `layer` (TransformerLens' `accumulated_resid`):
 * labels "0_pre", "0_mid", ..., "final_post".
 */
export async function accumulatedResid(cache: ActivationCache, opts: AccumulatedResidOptions = {}): Promise<Stack> {
  const L = layerCount(cache);
  const layer = resolveLayer(opts.layer, L, 'accumulatedResid');
  const names: SiteName[] = [];
  const labels: string[] = [];
  for (let l = 0; l <= layer; l++) {
    if (l === L) {
      names.push(`blocks.${L - 1}.hook_resid_post`);
      labels.push('final_post');
      continue;
    }
    names.push(`blocks.${l}.hook_resid_pre`);
    labels.push(`${l}_pre`);
    if ((opts.inclMid && l < layer) || (opts.mlpInput && l === layer)) {
      names.push(`blocks.${l}.hook_resid_mid`);
      labels.push(`${l}_mid`);
    }
  }
  await ensureStackable(cache, names);
  const stack = stackParts(await Promise.all(names.map((n) => sliced(cache, n, opts.posSlice))), labels, cache, opts.posSlice, []);
  if (!opts.applyLn) return stack;
  return layer === L ? lnFinalEach(stack) : applyLnToStack(cache, stack, { layer, mlpInput: opts.mlpInput });
}

export interface DecomposeResidOptions {
  /** Decompose the input of this layer (undefined or -1: the final residual stream). */
  layer?: number;
  /** The input of the layer's MLP: the layer's own attn_out too. */
  mlpInput?: boolean;
  /** Only attention outputs, or only MLP outputs (default all). */
  mode?: 'all' | 'attn' | 'mlp';
  /** Include the embeddings (default true): hook_embed, and hook_pos_embed on learned-position models. */
  inclEmbeds?: boolean;
  /** Apply the norm of the layer (ln1, ln2 with mlpInput, ln_final at the end) with its cached scale. */
  applyLn?: boolean;
  posSlice?: PosSlice;
}

/**
 * The residual stream at the input of `layer` as a sum of components (TransformerLens'
 * `decompose_resid`): "embed", "pos_embed" (learned positions only), then "L_attn_out",
 * "L_mlp_out" for each earlier layer. On any family the components sum to that residual stream.
 */
export async function decomposeResid(cache: ActivationCache, opts: DecomposeResidOptions = {}): Promise<Stack> {
  const L = layerCount(cache);
  const layer = resolveLayer(opts.layer, L, 'decomposeResid');
  const mode = opts.mode ?? 'all';
  if (!['all', 'attn', 'mlp'].includes(mode)) throw new Error(`decomposeResid: mode "${mode}" is not one of all, attn, mlp`);
  const names: SiteName[] = [];
  const labels: string[] = [];
  const add = (name: SiteName, label: string) => {
    names.push(name);
    labels.push(label);
  };
  if (opts.inclEmbeds ?? true) {
    if (cache.has('hook_embed')) add('hook_embed', 'embed');
    // Rotary models have no position embedding in the residual stream.
    if (cache.has('hook_pos_embed')) add('hook_pos_embed', 'pos_embed');
  }
  for (let l = 0; l < layer; l++) {
    if (mode !== 'mlp') add(`blocks.${l}.hook_attn_out`, `${l}_attn_out`);
    if (mode !== 'attn') add(`blocks.${l}.hook_mlp_out`, `${l}_mlp_out`);
  }
  if (opts.mlpInput && mode !== 'mlp') {
    if (layer === L) throw new Error('decomposeResid: mlpInput needs a layer below n_layers');
    names.push(`blocks.${layer}.hook_attn_out`);
    labels.push(`${layer}_attn_out`);
  }
  await ensureStackable(cache, names);
  const stack = stackParts(await Promise.all(names.map((n) => sliced(cache, n, opts.posSlice))), labels, cache, opts.posSlice, componentShape(cache, opts.posSlice));
  return opts.applyLn ? applyLnToStack(cache, stack, { layer, mlpInput: opts.mlpInput }) : stack;
}

export interface StackHeadResultsOptions {
  /** Heads of the layers before this one (undefined or -1: every layer). */
  layer?: number;
  /** Also "remainder": resid_post of layer - 1 minus the heads' sum. */
  inclRemainder?: boolean;
  /** Apply the norm of `layer` (ln_final at the end) with its cached scale. */
  applyLn?: boolean;
  posSlice?: PosSlice;
}

/**
 * Each head's output, z_h W_O[h] (TransformerLens' `stack_head_results`): [layers * heads, batch,
 * pos, d_model], labels "L0H0", "L0H1", .... Read from `blocks.L.attn.hook_result` when the run
 * cached it, otherwise computed from the cached `hook_z` and the model's W_O.
 */
export async function stackHeadResults(cache: ActivationCache, opts: StackHeadResultsOptions = {}): Promise<Stack> {
  const model = modelOf(cache);
  const { n_heads: H, d_head: dh, d_model: C } = model.config;
  const L = layerCount(cache);
  const layer = resolveLayer(opts.layer, L, 'stackHeadResults');
  const parts: Array<{ data: Float32Array; shape: number[] }> = [];
  const labels: string[] = [];
  for (let l = 0; l < layer; l++) {
    let heads: { data: Float32Array; shape: number[] }; // [rows, H, C] after slicing
    if (cache.has(`blocks.${l}.attn.hook_result`)) {
      heads = await sliced(cache, `blocks.${l}.attn.hook_result`, opts.posSlice);
    } else {
      await ensureStackable(cache, [`blocks.${l}.attn.hook_z`]);
      const z = await sliced(cache, `blocks.${l}.attn.hook_z`, opts.posSlice); // [..., H, dh]
      const W_O = (await model.weight(`blocks.${l}.attn.W_O`)).data; // [H, dh, C]
      const rows = z.data.length / (H * dh);
      const out = new Float32Array(rows * H * C);
      for (let r = 0; r < rows; r++) {
        for (let h = 0; h < H; h++) {
          const acc = new Float64Array(C);
          for (let e = 0; e < dh; e++) {
            const x = z.data[(r * H + h) * dh + e];
            const w = (h * dh + e) * C;
            for (let c = 0; c < C; c++) acc[c] += x * W_O[w + c];
          }
          out.set(acc, (r * H + h) * C);
        }
      }
      heads = { data: out, shape: [...z.shape.slice(0, -2), H, C] };
    }
    const lead = heads.shape.slice(0, -2); // [batch, (P)]
    const rows = lead.reduce((a, b) => a * b, 1);
    for (let h = 0; h < H; h++) {
      const one = new Float32Array(rows * C);
      for (let r = 0; r < rows; r++) one.set(heads.data.subarray((r * H + h) * C, (r * H + h + 1) * C), r * C);
      parts.push({ data: one, shape: [...lead, C] });
      labels.push(`L${l}H${h}`);
    }
  }
  let stack = stackParts(parts, labels, cache, opts.posSlice, componentShape(cache, opts.posSlice));
  if (opts.inclRemainder) {
    const total = layer === 0 ? null : await sliced(cache, `blocks.${layer - 1}.hook_resid_post`, opts.posSlice);
    const n = stack.data.length / Math.max(1, stack.shape[0]);
    const rem = total ? total.data.slice() : new Float32Array(componentShape(cache, opts.posSlice).reduce((a, b) => a * b, 1));
    for (let i = 0; i < stack.shape[0]; i++) for (let j = 0; j < n; j++) rem[j] -= stack.data[i * n + j];
    const data = new Float32Array(stack.data.length + rem.length);
    data.set(stack.data);
    data.set(rem, stack.data.length);
    stack = { ...stack, data, shape: [stack.shape[0] + 1, ...stack.shape.slice(1)], labels: [...labels, 'remainder'] };
  }
  return opts.applyLn ? applyLnToStack(cache, stack, { layer }) : stack;
}

/**
 * One activation of every layer before `layer`, stacked (TransformerLens' `stack_activation`):
 * `stackActivation(cache, 'pattern')` is [n_layers, batch, head, query_pos, key_pos]. Names are
 * `getActName` shorthands ('resid_pre', 'pattern', 'scale' with sublayerType 'ln1', ...).
 */
export async function stackActivation(cache: ActivationCache, name: string, opts: { layer?: number; sublayerType?: string } = {}): Promise<Stack> {
  const L = layerCount(cache);
  const layer = resolveLayer(opts.layer, L, 'stackActivation');
  const names = Array.from({ length: layer }, (_, l) => getActName(name, l, opts.sublayerType));
  await ensureStackable(cache, names);
  const parts = await Promise.all(names.map(async (n) => ({ data: await cache.read(n), shape: [...cache.get(n).shape] })));
  return { ...stackParts(parts, names, cache, undefined, []), posSlice: undefined };
}

export interface ApplyLnOptions {
  /** The layer whose input the stack is (undefined or -1: ln_final, the unembedding's input). */
  layer?: number;
  /** The input of the layer's MLP (ln2) rather than its attention (ln1). */
  mlpInput?: boolean;
  /** The stack's positions (default: the ones it was made with). */
  posSlice?: PosSlice;
}

/**
 * TransformerLens' `apply_ln_to_stack`: treats each component as input to a norm (ln1 of
 * `layer`, ln2 with `mlpInput`, ln_final when `layer` is omitted) and applies that norm's cached
 * scale: component - mean(component) under LayerNorm (no centring under RMSNorm), divided by the
 * norm's hook_scale of the whole residual stream. Gain and bias are not applied (folded into
 * the next weights on processed models), so the components still sum to the normalized input.
 */
export async function applyLnToStack(cache: ActivationCache, s: Stack, opts: ApplyLnOptions = {}): Promise<Stack> {
  const model = modelOf(cache);
  const L = layerCount(cache);
  const layer = resolveLayer(opts.layer, L, 'applyLnToStack');
  if (opts.mlpInput && layer === L) throw new Error('applyLnToStack: mlpInput needs a layer below n_layers (ln_final has no MLP)');
  const scaleName: SiteName = layer === L ? 'ln_final.hook_scale' : `blocks.${layer}.${opts.mlpInput ? 'ln2' : 'ln1'}.hook_scale`;
  if (!cache.has(scaleName)) throw new Error(`the cache has no ${scaleName}, which applyLnToStack needs`);
  const posSlice = opts.posSlice ?? s.posSlice;
  const scale = (await sliced(cache, scaleName, posSlice)).data; // one per (batch, position) row
  const C = s.shape.at(-1)!;
  const n = s.shape[0];
  const perComponent = n ? s.data.length / n / C : 0;
  if (n && perComponent !== scale.length) {
    throw new Error(`applyLnToStack: each component has ${perComponent} rows but ${scaleName} at these positions has ${scale.length}; give the stack's posSlice`);
  }
  const center = model.config.normalization === 'LN';
  const out = new Float32Array(s.data.length);
  for (let r = 0; r < s.data.length / C; r++) {
    const row = s.data.subarray(r * C, (r + 1) * C);
    let mean = 0;
    if (center) {
      for (let c = 0; c < C; c++) mean += row[c];
      mean /= C;
    }
    const sc = scale[r % perComponent];
    for (let c = 0; c < C; c++) out[r * C + c] = (row[c] - mean) / sc;
  }
  return { ...s, data: out, posSlice };
}

/** ln_final applied to each component on its own statistics, gain and bias included (the logit lens). */
async function lnFinalEach(s: Stack): Promise<Stack> {
  const model = modelOf(s.cache!);
  const { d_model: C, eps, normalization } = model.config;
  const w = (await model.weight('ln_final.w')).data;
  const b = normalization === 'LN' ? (await model.weight('ln_final.b')).data : null;
  const out = new Float32Array(s.data.length);
  for (let r = 0; r < s.data.length / C; r++) {
    const row = s.data.subarray(r * C, (r + 1) * C);
    let mean = 0;
    if (b) {
      for (let c = 0; c < C; c++) mean += row[c];
      mean /= C;
    }
    let sq = 0;
    for (let c = 0; c < C; c++) sq += (row[c] - mean) ** 2;
    const scale = Math.sqrt(sq / C + eps);
    for (let c = 0; c < C; c++) out[r * C + c] = ((row[c] - mean) / scale) * w[c] + (b ? b[c] : 0);
  }
  return { ...s, data: out };
}

/** Tokens for `logitAttrs`: one for every row, one per batch row, or one per [batch][position]. */
export type AttrTokens = number | readonly number[] | readonly (readonly number[])[];

/**
 * Direct logit attribution (TransformerLens' `logit_attrs`): each component's contribution to
 * the logit of `tokens` (minus that of `incorrect`), through ln_final's cached scale: the stack
 * is scaled as `applyLnToStack` into ln_final (so pass a stack made without applyLn), then
 * dotted with `model.tokensToResidualDirections`. Returns [components, batch, (pos)].
 */
export async function logitAttrs(
  s: Stack,
  tokens: AttrTokens,
  incorrect?: AttrTokens,
  opts: { cache?: ActivationCache; posSlice?: PosSlice } = {},
): Promise<{ data: Float32Array; shape: number[]; labels: string[] }> {
  const cache = opts.cache ?? s.cache;
  if (!cache) throw new Error('logitAttrs needs the cache the stack came from: give { cache }');
  const model = modelOf(cache);
  const C = model.config.d_model;
  const scaled = await applyLnToStack(cache, s, { posSlice: opts.posSlice });
  const rowsPer = s.shape[0] ? s.data.length / s.shape[0] / C : 0;
  const lead = s.shape.slice(1, -1); // [batch, (P)]
  // The direction for each (batch, position) row of a component.
  const dirFor = async (t: AttrTokens): Promise<(row: number) => Float32Array> => {
    if (typeof t === 'number') {
      const d = (await model.tokensToResidualDirections(t)).data;
      return () => d;
    }
    const flat = (t as readonly (number | readonly number[])[]).flat() as number[];
    const per = rowsPer / flat.length;
    if (!Number.isInteger(per) || per < 1) throw new Error(`logitAttrs: ${flat.length} tokens for components of ${rowsPer} rows [${lead.join(', ')}]`);
    const dirs = (await model.tokensToResidualDirections(flat)).data;
    return (row) => dirs.subarray(Math.floor(row / per) * C, (Math.floor(row / per) + 1) * C);
  };
  const good = await dirFor(tokens);
  const bad = incorrect === undefined ? null : await dirFor(incorrect);
  const out = new Float32Array(s.data.length / C);
  for (let r = 0; r < out.length; r++) {
    const row = r % Math.max(1, rowsPer);
    const g = good(row);
    const b = bad?.(row);
    let acc = 0;
    for (let c = 0; c < C; c++) acc += scaled.data[r * C + c] * (g[c] - (b ? b[c] : 0));
    out[r] = acc;
  }
  return { data: out, shape: s.shape.slice(0, -1), labels: [...s.labels] };
}

/** Sums a stack over its components: [n, ...rest] -> [...rest]. */
export function sumStack(s: { data: Float32Array; shape: readonly number[] }): Float32Array {
  const n = s.shape[0];
  const inner = n ? s.data.length / n : 0;
  const out = new Float32Array(inner);
  for (let i = 0; i < n; i++) for (let j = 0; j < inner; j++) out[j] += s.data[i * inner + j];
  return out;
}

/**
 * `logits[row, pos, good] - logits[row, pos, bad]` from read-back logits [batch, pos, vocab].
 */
export function logitDiff(logits: Float32Array, shape: readonly number[], pos: number, good: number, bad: number, row = 0): number {
  const [B, T, V] = shape;
  for (const [v, n, what] of [
    [row, B, 'batch row'],
    [pos, T, 'position'],
    [good, V, 'token'],
    [bad, V, 'token'],
  ] as const) {
    if (!Number.isInteger(v) || v < 0 || v >= n) throw new Error(`${what} ${v} is out of range 0 .. ${n - 1}`);
  }
  const base = (row * T + pos) * V;
  return logits[base + good] - logits[base + bad];
}

const LAYER_TYPE_ALIAS: Record<string, string> = { a: 'attn', m: 'mlp', b: '', block: '', blocks: '', attention: 'attn' };
const ACT_NAME_ALIAS = {
  attn: 'pattern',
  attn_logits: 'attn_scores',
  key: 'k',
  query: 'q',
  value: 'v',
  mlp_pre: 'pre',
  mlp_mid: 'mid',
  mlp_post: 'post',
} as const satisfies Record<string, string>;
const ATTN_SHORT = ['k', 'v', 'q', 'z', 'rot_k', 'rot_q', 'result', 'pattern', 'attn_scores'] as const;
const MLP_SHORT = ['pre', 'post', 'mid', 'pre_linear'] as const;
const ATTN_NAMES = new Set<string>(ATTN_SHORT);
const MLP_NAMES = new Set<string>(MLP_SHORT);

type OtherShortName = 'embed' | 'pos_embed' | 'resid_pre' | 'resid_mid' | 'resid_post' | 'attn_out' | 'mlp_out' | 'scale' | 'normalized';
/** TransformerLens' short activation names (`get_act_name`'s), aliases included. */
export type ActShortName = (typeof ATTN_SHORT)[number] | (typeof MLP_SHORT)[number] | OtherShortName | keyof typeof ACT_NAME_ALIAS;
/**
 * What a cache lookup takes: a hook point's full name, or a TransformerLens shorthand (with the
 * layer as an argument, or in the name: `k6`, `scale4ln1`).
 */
export type ActName = SiteName | ActShortName | `${ActShortName}${number}${string}`;
/** An `ActName`, or any string (checked by the lookup, which suggests the nearest names). */
export type ActNameLike = ActName | (string & NonNullable<unknown>);

/**
 * TransformerLens' `get_act_name`: a hook name from a shorthand. `getActName('pattern', 1)` is
 * 'blocks.1.attn.hook_pattern', `getActName('resid_pre', 0)` 'blocks.0.hook_resid_pre',
 * `getActName('scale', 4, 'ln1')` 'blocks.4.ln1.hook_scale', `getActName('k6')`
 * 'blocks.6.attn.hook_k', `getActName('normalized')` 'ln_final.hook_normalized'; a full name is
 * returned as it is. Like TransformerLens' it checks nothing: the cache's get() does.
 */
export function getActName(name: string, layer?: number | string, layerType?: string): SiteName {
  // The name it builds (a lookup checks it exists).
  if ((name.includes('.') || name.startsWith('hook_')) && layer === undefined && layerType === undefined) return name as SiteName;
  let type = layerType;
  let lay: number | string | undefined = layer;
  const m = /^([a-z]+)(\d+)([a-z]?.*)$/.exec(name);
  if (m) [, name, lay, type] = m;
  name = (ACT_NAME_ALIAS as Record<string, string>)[name] ?? name;
  let full = lay !== undefined && lay !== null ? `blocks.${lay}.` : '';
  if (ATTN_NAMES.has(name)) type = 'attn';
  else if (MLP_NAMES.has(name)) type = 'mlp';
  else if (type !== undefined && type in LAYER_TYPE_ALIAS) type = LAYER_TYPE_ALIAS[type];
  if (type) full += `${type}.`;
  full += `hook_${name}`;
  if ((name === 'scale' || name === 'normalized') && (lay === undefined || lay === null)) full = `ln_final.${full}`;
  return full as SiteName;
}
