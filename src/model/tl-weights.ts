/**
 * The weights under TransformerLens' names and shapes, read back from the GPU.
 *
 * Names are TL's state-dict keys for raw weights (no processing): `embed.W_E` [d_vocab, d_model],
 * `pos_embed.W_pos` [n_ctx, d_model] (learned positions), per layer `blocks.L.ln1.w` / `.b`,
 * `attn.W_Q` [n_heads, d_model, d_head], `attn.b_Q` [n_heads, d_head], `attn.W_K` / `W_V` / `b_K` /
 * `b_V` (with grouped-query attention TL stores `attn._W_K` / `_W_V` [n_key_value_heads, d_model,
 * d_head] and `_b_K` / `_b_V`, and its `W_K` / `W_V` properties repeat each key/value head for
 * the query heads that share it: both names are readable here, the stored ones are the state
 * dict's), `attn.W_O` [n_heads, d_head, d_model], `attn.b_O` [d_model], `ln2.w` / `.b`, `mlp.W_in`
 * [d_model, d_mlp], `mlp.W_gate` (gated MLPs), `mlp.b_in` [d_mlp], `mlp.W_out` [d_mlp, d_model],
 * `mlp.b_out`, then `ln_final.w` / `.b`, `unembed.W_U` [d_model, d_vocab] and `unembed.b_U`
 * [d_vocab] (zeros unless the weights were processed: these families have no unembedding bias,
 * and TL has one; processing folds ln_final's bias into it). RMSNorm has no `.b`. Qwen3 and Gemma 3
 * add `blocks.L.attn.q_norm.w` / `k_norm.w` [d_head], Gemma 3 `blocks.L.ln1_post.w` / `ln2_post.w`
 * [d_model]; Gemma's norm gains are 1 + the checkpoint's w, as TL's conversion folds them.
 * Biases a family lacks are zeros, as in TL.
 *
 * The GPU holds matrices as [in, out] (x @ W), heads contiguous along `out`: W_Q [d_model,
 * n_heads * d_head] splits into TL's per-head [d_model, d_head] blocks; W_O [n_heads * d_head,
 * d_model] is TL's [n_heads, d_head, d_model] as it lies. F16 weights are widened.
 */
import type { Gpu } from '../gpu/device.ts';
import type { RowChunk } from '../gpu/chunked.ts';
import { readBuffer } from '../gpu/tensor.ts';
import { similarNames } from '../util/similar-names.ts';
import type { ModelConfig } from './config.ts';
import type { GpuLayer, GpuWeights } from './gpu-weights.ts';
import { f16ToNumber } from './safetensors.ts';

/** A weight on the CPU, row-major, in TransformerLens' shape. */
export interface WeightTensor {
  data: Float32Array;
  shape: number[];
}

/** One layer's weights as TransformerLens' `model.blocks[L]` has them; each read on access. */
export interface BlockWeights {
  ln1: { readonly w: Promise<WeightTensor>; readonly b?: Promise<WeightTensor> };
  ln2: { readonly w: Promise<WeightTensor>; readonly b?: Promise<WeightTensor> };
  attn: {
    readonly W_Q: Promise<WeightTensor>;
    readonly W_K: Promise<WeightTensor>;
    readonly W_V: Promise<WeightTensor>;
    readonly W_O: Promise<WeightTensor>;
    readonly b_Q: Promise<WeightTensor>;
    readonly b_K: Promise<WeightTensor>;
    readonly b_V: Promise<WeightTensor>;
    readonly b_O: Promise<WeightTensor>;
    /** Grouped-query attention: the stored key/value heads. */
    readonly _W_K?: Promise<WeightTensor>;
    readonly _W_V?: Promise<WeightTensor>;
    readonly _b_K?: Promise<WeightTensor>;
    readonly _b_V?: Promise<WeightTensor>;
  };
  mlp: {
    readonly W_in: Promise<WeightTensor>;
    readonly b_in: Promise<WeightTensor>;
    readonly W_out: Promise<WeightTensor>;
    readonly b_out: Promise<WeightTensor>;
    readonly W_gate?: Promise<WeightTensor>;
  };
}

