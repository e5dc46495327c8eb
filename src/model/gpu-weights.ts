/**
 * GPT-2 weights on the GPU: one buffer per parameter, the token embedding split by rows when it
 * exceeds a binding. Built all-or-nothing: if any upload fails, every buffer made so far is freed.
 */
import type { Gpu } from '../gpu/device.ts';
import { WeightArena, type RowChunk } from '../gpu/chunked.ts';
import type { ModelConfig } from './config.ts';
import type { HostWeights } from './host-weights.ts';

export interface GpuLayer {
  ln1_w: GPUBuffer; // [d_model]
  ln1_b: GPUBuffer; // [d_model]
  W_Q: GPUBuffer; // [d_model, n_heads * d_head]
  b_Q: GPUBuffer; // [n_heads * d_head]
  W_K: GPUBuffer;
  b_K: GPUBuffer;
  W_V: GPUBuffer;
  b_V: GPUBuffer;
  W_O: GPUBuffer; // [n_heads * d_head, d_model]
  b_O: GPUBuffer; // [d_model]
  ln2_w: GPUBuffer;
  ln2_b: GPUBuffer;
  W_in: GPUBuffer; // [d_model, d_mlp]
  b_in: GPUBuffer; // [d_mlp]
  W_out: GPUBuffer; // [d_mlp, d_model]
  b_out: GPUBuffer; // [d_model]
}

export interface GpuWeights {
  W_E: RowChunk[]; // [d_vocab, d_model] in row chunks; the unembedding reads it transposed
  W_pos: RowChunk[]; // [n_ctx, d_model], one chunk
  layers: GpuLayer[];
  lnf_w: GPUBuffer; // [d_model]
  lnf_b: GPUBuffer; // [d_model]
  /** Total bytes of weight buffers. */
  bytes: number;
  destroy(): void;
}

export async function uploadWeights(gpu: Gpu, cfg: ModelConfig, host: HostWeights): Promise<GpuWeights> {
  const arena = new WeightArena(gpu);
  try {
    const weights = await gpu.guard('uploading weights', 0, () => {
      const up = (m: { data: Float32Array }, label: string) => arena.upload(m.data, label);
      const layers = host.layers.map((h, l): GpuLayer => ({
        ln1_w: up(h.ln1_w, `blocks.${l}.ln1.w`),
        ln1_b: up(h.ln1_b, `blocks.${l}.ln1.b`),
        W_Q: up(h.W_Q, `blocks.${l}.attn.W_Q`),
        b_Q: up(h.b_Q, `blocks.${l}.attn.b_Q`),
        W_K: up(h.W_K, `blocks.${l}.attn.W_K`),
        b_K: up(h.b_K, `blocks.${l}.attn.b_K`),
        W_V: up(h.W_V, `blocks.${l}.attn.W_V`),
        b_V: up(h.b_V, `blocks.${l}.attn.b_V`),
        W_O: up(h.W_O, `blocks.${l}.attn.W_O`),
        b_O: up(h.b_O, `blocks.${l}.attn.b_O`),
        ln2_w: up(h.ln2_w, `blocks.${l}.ln2.w`),
        ln2_b: up(h.ln2_b, `blocks.${l}.ln2.b`),
        W_in: up(h.W_in, `blocks.${l}.mlp.W_in`),
        b_in: up(h.b_in, `blocks.${l}.mlp.b_in`),
        W_out: up(h.W_out, `blocks.${l}.mlp.W_out`),
        b_out: up(h.b_out, `blocks.${l}.mlp.b_out`),
      }));
      return {
        W_E: arena.uploadRows(host.W_E.data, cfg.d_vocab, cfg.d_model, 'embed.W_E'),
        W_pos: arena.uploadRows(host.W_pos.data, cfg.n_ctx, cfg.d_model, 'pos_embed.W_pos'),
        layers,
        lnf_w: up(host.lnf_w, 'ln_final.w'),
        lnf_b: up(host.lnf_b, 'ln_final.b'),
      };
    });
    return { ...weights, bytes: arena.bytes, destroy: () => arena.destroy() };
  } catch (e) {
    arena.destroy();
    throw e;
  }
}
