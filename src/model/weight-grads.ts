/**
 * Weight gradients on the GPU, one fp32 buffer per parameter in the layout the forward reads
 * (`gpu-weights.ts`: the same fields, so an optimizer pairs each weight buffer with its gradient),
 * listed by `tensors()` under TransformerLens-style names in that layout:
 *
 *   embed.W_E                 [d_vocab, d_model]    (row chunks, as the embedding is stored)
 *   pos_embed.W_pos           [n_ctx, d_model]      (learned positions)
 *   unembed.W_U               [d_vocab, d_model]    the unembedding's rows (W_U transposed); untied only
 *   blocks.L.ln1.w / ln1.b    [d_model]             (ln1.b, ln2.b, ln_final.b: LayerNorm only)
 *   blocks.L.attn.W_Q         [d_model, n_heads * d_head]           matrices are [in, out]
 *   blocks.L.attn.W_K / W_V   [d_model, n_key_value_heads * d_head]
 *   blocks.L.attn.W_O         [n_heads * d_head, d_model]
 *   blocks.L.attn.b_Q / b_K / b_V / b_O
 *   blocks.L.ln2.w / ln2.b
 *   blocks.L.mlp.W_in / b_in  [d_model, d_mlp]      (the up projection of a gated MLP)
 *   blocks.L.mlp.W_gate / b_gate                    (gated MLPs)
 *   blocks.L.mlp.W_out / b_out [d_mlp, d_model]
 *   blocks.L.attn.q_norm.w / k_norm.w  [d_head]  (Gemma 3, Qwen3)
 *   blocks.L.ln1_post.w / ln2_post.w   [d_model] (Gemma 3)
 *   ln_final.w / ln_final.b
 *
 * Gemma 3's norms scale by (1 + w); the forward holds 1 + w (folded at load, as TransformerLens
 * folds it), and since d(1 + w)/dw = 1 the folded gain's gradient is the checkpoint weight's too:
 * `toCheckpoint()` reports it under the checkpoint's name unchanged.
 *
 * A tied embedding has one gradient, `embed.W_E`, holding both the embedding's and the
 * unembedding's share. `read()` reads them back under TransformerLens' names and shapes, as
 * `model.weight(name)` reads the weights (W_Q [n_heads, d_model, d_head], unembed.W_U
 * [d_model, d_vocab]: for a tied model, the same combined gradient transposed); `toCheckpoint()`
 * under the checkpoint's own names and layouts (GPT-2's fused `c_attn`, GPT-NeoX's
 * head-interleaved `query_key_value`, `nn.Linear`'s [out, in]), so a gradient compares with
 * PyTorch's `param.grad` name for name.
 *
 * The store lives with the model (as PyTorch's `.grad` lives with the parameter): a backward
 * writes it, or adds to it with `accumulate`, until `release()`.
 */
import type { Gpu } from '../gpu/device.ts';
import type { RowChunk } from '../gpu/chunked.ts';
import { readBuffer } from '../gpu/tensor.ts';
import type { ModelConfig } from './config.ts';
import type { GpuWeights } from './gpu-weights.ts';
import { readTlWeight, tlWeightShapes } from './tl-weights.ts';

export interface LayerGrads {
  ln1_w: GPUBuffer;
  ln1_b: GPUBuffer | null;
  W_Q: GPUBuffer;
  b_Q: GPUBuffer;
  W_K: GPUBuffer;
  b_K: GPUBuffer;
  W_V: GPUBuffer;
  b_V: GPUBuffer;
  W_O: GPUBuffer;
  b_O: GPUBuffer;
  ln2_w: GPUBuffer;
  ln2_b: GPUBuffer | null;
  W_in: GPUBuffer;
  b_in: GPUBuffer;
  W_gate: GPUBuffer | null;
  b_gate: GPUBuffer | null;
  W_out: GPUBuffer;
  b_out: GPUBuffer;
  /** Gemma 3 / Qwen3: the per-head q/k norms' gains [d_head]; null for other families. */
  q_norm_w: GPUBuffer | null;
  k_norm_w: GPUBuffer | null;
  /** Gemma 3: the post-attention and post-MLP norms' gains [d_model]; null for other families. */
  ln1_post_w: GPUBuffer | null;
  ln2_post_w: GPUBuffer | null;
}