const gqa = (cfg: ModelConfig) => cfg.n_key_value_heads !== cfg.n_heads;

/** TransformerLens' state dict of raw weights: names and shapes, in its order. */
export function tlWeightShapes(cfg: ModelConfig): Map<string, number[]> {
  const { d_model: C, n_heads: H, n_key_value_heads: Hkv, d_head: dh, d_mlp: M, d_vocab: V } = cfg;
  const ln = cfg.normalization === 'LN';
  const s = new Map<string, number[]>();
  s.set('embed.W_E', [V, C]);
  if (cfg.positional === 'learned') s.set('pos_embed.W_pos', [cfg.n_ctx, C]);
  const kv = gqa(cfg) ? '_' : '';
  for (let l = 0; l < cfg.n_layers; l++) {
    const L = `blocks.${l}`;
    s.set(`${L}.ln1.w`, [C]);
    if (ln) s.set(`${L}.ln1.b`, [C]);
    s.set(`${L}.ln2.w`, [C]);
    if (ln) s.set(`${L}.ln2.b`, [C]);
    s.set(`${L}.attn.W_Q`, [H, C, dh]);
    s.set(`${L}.attn.${kv}W_K`, [Hkv, C, dh]);
    s.set(`${L}.attn.${kv}W_V`, [Hkv, C, dh]);
    s.set(`${L}.attn.W_O`, [H, dh, C]);
    s.set(`${L}.attn.b_Q`, [H, dh]);
    s.set(`${L}.attn.${kv}b_K`, [Hkv, dh]);
    s.set(`${L}.attn.${kv}b_V`, [Hkv, dh]);
    s.set(`${L}.attn.b_O`, [C]);
    s.set(`${L}.mlp.W_in`, [C, M]);
    if (cfg.gated_mlp) s.set(`${L}.mlp.W_gate`, [C, M]);
    s.set(`${L}.mlp.b_in`, [M]);
    s.set(`${L}.mlp.W_out`, [M, C]);
    s.set(`${L}.mlp.b_out`, [C]);
    if (cfg.qk_norm) {
      s.set(`${L}.attn.q_norm.w`, [dh]);
      s.set(`${L}.attn.k_norm.w`, [dh]);
    }
    if (cfg.post_norms) {
      s.set(`${L}.ln1_post.w`, [C]);
      s.set(`${L}.ln2_post.w`, [C]);
    }
  }
  s.set('ln_final.w', [C]);
  if (ln) s.set('ln_final.b', [C]);
  s.set('unembed.W_U', [C, V]);
  s.set('unembed.b_U', [V]);
  return s;
}

/** Every name `readTlWeight` takes: the state dict's, and with grouped-query attention TL's expanded W_K / W_V / b_K / b_V. */
export function tlWeightNames(cfg: ModelConfig): string[] {
  const names = [...tlWeightShapes(cfg).keys()];
  if (!gqa(cfg)) return names;
  return names.flatMap((n) => (/\.attn\._[Wb]_[KV]$/.test(n) ? [n, n.replace('._', '.')] : [n]));
}

/** `n` floats of a weight buffer (f16 when the model keeps matrices in half precision). */
async function readFloats(gpu: Gpu, buffer: GPUBuffer, n: number, f16: boolean): Promise<Float32Array> {
  if (!f16) return (await readBuffer(gpu, buffer, 0, n * 4)).subarray(0, n);
  const raw = await readBuffer(gpu, buffer, 0, n * 2);
  return Float32Array.from(new Uint16Array(raw.buffer, 0, n), (h) => f16ToNumber(h));
}

async function readRows(gpu: Gpu, chunks: RowChunk[], cols: number, f16: boolean): Promise<Float32Array> {
  const out = new Float32Array(chunks.reduce((n, c) => n + c.rows, 0) * cols);
  for (const c of chunks) out.set(await readFloats(gpu, c.buffer, c.rows * cols, f16), c.row0 * cols);
  return out;
}

