/**
 * The cache analyses TransformerLens users reach for, with TransformerLens' meanings. They read
 * the activations they need from an `ActivationCache` and return CPU stacks with labels:
 *
 *   accumulatedResid   resid_pre of each layer (+ the final resid_post)        [n, batch, pos, d_model]
 *   decomposeResid     embed, pos_embed, then attn_out and mlp_out per layer   [n, batch, pos, d_model]
 *   stackHeadResults   each head's output after W_O (needs hook_result)        [layers*heads, batch, pos, d_model]
 *   applyLnToStack     centre each component and divide by the cached LayerNorm scale (no gain,
 *                      no bias: TransformerLens' `apply_ln_to_stack`, which assumes folded LN)
 *
 * The logit lens and the logit-difference direction need the model's weights: see `Model.logitLens`
 * and `Model.logitDiffDirection`.
 */
import type { ActivationCache } from './activation-cache.ts';

export interface Stack {
  /** Row-major, leading axis = components. */
  data: Float32Array;
  shape: number[];
  /** One label per component, as TransformerLens writes them ("0_pre", "embed", "L3H7"). */
  labels: string[];
}

async function stack(cache: ActivationCache, names: string[], labels: string[]): Promise<Stack> {
  const parts = await Promise.all(names.map((n) => cache.read(n)));
  const shape = cache.get(names[0]).shape;
  const n = parts[0].length;
  const data = new Float32Array(parts.length * n);
  parts.forEach((p, i) => data.set(p, i * n));
  return { data, shape: [parts.length, ...shape], labels };
}

function layerCount(cache: ActivationCache): number {
  let n = 0;
  while (cache.has(`blocks.${n}.hook_resid_pre`)) n++;
  if (n === 0) throw new Error('the cache holds no blocks.L.hook_resid_pre; cache the residual stream first (e.g. cache: /hook_resid|hook_attn_out|hook_mlp_out|hook_embed|hook_pos_embed/)');
  return n;
}

/**
 * The residual stream before each layer < `layer` (all layers, plus the final resid_post, when
 * `layer` is omitted); with `inclMid`, resid_mid too. Labels "0_pre", "0_mid", ..., "final_post".
 */
export async function accumulatedResid(cache: ActivationCache, opts: { layer?: number; inclMid?: boolean } = {}): Promise<Stack> {
  const L = layerCount(cache);
  const upTo = opts.layer ?? L;
  if (upTo < 0 || upTo > L) throw new Error(`layer ${upTo} is out of range 0 .. ${L}`);
  const names: string[] = [];
  const labels: string[] = [];
  for (let l = 0; l < upTo; l++) {
    names.push(`blocks.${l}.hook_resid_pre`);
    labels.push(`${l}_pre`);
    if (opts.inclMid) {
      names.push(`blocks.${l}.hook_resid_mid`);
      labels.push(`${l}_mid`);
    }
  }
  if (upTo === L) {
    names.push(`blocks.${L - 1}.hook_resid_post`);
    labels.push('final_post');
  } else {
    names.push(`blocks.${upTo}.hook_resid_pre`);
    labels.push(`${upTo}_pre`);
  }
  return stack(cache, names, labels);
}

/**
 * The residual stream at the input of `layer` (the final one when omitted) as a sum of
 * components: embed, pos_embed, then each earlier layer's attn_out and mlp_out; with
 * `mlpInput`, the layer's own attn_out too (the input of its MLP).
 */
export async function decomposeResid(cache: ActivationCache, opts: { layer?: number; mlpInput?: boolean } = {}): Promise<Stack> {
  const L = layerCount(cache);
  const upTo = opts.layer ?? L;
  if (upTo < 0 || upTo > L) throw new Error(`layer ${upTo} is out of range 0 .. ${L}`);
  const names = ['hook_embed', 'hook_pos_embed'];
  const labels = ['embed', 'pos_embed'];
  for (let l = 0; l < upTo; l++) {
    names.push(`blocks.${l}.hook_attn_out`, `blocks.${l}.hook_mlp_out`);
    labels.push(`${l}_attn_out`, `${l}_mlp_out`);
  }
  if (opts.mlpInput && upTo < L) {
    names.push(`blocks.${upTo}.hook_attn_out`);
    labels.push(`${upTo}_attn_out`);
  }
  return stack(cache, names, labels);
}