/** TransformerLens-style names of each layer field. */
const LAYER_NAMES: Record<keyof LayerGrads, string> = {
  ln1_w: 'ln1.w',
  ln1_b: 'ln1.b',
  W_Q: 'attn.W_Q',
  b_Q: 'attn.b_Q',
  W_K: 'attn.W_K',
  b_K: 'attn.b_K',
  W_V: 'attn.W_V',
  b_V: 'attn.b_V',
  W_O: 'attn.W_O',
  b_O: 'attn.b_O',
  ln2_w: 'ln2.w',
  ln2_b: 'ln2.b',
  W_in: 'mlp.W_in',
  b_in: 'mlp.b_in',
  W_gate: 'mlp.W_gate',
  b_gate: 'mlp.b_gate',
  W_out: 'mlp.W_out',
  b_out: 'mlp.b_out',
  q_norm_w: 'attn.q_norm.w',
  k_norm_w: 'attn.k_norm.w',
  ln1_post_w: 'ln1_post.w',
  ln2_post_w: 'ln2_post.w',
};

export interface GradTensor {
  name: string;
  shape: number[];
  /** Row chunks (one for every parameter but a chunked embedding / unembedding). */
  chunks: RowChunk[];
}

export class WeightGradients {
  readonly W_E: RowChunk[];
  readonly W_pos: RowChunk[] | null;
  /** Untied unembedding rows; null when tied (its share is in W_E). */
  readonly W_U: RowChunk[] | null;
  /** The unembedding's bias (weights processed as TransformerLens does have one), in W_U's row chunks; else null. */
  readonly b_U: RowChunk[] | null;
  readonly layers: LayerGrads[];
  readonly lnf_w: GPUBuffer;
  readonly lnf_b: GPUBuffer | null;
  readonly bytes: number;
  private readonly owned: GPUBuffer[] = [];
  private released = false;

  constructor(
    private readonly gpu: Gpu,
    readonly config: ModelConfig,
    w: GpuWeights,
  ) {
    const { d_model: C, n_heads: H, n_key_value_heads: Hkv, d_head: dh, d_mlp: M } = config;
    const buf = (floats: number, label: string) => {
      const b = gpu.pool.acquire(floats * 4, `grad ${label}`);
      this.owned.push(b);
      return b;
    };
    const chunksLike = (src: readonly RowChunk[], label: string) => src.map((c) => ({ buffer: buf(c.rows * C, `${label}[${c.row0}]`), row0: c.row0, rows: c.rows }));
    try {
      this.W_E = chunksLike(w.W_E, 'embed.W_E');
      this.W_pos = w.W_pos ? chunksLike(w.W_pos, 'pos_embed.W_pos') : null;
      this.W_U = w.W_U_rows === w.W_E ? null : chunksLike(w.W_U_rows, 'unembed.W_U');
      this.b_U = w.b_U ? w.b_U.map((c) => ({ buffer: buf(c.rows, `unembed.b_U[${c.row0}]`), row0: c.row0, rows: c.rows })) : null;
      const ln = config.normalization === 'LN';
      this.layers = w.layers.map((p, l) => ({
        ln1_w: buf(C, `blocks.${l}.ln1.w`),
        ln1_b: ln ? buf(C, `blocks.${l}.ln1.b`) : null,
        W_Q: buf(C * H * dh, `blocks.${l}.attn.W_Q`),
        b_Q: buf(H * dh, `blocks.${l}.attn.b_Q`),
        W_K: buf(C * Hkv * dh, `blocks.${l}.attn.W_K`),
        b_K: buf(Hkv * dh, `blocks.${l}.attn.b_K`),
        W_V: buf(C * Hkv * dh, `blocks.${l}.attn.W_V`),
        b_V: buf(Hkv * dh, `blocks.${l}.attn.b_V`),
        W_O: buf(H * dh * C, `blocks.${l}.attn.W_O`),
        b_O: buf(C, `blocks.${l}.attn.b_O`),
        ln2_w: buf(C, `blocks.${l}.ln2.w`),
        ln2_b: ln ? buf(C, `blocks.${l}.ln2.b`) : null,
        W_in: buf(C * M, `blocks.${l}.mlp.W_in`),
        b_in: buf(M, `blocks.${l}.mlp.b_in`),
        W_gate: p.W_gate ? buf(C * M, `blocks.${l}.mlp.W_gate`) : null,
        b_gate: p.W_gate ? buf(M, `blocks.${l}.mlp.b_gate`) : null,
        W_out: buf(M * C, `blocks.${l}.mlp.W_out`),
        b_out: buf(C, `blocks.${l}.mlp.b_out`),
        q_norm_w: config.qk_norm ? buf(dh, `blocks.${l}.attn.q_norm.w`) : null,
        k_norm_w: config.qk_norm ? buf(dh, `blocks.${l}.attn.k_norm.w`) : null,
        ln1_post_w: config.post_norms ? buf(C, `blocks.${l}.ln1_post.w`) : null,
        ln2_post_w: config.post_norms ? buf(C, `blocks.${l}.ln2_post.w`) : null,
      }));
      this.lnf_w = buf(C, 'ln_final.w');
      this.lnf_b = ln ? buf(C, 'ln_final.b') : null;
    } catch (e) {
      for (const b of this.owned) gpu.pool.release(b);
      throw e;
    }
    this.bytes = this.owned.reduce((n, b) => n + b.size, 0);
  }

