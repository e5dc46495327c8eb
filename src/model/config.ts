/**
 * The one normalized model config every part of Patchbay reads. Field names follow
 * TransformerLens' `HookedTransformerConfig`; comments give GPT-2 small's values, then what the
 * other families use. `normalizeConfig` (in `normalize-config.ts`) builds it from a Hugging Face
 * `config.json`.
 */
export type Family = 'gpt2' | 'neox' | 'llama' | 'gemma3';

/** Attention of one layer: 'global' sees every earlier position, 'local' a sliding window. */
export type AttnType = 'global' | 'local';

export type RopeScaling = { type: 'linear'; factor: number } | { type: 'llama3'; factor: number; low_freq_factor: number; high_freq_factor: number; original_max_position_embeddings: number };

export interface ModelConfig {
  /** The Hugging Face `architectures[0]`, e.g. "GPT2LMHeadModel". */
  architecture: string;
  /** Which weight names the loader maps (the forward itself reads only the fields below). */
  family: Family;
  d_model: number; // 768
  n_layers: number; // 12
  n_heads: number; // 12
  d_head: number; // 64
  /** Key/value heads: fewer than n_heads for grouped-query attention (Llama-style). */
  n_key_value_heads: number; // 12
  d_mlp: number; // 3072 (n_inner, or 4 * d_model when null)
  n_ctx: number; // 1024 (n_positions)
  d_vocab: number; // 50257
  act_fn: 'gelu_new' | 'gelu' | 'silu' | 'relu'; // gelu_new; Pythia gelu; Llama silu
  normalization: 'LN' | 'RMS'; // LN; Llama RMS
  eps: number; // 1e-5 (layer_norm_epsilon; rms_norm_eps)
  positional: 'learned' | 'rotary'; // learned (W_pos); NeoX and Llama rotary
  /** Dims of each head that rotary embeddings rotate (0 with learned positions). */
  rotary_dim: number; // 0; Pythia d_head / 4; Llama d_head
  rotary_base: number; // 10000
  rope_scaling: RopeScaling | null;
  /** Attention and MLP both read resid_pre and add to it (GPT-NeoX / Pythia). */
  parallel_attn_mlp: boolean; // false
  /** act(x W_gate) * (x W_in) MLPs (SwiGLU). */
  gated_mlp: boolean; // false
  /** Unembedding is the token embedding transposed. */
  tied_embeddings: boolean; // true
  /**
   * Attention scores are q.k / attn_scale (TransformerLens' attn_scale). Absent: sqrt(d_head);
   * 1 for a GPT-2 with scale_attn_weights = false; Gemma sqrt(query_pre_attn_scalar).
   */
  attn_scale?: number; // absent (sqrt(64) = 8)
  /** Layer l's scores are divided by l + 1 as well (GPT-2's scale_attn_by_inverse_layer_idx). */
  scale_attn_by_inverse_layer_idx?: boolean; // absent (false)

  // Gemma 3 and Qwen3 (optional: absent means the GPT-2 value).
  /** Norms after attention and after the MLP as well (TransformerLens' ln1_post, ln2_post). */
  post_norms?: boolean; // false; Gemma 3 true
  /** RMSNorm over each head's queries and keys before rotary (attn.q_norm, attn.k_norm). */
  qk_norm?: boolean; // false; Gemma 3 and Qwen3 true
  /** hook_embed = W_E[token] * embed_scale. */
  embed_scale?: number; // 1; Gemma sqrt(d_model) in fp32
  /** Per layer, global or local (sliding window) attention; absent: all global. */
  attn_types?: AttnType[]; // Gemma 3: five local layers, then a global one
  /** Keys a local layer's query sees, itself included. */
  window_size?: number; // Gemma 3 270M 512
  /** Rotary base of the local layers (the global ones use rotary_base). */
  rotary_base_local?: number; // Gemma 3 10000 (rotary_base 1,000,000)
  /** logits = cap * tanh(logits / cap) after the unembedding (TransformerLens' output_logits_soft_cap). */
  output_logits_soft_cap?: number; // none; Gemma 2 30, Gemma 3 none
}

/** The factor layer `layer`'s attention scores are multiplied by: 1 / (attn_scale (l + 1 if by layer)). */
export function attentionScale(cfg: ModelConfig, layer: number): number {
  const base = cfg.attn_scale ?? Math.sqrt(cfg.d_head);
  return 1 / (base * (cfg.scale_attn_by_inverse_layer_idx ? layer + 1 : 1));
}

/** A GPT-2-style config with the given sizes (synthetic models in tests and benchmarks). */
export function gpt2LikeConfig(over: Partial<ModelConfig>): ModelConfig {
  const cfg: ModelConfig = {
    architecture: 'GPT2LMHeadModel',
    family: 'gpt2',
    d_model: 768,
    n_layers: 12,
    n_heads: 12,
    d_head: 64,
    n_key_value_heads: 12,
    d_mlp: 3072,
    n_ctx: 1024,
    d_vocab: 50257,
    act_fn: 'gelu_new',
    normalization: 'LN',
    eps: 1e-5,
    positional: 'learned',
    rotary_dim: 0,
    rotary_base: 10000,
    rope_scaling: null,
    parallel_attn_mlp: false,
    gated_mlp: false,
    tied_embeddings: true,
    ...over,
  };
  if (!over.d_head) cfg.d_head = cfg.d_model / cfg.n_heads;
  if (!over.n_key_value_heads) cfg.n_key_value_heads = cfg.n_heads;
  return cfg;
}