/** [rows, heads * dh] (heads contiguous along columns) -> [heads, rows, dh]. */
function splitHeads(m: Float32Array, rows: number, heads: number, dh: number): Float32Array {
  const out = new Float32Array(m.length);
  for (let h = 0; h < heads; h++) for (let r = 0; r < rows; r++) for (let j = 0; j < dh; j++) out[(h * rows + r) * dh + j] = m[r * heads * dh + h * dh + j];
  return out;
}

/** [kv heads, ...rest] -> [n_heads, ...rest]: query head h uses key/value head h / (n_heads / kv heads), as TL's repeat_interleave. */
function repeatHeads(m: Float32Array, Hkv: number, H: number): Float32Array {
  const per = m.length / Hkv;
  const out = new Float32Array(H * per);
  for (let h = 0; h < H; h++) out.set(m.subarray(Math.floor(h / (H / Hkv)) * per, (Math.floor(h / (H / Hkv)) + 1) * per), h * per);
  return out;
}

/** One weight by TransformerLens' name, from the GPU. */
export async function readTlWeight(gpu: Gpu, cfg: ModelConfig, w: GpuWeights, name: string): Promise<WeightTensor> {
  const { d_model: C, n_heads: H, n_key_value_heads: Hkv, d_head: dh, d_mlp: M, d_vocab: V, n_layers } = cfg;
  const f32 = async (b: GPUBuffer | null, n: number) => (b ? readFloats(gpu, b, n, false) : new Float32Array(n));
  const mat = (b: GPUBuffer, n: number) => readFloats(gpu, b, n, w.f16);
  const unknown = () => new Error(`unknown weight "${name}"; did you mean ${similarNames(name, tlWeightNames(cfg)).join(', ')}?`);
  if (!tlWeightNames(cfg).includes(name)) throw unknown();

  switch (name) {
    case 'embed.W_E':
      return { data: await readRows(gpu, w.W_E, C, w.f16), shape: [V, C] };
    case 'pos_embed.W_pos':
      return { data: await readRows(gpu, w.W_pos!, C, w.f16), shape: [cfg.n_ctx, C] };
    case 'ln_final.w':
      return { data: await f32(w.lnf_w, C), shape: [C] };
    case 'ln_final.b':
      return { data: await f32(w.lnf_b, C), shape: [C] };
    case 'unembed.W_U': {
      const rows = await readRows(gpu, w.W_U_rows, C, w.f16); // [V, C]
      const out = new Float32Array(C * V);
      for (let v = 0; v < V; v++) for (let c = 0; c < C; c++) out[c * V + v] = rows[v * C + c];
      return { data: out, shape: [C, V] };
    }
    case 'unembed.b_U':
      // Zeros, as in TL, unless TransformerLens' processing made one (ln_final's bias folded in, centred).
      return { data: w.b_U ? await readRows(gpu, w.b_U, 1, false) : new Float32Array(V), shape: [V] };
  }
  // Gemma 3 / Qwen3's extra norms (their gains as the forward holds them: Gemma's 1 + w, as TL folds it).
  const extra = /^blocks\.(\d+)\.(attn\.q_norm|attn\.k_norm|ln1_post|ln2_post)\.w$/.exec(name);
  if (extra) {
    const p: GpuLayer = w.layers[Number(extra[1])];
    const field = ({ 'attn.q_norm': 'q_norm_w', 'attn.k_norm': 'k_norm_w', ln1_post: 'ln1_post_w', ln2_post: 'ln2_post_w' } as const)[extra[2] as 'attn.q_norm'];
    const n = extra[2].startsWith('attn.') ? dh : C;
    return { data: await f32(p[field], n), shape: [n] };
  }
  const m = /^blocks\.(\d+)\.(ln1|ln2|attn|mlp)\.(_?)(\w+)$/.exec(name);
  if (!m || Number(m[1]) >= n_layers) throw unknown();
  const p: GpuLayer = w.layers[Number(m[1])];
  const [part, stored, key] = [m[2], m[3] === '_', m[4]];
  // TL's expanded W_K / W_V / b_K / b_V of a grouped-query model: the stored heads, repeated.
  const expand = gqa(cfg) && !stored && /^[Wb]_[KV]$/.test(key);
  const heads = (t: WeightTensor): WeightTensor => (expand ? { data: repeatHeads(t.data, Hkv, H), shape: [H, ...t.shape.slice(1)] } : t);
  switch (`${part}.${key}`) {
    case 'ln1.w':
      return { data: await f32(p.ln1_w, C), shape: [C] };
    case 'ln1.b':
      return { data: await f32(p.ln1_b, C), shape: [C] };
    case 'ln2.w':
      return { data: await f32(p.ln2_w, C), shape: [C] };
    case 'ln2.b':
      return { data: await f32(p.ln2_b, C), shape: [C] };
    case 'attn.W_Q':
      return { data: splitHeads(await mat(p.W_Q, C * H * dh), C, H, dh), shape: [H, C, dh] };
    case 'attn.W_K':
      return heads({ data: splitHeads(await mat(p.W_K, C * Hkv * dh), C, Hkv, dh), shape: [Hkv, C, dh] });
    case 'attn.W_V':
      return heads({ data: splitHeads(await mat(p.W_V, C * Hkv * dh), C, Hkv, dh), shape: [Hkv, C, dh] });
    case 'attn.W_O':
      return { data: await mat(p.W_O, H * dh * C), shape: [H, dh, C] };
    case 'attn.b_Q':
      return { data: await f32(p.b_Q, H * dh), shape: [H, dh] };
    case 'attn.b_K':
      return heads({ data: await f32(p.b_K, Hkv * dh), shape: [Hkv, dh] });
    case 'attn.b_V':
      return heads({ data: await f32(p.b_V, Hkv * dh), shape: [Hkv, dh] });
    case 'attn.b_O':
      return { data: await f32(p.b_O, C), shape: [C] };
    case 'mlp.W_in':
      return { data: await mat(p.W_in, C * M), shape: [C, M] };
    case 'mlp.W_gate':
      return { data: await mat(p.W_gate!, C * M), shape: [C, M] };
    case 'mlp.b_in':
      return { data: await f32(p.b_in, M), shape: [M] };
    case 'mlp.W_out':
      return { data: await mat(p.W_out, M * C), shape: [M, C] };
    case 'mlp.b_out':
      return { data: await f32(p.b_out, C), shape: [C] };
  }
  throw unknown();
}