  /** Bytes of fp32 gradients a model of this config needs (before pool size classes). */
  static floats(config: ModelConfig): number {
    const { d_model: C, n_heads: H, n_key_value_heads: Hkv, d_head: dh, d_mlp: M, d_vocab: V, n_layers: L } = config;
    const ln = config.normalization === 'LN' ? 2 : 1;
    const perLayer =
      2 * ln * C + C * H * dh * 2 + H * dh + 2 * (C * Hkv * dh + Hkv * dh) + C + (config.gated_mlp ? 2 : 1) * (C * M + M) + M * C + C + (config.qk_norm ? 2 * dh : 0) + (config.post_norms ? 2 * C : 0);
    // (+ V for an unembedding bias, which weights processed as TransformerLens does have)
    return V * C * (config.tied_embeddings ? 1 : 2) + V + (config.positional === 'learned' ? config.n_ctx * C : 0) + L * perLayer + ln * C;
  }

  /** Every gradient buffer, by TransformerLens-style name, in the layout the forward reads (see the header). */
  tensors(): GradTensor[] {
    this.assertLive();
    const { d_model: C, n_heads: H, n_key_value_heads: Hkv, d_head: dh, d_mlp: M, d_vocab: V, n_ctx } = this.config;
    const one = (buffer: GPUBuffer, shape: number[]): RowChunk[] => [{ buffer, row0: 0, rows: shape[0] }];
    const out: GradTensor[] = [{ name: 'embed.W_E', shape: [V, C], chunks: this.W_E }];
    if (this.W_pos) out.push({ name: 'pos_embed.W_pos', shape: [n_ctx, C], chunks: this.W_pos });
    const shapes: Record<keyof typeof LAYER_NAMES, number[]> = {
      ln1_w: [C],
      ln1_b: [C],
      W_Q: [C, H * dh],
      b_Q: [H * dh],
      W_K: [C, Hkv * dh],
      b_K: [Hkv * dh],
      W_V: [C, Hkv * dh],
      b_V: [Hkv * dh],
      W_O: [H * dh, C],
      b_O: [C],
      ln2_w: [C],
      ln2_b: [C],
      W_in: [C, M],
      b_in: [M],
      W_gate: [C, M],
      b_gate: [M],
      W_out: [M, C],
      b_out: [C],
      q_norm_w: [dh],
      k_norm_w: [dh],
      ln1_post_w: [C],
      ln2_post_w: [C],
    };
    this.layers.forEach((g, l) => {
      for (const key of Object.keys(LAYER_NAMES) as (keyof typeof LAYER_NAMES)[]) {
        const b = g[key];
        if (b) out.push({ name: `blocks.${l}.${LAYER_NAMES[key]}`, shape: shapes[key], chunks: one(b, shapes[key]) });
      }
    });
    out.push({ name: 'ln_final.w', shape: [C], chunks: one(this.lnf_w, [C]) });
    if (this.lnf_b) out.push({ name: 'ln_final.b', shape: [C], chunks: one(this.lnf_b, [C]) });
    if (this.W_U) out.push({ name: 'unembed.W_U', shape: [V, C], chunks: this.W_U });
    if (this.b_U) out.push({ name: 'unembed.b_U', shape: [V], chunks: this.b_U });
    return out;
  }

