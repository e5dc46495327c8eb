/**
 * Model weights on the GPU: one buffer per parameter, the token embedding (and an untied
 * unembedding) split by rows when it exceeds a binding, and the rotary cos/sin tables. Built
 * all-or-nothing: if any upload fails, every buffer made so far is freed.
 */
import type { Gpu } from '../gpu/device.ts';
import { WeightArena, type RowChunk } from '../gpu/chunked.ts';
import type { ModelConfig } from './config.ts';
import type { HostWeights } from './host-weights.ts';
import { rotaryTables } from './rotary-tables.ts';

export interface GpuLayer {
  ln1_w: GPUBuffer; // [d_model]
  ln1_b: GPUBuffer | null; // [d_model], null for RMSNorm
  W_Q: GPUBuffer; // [d_model, n_heads * d_head]
  b_Q: GPUBuffer; // [n_heads * d_head]
  W_K: GPUBuffer; // [d_model, n_key_value_heads * d_head]
  b_K: GPUBuffer;
  W_V: GPUBuffer;
  b_V: GPUBuffer;
  W_O: GPUBuffer; // [n_heads * d_head, d_model]
  b_O: GPUBuffer; // [d_model]
  ln2_w: GPUBuffer;
  ln2_b: GPUBuffer | null;
  W_in: GPUBuffer; // [d_model, d_mlp]
  b_in: GPUBuffer; // [d_mlp]
  W_gate: GPUBuffer | null; // [d_model, d_mlp], gated MLPs
  b_gate: GPUBuffer | null;
  W_out: GPUBuffer; // [d_mlp, d_model]
  b_out: GPUBuffer; // [d_model]
  q_norm_w: GPUBuffer | null; // [d_head], qk_norm models
  k_norm_w: GPUBuffer | null; // [d_head]
  ln1_post_w: GPUBuffer | null; // [d_model], post_norms models
  ln2_post_w: GPUBuffer | null; // [d_model]
}

export interface GpuWeights {
  W_E: RowChunk[]; // [d_vocab, d_model] in row chunks
  W_pos: RowChunk[] | null; // [n_ctx, d_model], learned positions only
  /** Unembedding rows [d_vocab, d_model]: W_E when tied, lm_head otherwise. */
  W_U_rows: RowChunk[];
  /** Unembedding bias [d_vocab], split like W_U_rows (one buffer per chunk); null when there is none. */
  b_U: RowChunk[] | null;
  /** Rotary tables [n_ctx, rotary_dim / 2], rotary models only. */
  rotary: { cos: GPUBuffer; sin: GPUBuffer } | null;
  /** The local (sliding-window) layers' tables, when their rotary base differs (Gemma 3). */
  rotaryLocal: { cos: GPUBuffer; sin: GPUBuffer } | null;
  layers: GpuLayer[];
  lnf_w: GPUBuffer; // [d_model]
  lnf_b: GPUBuffer | null; // [d_model]
  /**
   * CPU copies of the small parameters that analyses read (cache helpers, logit directions):
   * ln_final's gain and bias, and b_U.
   */
  host: { lnf_w: Float32Array; lnf_b: Float32Array | null; b_U: Float32Array | null };
  /** Weight matrices (not biases, norms or tables) are f16; kernels widen them to f32 as they read. */
  f16: boolean;
  /** Total bytes of weight buffers. */
  bytes: number;
  destroy(): void;
}

