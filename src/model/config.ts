/**
 * The one normalized model config every part of Patchbay reads. Field names follow
 * TransformerLens' `HookedTransformerConfig`; comments give GPT-2 small's values.
 * `normalizeConfig` (in `normalize-config.ts`) builds it from a Hugging Face `config.json`.
 */
export interface ModelConfig {
  /** The Hugging Face `architectures[0]`, e.g. "GPT2LMHeadModel". */
  architecture: string;
  /** Patchbay's family for the forward pass. */
  family: 'gpt2';
  d_model: number; // 768
  n_layers: number; // 12
  n_heads: number; // 12
  d_head: number; // 64
  d_mlp: number; // 3072 (n_inner, or 4 * d_model when null)
  n_ctx: number; // 1024 (n_positions)
  d_vocab: number; // 50257
  act_fn: 'gelu_new';
  eps: number; // 1e-5 (layer_norm_epsilon)
  /** Unembedding is the token embedding transposed. */
  tied_embeddings: boolean; // true
}