  /** Reads every gradient back under TransformerLens' state-dict names and shapes (`model.weight`'s). */
  async read(): Promise<Map<string, { data: Float32Array; shape: number[] }>> {
    this.assertLive();
    const asWeights: GpuWeights = {
      W_E: this.W_E,
      W_pos: this.W_pos,
      W_U_rows: this.W_U ?? this.W_E,
      rotary: null,
      rotaryLocal: null,
      layers: this.layers,
      lnf_w: this.lnf_w,
      lnf_b: this.lnf_b,
      b_U: this.b_U,
      host: { lnf_w: new Float32Array(0), lnf_b: null, b_U: null }, // not read
      f16: false,
      bytes: this.bytes,
      destroy: () => undefined,
    };
    const out = new Map<string, { data: Float32Array; shape: number[] }>();
    for (const name of tlWeightShapes(this.config).keys()) {
      if (name === 'unembed.b_U' && !this.b_U) continue; // no unembedding bias unless processed
      out.set(name, await readTlWeight(this.gpu, this.config, asWeights, name));
    }
    return out;
  }

  /** Reads every gradient back in the forward's layout, under `tensors()`' names. */
  async readForwardLayout(): Promise<Map<string, { data: Float32Array; shape: number[] }>> {
    const out = new Map<string, { data: Float32Array; shape: number[] }>();
    for (const t of this.tensors()) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n);
      const width = t.shape.length > 1 ? n / t.shape[0] : 1;
      for (const c of t.chunks) data.set(await readBuffer(this.gpu, c.buffer, 0, c.rows * width * 4), c.row0 * width);
      out.set(t.name, { data, shape: t.shape });
    }
    return out;
  }

  /**
   * Reads every gradient back under the checkpoint's names and layouts (what PyTorch's
   * `param.grad` holds for the Hugging Face model). `only`: keep just these names (a Llama-style
   * checkpoint without biases has no bias gradients to report).
   */
  async toCheckpoint(only?: Iterable<string>): Promise<Map<string, { data: Float32Array; shape: number[] }>> {
    const out = toCheckpointLayout(this.config, await this.readForwardLayout());
    if (!only) return out;
    const keep = new Set(only);
    return new Map([...out].filter(([n]) => keep.has(n)));
  }

  /** Frees every gradient buffer. */
  release(): void {
    if (this.released) return;
    this.released = true;
    for (const b of this.owned) this.gpu.pool.release(b);
    this.owned.length = 0;
  }

  get isReleased(): boolean {
    return this.released;
  }

  assertLive(): void {
    if (this.released) throw new Error('these weight gradients were released');
  }
}

type Named = Map<string, { data: Float32Array; shape: number[] }>;

function transpose(m: { data: Float32Array; shape: number[] }): { data: Float32Array; shape: number[] } {
  const [r, c] = m.shape;
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = m.data[i * c + j];
  return { data: out, shape: [c, r] };
}

/** [rows, a] and [rows, b] ... side by side as [rows, a + b + ...]. */
function concatColumns(parts: { data: Float32Array; shape: number[] }[]): { data: Float32Array; shape: number[] } {
  const rows = parts[0].shape.length > 1 ? parts[0].shape[0] : 1;
  const widths = parts.map((p) => (p.shape.length > 1 ? p.shape[1] : p.shape[0]));
  const total = widths.reduce((a, b) => a + b, 0);
  const out = new Float32Array(rows * total);
  for (let r = 0; r < rows; r++) {
    let c0 = 0;
    parts.forEach((p, i) => {
      out.set(p.data.subarray(r * widths[i], (r + 1) * widths[i]), r * total + c0);
      c0 += widths[i];
    });
  }
  return { data: out, shape: parts[0].shape.length > 1 ? [rows, total] : [total] };
}