/** `f16`: keep the weight matrices in half precision (the device must have shader-f16). */
export async function uploadWeights(gpu: Gpu, cfg: ModelConfig, host: HostWeights, f16 = false): Promise<GpuWeights> {
  const arena = new WeightArena(gpu);
  try {
    const weights = await gpu.guard('uploading weights', 0, () => {
      const up = (m: { data: Float32Array }, label: string) => arena.upload(m.data, label);
      const opt = (m: { data: Float32Array } | undefined, label: string) => (m ? up(m, label) : null);
      // Matrices, f16 when asked.
      const mat = (m: { data: Float32Array }, label: string) => arena.upload(m.data, label, f16);
      const optMat = (m: { data: Float32Array } | undefined, label: string) => (m ? mat(m, label) : null);
      const layers = host.layers.map((h, l): GpuLayer => ({
        ln1_w: up(h.ln1_w, `blocks.${l}.ln1.w`),
        ln1_b: opt(h.ln1_b, `blocks.${l}.ln1.b`),
        W_Q: mat(h.W_Q, `blocks.${l}.attn.W_Q`),
        b_Q: up(h.b_Q, `blocks.${l}.attn.b_Q`),
        W_K: mat(h.W_K, `blocks.${l}.attn.W_K`),
        b_K: up(h.b_K, `blocks.${l}.attn.b_K`),
        W_V: mat(h.W_V, `blocks.${l}.attn.W_V`),
        b_V: up(h.b_V, `blocks.${l}.attn.b_V`),
        W_O: mat(h.W_O, `blocks.${l}.attn.W_O`),
        b_O: up(h.b_O, `blocks.${l}.attn.b_O`),
        ln2_w: up(h.ln2_w, `blocks.${l}.ln2.w`),
        ln2_b: opt(h.ln2_b, `blocks.${l}.ln2.b`),
        W_in: mat(h.W_in, `blocks.${l}.mlp.W_in`),
        b_in: up(h.b_in, `blocks.${l}.mlp.b_in`),
        W_gate: optMat(h.W_gate, `blocks.${l}.mlp.W_gate`),
        b_gate: opt(h.b_gate, `blocks.${l}.mlp.b_gate`),
        W_out: mat(h.W_out, `blocks.${l}.mlp.W_out`),
        b_out: up(h.b_out, `blocks.${l}.mlp.b_out`),
        q_norm_w: opt(h.q_norm_w, `blocks.${l}.attn.q_norm.w`),
        k_norm_w: opt(h.k_norm_w, `blocks.${l}.attn.k_norm.w`),
        ln1_post_w: opt(h.ln1_post_w, `blocks.${l}.ln1_post.w`),
        ln2_post_w: opt(h.ln2_post_w, `blocks.${l}.ln2_post.w`),
      }));
      const W_E = arena.uploadRows(host.W_E.data, cfg.d_vocab, cfg.d_model, 'embed.W_E', f16);
      let rotary = null;
      let rotaryLocal = null;
      if (cfg.positional === 'rotary') {
        const t = rotaryTables(cfg);
        rotary = { cos: arena.upload(t.cos, 'rotary cos'), sin: arena.upload(t.sin, 'rotary sin') };
        if (cfg.attn_types?.includes('local') && cfg.rotary_base_local !== undefined && cfg.rotary_base_local !== cfg.rotary_base) {
          const tl = rotaryTables({ ...cfg, rotary_base: cfg.rotary_base_local, rope_scaling: null });
          rotaryLocal = { cos: arena.upload(tl.cos, 'rotary cos (local layers)'), sin: arena.upload(tl.sin, 'rotary sin (local layers)') };
        }
      }
      const W_U_rows = host.W_U_rows ? arena.uploadRows(host.W_U_rows.data, cfg.d_vocab, cfg.d_model, 'unembed.W_U', f16) : W_E;
      // The bias in the same row chunks as W_U, so each unembedding product binds its own part.
      const b_U = host.b_U ? W_U_rows.map((c) => ({ ...c, buffer: up({ data: host.b_U!.data.subarray(c.row0, c.row0 + c.rows) }, `unembed.b_U[${c.row0}..)`) })) : null;
      return {
        W_E,
        W_pos: host.W_pos ? arena.uploadRows(host.W_pos.data, cfg.n_ctx, cfg.d_model, 'pos_embed.W_pos', f16) : null,
        W_U_rows,
        b_U,
        rotary,
        rotaryLocal,
        layers,
        lnf_w: up(host.lnf_w, 'ln_final.w'),
        lnf_b: opt(host.lnf_b, 'ln_final.b'),
      };
    });
    const small = { lnf_w: host.lnf_w.data.slice(), lnf_b: host.lnf_b?.data.slice() ?? null, b_U: host.b_U?.data.slice() ?? null };
    return { ...weights, host: small, f16, bytes: arena.bytes, destroy: () => arena.destroy() };
  } catch (e) {
    arena.destroy();
    throw e;
  }
}