/** `per layer` weights stacked: [n_layers, ...] (TransformerLens' model-level W_Q, b_in, ...). */
export async function stackLayers(cfg: ModelConfig, read: (name: string) => Promise<WeightTensor>, suffix: string): Promise<WeightTensor> {
  const parts = await Promise.all(Array.from({ length: cfg.n_layers }, (_, l) => read(`blocks.${l}.${suffix}`)));
  const data = new Float32Array(parts.reduce((n, p) => n + p.data.length, 0));
  parts.forEach((p, l) => data.set(p.data, l * p.data.length));
  return { data, shape: [cfg.n_layers, ...parts[0].shape] };
}

/** `model.blocks[l]`: objects whose properties read that layer's weights on access. */
export function blockWeights(cfg: ModelConfig, read: (name: string) => Promise<WeightTensor>): BlockWeights[] {
  const names = tlWeightNames(cfg);
  return Array.from({ length: cfg.n_layers }, (_, l) => {
    const group = (part: string) => {
      const o = {};
      const prefix = `blocks.${l}.${part}.`;
      for (const n of names.filter((x) => x.startsWith(prefix))) {
        Object.defineProperty(o, n.slice(prefix.length), { get: () => read(n), enumerable: true });
      }
      return o;
    };
    return { ln1: group('ln1'), ln2: group('ln2'), attn: group('attn'), mlp: group('mlp') } as BlockWeights;
  });
}