/** The inverse of the loaders' mapping: `tensors()`' names and forward layouts -> checkpoint names and layouts. */
export function toCheckpointLayout(cfg: ModelConfig, g: Named): Named {
  const out: Named = new Map();
  const get = (n: string) => {
    const t = g.get(n);
    if (!t) throw new Error(`no gradient for ${n}`);
    return t;
  };
  const { n_layers, n_heads: H, d_head: dh } = cfg;
  if (cfg.family === 'gpt2') {
    // `transformer.` as save_pretrained writes GPT2LMHeadModel (the Hub's gpt2 drops it: strip it to compare).
    const p = 'transformer.';
    out.set(`${p}wte.weight`, get('embed.W_E'));
    out.set(`${p}wpe.weight`, get('pos_embed.W_pos'));
    for (let l = 0; l < n_layers; l++) {
      const L = `blocks.${l}.`;
      const h = `${p}h.${l}.`;
      out.set(`${h}ln_1.weight`, get(`${L}ln1.w`));
      out.set(`${h}ln_1.bias`, get(`${L}ln1.b`));
      out.set(`${h}attn.c_attn.weight`, concatColumns([get(`${L}attn.W_Q`), get(`${L}attn.W_K`), get(`${L}attn.W_V`)]));
      out.set(`${h}attn.c_attn.bias`, concatColumns([get(`${L}attn.b_Q`), get(`${L}attn.b_K`), get(`${L}attn.b_V`)]));
      out.set(`${h}attn.c_proj.weight`, get(`${L}attn.W_O`));
      out.set(`${h}attn.c_proj.bias`, get(`${L}attn.b_O`));
      out.set(`${h}ln_2.weight`, get(`${L}ln2.w`));
      out.set(`${h}ln_2.bias`, get(`${L}ln2.b`));
      out.set(`${h}mlp.c_fc.weight`, get(`${L}mlp.W_in`));
      out.set(`${h}mlp.c_fc.bias`, get(`${L}mlp.b_in`));
      out.set(`${h}mlp.c_proj.weight`, get(`${L}mlp.W_out`));
      out.set(`${h}mlp.c_proj.bias`, get(`${L}mlp.b_out`));
    }
    out.set(`${p}ln_f.weight`, get('ln_final.w'));
    out.set(`${p}ln_f.bias`, get('ln_final.b'));
    return out;
  }
  if (cfg.family === 'neox') {
    const p = 'gpt_neox.';
    // query_key_value rows interleave per head: h * 3 dh + part * dh + i.
    const interleave = (parts: { data: Float32Array; shape: number[] }[], bias: boolean) => {
      const rowsOf = parts.map((m) => (bias ? { data: m.data, shape: [m.data.length, 1] } : transpose(m))); // [H dh, cols]
      const cols = rowsOf[0].shape[1];
      const outData = new Float32Array(3 * H * dh * cols);
      for (let h = 0; h < H; h++) for (let part = 0; part < 3; part++) outData.set(rowsOf[part].data.subarray(h * dh * cols, (h + 1) * dh * cols), (h * 3 * dh + part * dh) * cols);
      return { data: outData, shape: bias ? [3 * H * dh] : [3 * H * dh, cols] };
    };
    out.set(`${p}embed_in.weight`, get('embed.W_E'));
    for (let l = 0; l < n_layers; l++) {
      const L = `blocks.${l}.`;
      const h = `${p}layers.${l}.`;
      out.set(`${h}input_layernorm.weight`, get(`${L}ln1.w`));
      out.set(`${h}input_layernorm.bias`, get(`${L}ln1.b`));
      out.set(`${h}attention.query_key_value.weight`, interleave([get(`${L}attn.W_Q`), get(`${L}attn.W_K`), get(`${L}attn.W_V`)], false));
      out.set(`${h}attention.query_key_value.bias`, interleave([get(`${L}attn.b_Q`), get(`${L}attn.b_K`), get(`${L}attn.b_V`)], true));
      out.set(`${h}attention.dense.weight`, transpose(get(`${L}attn.W_O`)));
      out.set(`${h}attention.dense.bias`, get(`${L}attn.b_O`));
      out.set(`${h}post_attention_layernorm.weight`, get(`${L}ln2.w`));
      out.set(`${h}post_attention_layernorm.bias`, get(`${L}ln2.b`));
      out.set(`${h}mlp.dense_h_to_4h.weight`, transpose(get(`${L}mlp.W_in`)));
      out.set(`${h}mlp.dense_h_to_4h.bias`, get(`${L}mlp.b_in`));
      out.set(`${h}mlp.dense_4h_to_h.weight`, transpose(get(`${L}mlp.W_out`)));
      out.set(`${h}mlp.dense_4h_to_h.bias`, get(`${L}mlp.b_out`));
    }
    out.set(`${p}final_layer_norm.weight`, get('ln_final.w'));
    out.set(`${p}final_layer_norm.bias`, get('ln_final.b'));
    if (!cfg.tied_embeddings) out.set('embed_out.weight', get('unembed.W_U'));
    return out;
  }
  if (cfg.family === 'gemma3') {
    // Gemma 3: nn.Linear [out, in], no biases; its norms' names (post_attention_layernorm is the
    // norm after attention, ln1_post; pre_feedforward_layernorm is ln2). The (1 + w) gains'
    // gradients are the checkpoint weights' (d(1 + w)/dw = 1).
    out.set('model.embed_tokens.weight', get('embed.W_E'));
    for (let l = 0; l < n_layers; l++) {
      const L = `blocks.${l}.`;
      const h = `model.layers.${l}.`;
      out.set(`${h}input_layernorm.weight`, get(`${L}ln1.w`));
      out.set(`${h}self_attn.q_proj.weight`, transpose(get(`${L}attn.W_Q`)));
      out.set(`${h}self_attn.k_proj.weight`, transpose(get(`${L}attn.W_K`)));
      out.set(`${h}self_attn.v_proj.weight`, transpose(get(`${L}attn.W_V`)));
      out.set(`${h}self_attn.o_proj.weight`, transpose(get(`${L}attn.W_O`)));
      out.set(`${h}self_attn.q_norm.weight`, get(`${L}attn.q_norm.w`));
      out.set(`${h}self_attn.k_norm.weight`, get(`${L}attn.k_norm.w`));
      out.set(`${h}post_attention_layernorm.weight`, get(`${L}ln1_post.w`));
      out.set(`${h}pre_feedforward_layernorm.weight`, get(`${L}ln2.w`));
      out.set(`${h}mlp.gate_proj.weight`, transpose(get(`${L}mlp.W_gate`)));
      out.set(`${h}mlp.up_proj.weight`, transpose(get(`${L}mlp.W_in`)));
      out.set(`${h}mlp.down_proj.weight`, transpose(get(`${L}mlp.W_out`)));
      out.set(`${h}post_feedforward_layernorm.weight`, get(`${L}ln2_post.w`));
    }
    out.set('model.norm.weight', get('ln_final.w'));
    if (!cfg.tied_embeddings) out.set('lm_head.weight', get('unembed.W_U'));
    return out;
  }
  // Llama-style: nn.Linear weights are [out, in]. Bias names are listed for every projection;
  // pass `only` (the checkpoint's names) to keep the ones the checkpoint has.
  out.set('model.embed_tokens.weight', get('embed.W_E'));
  for (let l = 0; l < n_layers; l++) {
    const L = `blocks.${l}.`;
    const h = `model.layers.${l}.`;
    out.set(`${h}input_layernorm.weight`, get(`${L}ln1.w`));
    for (const [proj, w, b] of [
      ['self_attn.q_proj', 'attn.W_Q', 'attn.b_Q'],
      ['self_attn.k_proj', 'attn.W_K', 'attn.b_K'],
      ['self_attn.v_proj', 'attn.W_V', 'attn.b_V'],
      ['self_attn.o_proj', 'attn.W_O', 'attn.b_O'],
      ['mlp.gate_proj', 'mlp.W_gate', 'mlp.b_gate'],
      ['mlp.up_proj', 'mlp.W_in', 'mlp.b_in'],
      ['mlp.down_proj', 'mlp.W_out', 'mlp.b_out'],
    ]) {
      out.set(`${h}${proj}.weight`, transpose(get(`${L}${w}`)));
      out.set(`${h}${proj}.bias`, get(`${L}${b}`));
    }
    out.set(`${h}post_attention_layernorm.weight`, get(`${L}ln2.w`));
    if (cfg.qk_norm) {
      // Qwen3's per-head q/k norms
      out.set(`${h}self_attn.q_norm.weight`, get(`${L}attn.q_norm.w`));
      out.set(`${h}self_attn.k_norm.weight`, get(`${L}attn.k_norm.w`));
    }
  }
  out.set('model.norm.weight', get('ln_final.w'));
  if (!cfg.tied_embeddings) out.set('lm_head.weight', get('unembed.W_U'));
  return out;
}