/**
 * Each head's output after W_O (`blocks.L.attn.hook_result`, which a run computes only when
 * asked), for layers < `layer` (all when omitted), as [layers*heads, batch, pos, d_model].
 * Labels "L0H0", "L0H1", ...
 */
export async function stackHeadResults(cache: ActivationCache, opts: { layer?: number } = {}): Promise<Stack> {
  const L = opts.layer ?? layerCount(cache);
  const data: Float32Array[] = [];
  const labels: string[] = [];
  let inner: number[] = [];
  for (let l = 0; l < L; l++) {
    const name = `blocks.${l}.attn.hook_result`;
    if (!cache.has(name)) throw new Error(`the cache has no ${name}; run with cache including /attn.hook_result$/ (computed only when asked)`);
    const t = cache.get(name);
    const [B, T, H, C] = t.shape;
    const r = await t.read();
    for (let h = 0; h < H; h++) {
      const out = new Float32Array(B * T * C); // [B, T, C] for head h
      for (let bt = 0; bt < B * T; bt++) out.set(r.subarray((bt * H + h) * C, (bt * H + h + 1) * C), bt * C);
      data.push(out);
      labels.push(`L${l}H${h}`);
    }
    inner = [B, T, C];
  }
  const n = data[0]?.length ?? 0;
  const flat = new Float32Array(data.length * n);
  data.forEach((d, i) => flat.set(d, i * n));
  return { data: flat, shape: [data.length, ...inner], labels };
}

/**
 * TransformerLens' `apply_ln_to_stack`: treats each component as input to the LayerNorm before
 * `layer` (ln1 of that layer, ln2 with `mlpInput`, ln_final when omitted) and applies that
 * LayerNorm's cached scale: component - mean(component), divided by hook_scale of the full
 * residual. Gain and bias are not applied, so the components still sum to the centred input.
 */
export async function applyLnToStack(cache: ActivationCache, s: Stack, opts: { layer?: number; mlpInput?: boolean } = {}): Promise<Stack> {
  const L = layerCount(cache);
  const layer = opts.layer ?? L;
  const scaleName = layer === L ? 'ln_final.hook_scale' : `blocks.${layer}.${opts.mlpInput ? 'ln2' : 'ln1'}.hook_scale`;
  if (!cache.has(scaleName)) throw new Error(`the cache has no ${scaleName}, which applyLnToStack needs`);
  const scale = await cache.read(scaleName); // [batch, pos, 1]
  const C = s.shape.at(-1)!;
  const rowsPerComponent = scale.length;
  const out = new Float32Array(s.data.length);
  for (let r = 0; r < s.data.length / C; r++) {
    const row = s.data.subarray(r * C, (r + 1) * C);
    let mean = 0;
    for (let c = 0; c < C; c++) mean += row[c];
    mean /= C;
    const sc = scale[r % rowsPerComponent];
    for (let c = 0; c < C; c++) out[r * C + c] = (row[c] - mean) / sc;
  }
  return { data: out, shape: [...s.shape], labels: [...s.labels] };
}

/** Sums a stack over its components: [n, ...rest] -> [...rest]. */
export function sumStack(s: Stack): Float32Array {
  const n = s.shape[0];
  const inner = s.data.length / n;
  const out = new Float32Array(inner);
  for (let i = 0; i < n; i++) for (let j = 0; j < inner; j++) out[j] += s.data[i * inner + j];
  return out;
}

/**
 * `logits[row, pos, good] - logits[row, pos, bad]` from read-back logits [batch, pos, vocab].
 */
export function logitDiff(logits: Float32Array, shape: readonly number[], pos: number, good: number, bad: number, row = 0): number {
  const [B, T, V] = shape;
  for (const [v, n, what] of [[row, B, 'batch row'], [pos, T, 'position'], [good, V, 'token'], [bad, V, 'token']] as const) {
    if (!Number.isInteger(v) || v < 0 || v >= n) throw new Error(`${what} ${v} is out of range 0 .. ${n - 1}`);
  }
  const base = (row * T + pos) * V;
  return logits[base + good] - logits[base + bad];
}
