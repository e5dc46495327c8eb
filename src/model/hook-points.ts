/**
 * The hook points of a model: TransformerLens names and shapes, in forward order, as a pure function
 * of the config and the input shape, so memory can be planned before anything is allocated.
 * `forward.ts` places a site at each of these names (a test checks the two agree).
 */
import type { ModelConfig } from './config.ts';

/**
 * The layers a run computes (TransformerLens' start_at_layer / stop_at_layer, resolved to
 * 0 .. n_layers): a run from a residual has no embedding hook points, a stopped one none after
 * its last layer.
 */
export interface LayerRange {
  /** The run starts from the residual stream entering this layer (no embedding). */
  startAtLayer?: number;
  /** The run stops before this layer (no ln_final, no unembedding). */
  stopAtLayer?: number;
}

export function hookShapes(cfg: ModelConfig, batch: number, pos: number, range: LayerRange = {}): Map<string, number[]> {
  const { d_model: C, n_heads: H, n_key_value_heads: Hkv, d_head: dh, d_mlp: M } = cfg;
  const B = batch;
  const T = pos;
  const s = new Map<string, number[]>();
  if (range.startAtLayer === undefined) {
    s.set('hook_embed', [B, T, C]);
    if (cfg.positional === 'learned') s.set('hook_pos_embed', [B, T, C]);
  }
  for (let l = range.startAtLayer ?? 0; l < (range.stopAtLayer ?? cfg.n_layers); l++) {
    const L = `blocks.${l}`;
    s.set(`${L}.hook_resid_pre`, [B, T, C]);
    s.set(`${L}.ln1.hook_scale`, [B, T, 1]);
    s.set(`${L}.ln1.hook_normalized`, [B, T, C]);
    s.set(`${L}.attn.hook_q`, [B, T, H, dh]);
    s.set(`${L}.attn.hook_k`, [B, T, Hkv, dh]);
    s.set(`${L}.attn.hook_v`, [B, T, Hkv, dh]);
    if (cfg.qk_norm) {
      s.set(`${L}.attn.q_norm.hook_scale`, [B, T, H, 1]);
      s.set(`${L}.attn.q_norm.hook_normalized`, [B, T, H, dh]);
      s.set(`${L}.attn.k_norm.hook_scale`, [B, T, Hkv, 1]);
      s.set(`${L}.attn.k_norm.hook_normalized`, [B, T, Hkv, dh]);
    }
    if (cfg.positional === 'rotary') {
      s.set(`${L}.attn.hook_rot_q`, [B, T, H, dh]);
      s.set(`${L}.attn.hook_rot_k`, [B, T, Hkv, dh]);
    }
    s.set(`${L}.attn.hook_attn_scores`, [B, H, T, T]);
    s.set(`${L}.attn.hook_pattern`, [B, H, T, T]);
    s.set(`${L}.attn.hook_z`, [B, T, H, dh]);
    s.set(`${L}.attn.hook_result`, [B, T, H, C]); // computed only when a run asks for it
    if (cfg.post_norms) {
      s.set(`${L}.ln1_post.hook_scale`, [B, T, 1]);
      s.set(`${L}.ln1_post.hook_normalized`, [B, T, C]);
    }
    s.set(`${L}.hook_attn_out`, [B, T, C]);
    if (!cfg.parallel_attn_mlp) s.set(`${L}.hook_resid_mid`, [B, T, C]);
    s.set(`${L}.ln2.hook_scale`, [B, T, 1]);
    s.set(`${L}.ln2.hook_normalized`, [B, T, C]);
    s.set(`${L}.mlp.hook_pre`, [B, T, M]);
    if (cfg.gated_mlp) s.set(`${L}.mlp.hook_pre_linear`, [B, T, M]);
    s.set(`${L}.mlp.hook_post`, [B, T, M]);
    if (cfg.post_norms) {
      s.set(`${L}.ln2_post.hook_scale`, [B, T, 1]);
      s.set(`${L}.ln2_post.hook_normalized`, [B, T, C]);
    }
    s.set(`${L}.hook_mlp_out`, [B, T, C]);
    s.set(`${L}.hook_resid_post`, [B, T, C]);
  }
  if (range.stopAtLayer !== undefined) return s;
  s.set('ln_final.hook_scale', [B, T, 1]);
  s.set('ln_final.hook_normalized', [B, T, C]);
  s.set('unembed.hook_in', [B, T, C]); // ln_final's output, gain and bias applied
  s.set('unembed.hook_out', [B, T, cfg.d_vocab]); // the logits
  return s;
}

/** Every hook point name of a model, in forward order. */
export function hookNames(cfg: ModelConfig): string[] {
  return [...hookShapes(cfg, 1, 1).keys()];
}
