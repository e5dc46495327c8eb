/**
 * Model parameters on the CPU, named as TransformerLens names them, fp32, in the layout the
 * kernels read: every matrix is `[in, out]` (x @ W). GPT-2's `Conv1D` already stores them so;
 * `nn.Linear` checkpoints (Llama, GPT-NeoX) are transposed on load. Biases a family does not
 * have are zeros, so every matmul has the same epilogue; norms without a bias (RMSNorm) have
 * none.
 */
export interface HostMatrix {
  data: Float32Array;
  shape: number[];
}

export interface HostLayer {
  ln1_w: HostMatrix; // [d_model]
  ln1_b?: HostMatrix; // [d_model] (LayerNorm only)
  W_Q: HostMatrix; // [d_model, n_heads * d_head]
  b_Q: HostMatrix; // [n_heads * d_head]
  W_K: HostMatrix; // [d_model, n_key_value_heads * d_head]
  b_K: HostMatrix;
  W_V: HostMatrix; // [d_model, n_key_value_heads * d_head]
  b_V: HostMatrix;
  W_O: HostMatrix; // [n_heads * d_head, d_model]
  b_O: HostMatrix; // [d_model]
  ln2_w: HostMatrix; // [d_model]
  ln2_b?: HostMatrix; // [d_model]
  W_in: HostMatrix; // [d_model, d_mlp] (the up projection in a gated MLP)
  b_in: HostMatrix; // [d_mlp]
  W_gate?: HostMatrix; // [d_model, d_mlp] (gated MLPs only)
  b_gate?: HostMatrix; // [d_mlp]
  W_out: HostMatrix; // [d_mlp, d_model]
  b_out: HostMatrix; // [d_model]
  q_norm_w?: HostMatrix; // [d_head] per-head RMSNorm of the queries (Gemma 3, Qwen3)
  k_norm_w?: HostMatrix; // [d_head] and of the keys
  ln1_post_w?: HostMatrix; // [d_model] RMSNorm of the attention output (Gemma 3)
  ln2_post_w?: HostMatrix; // [d_model] RMSNorm of the MLP output (Gemma 3)
}

export interface HostWeights {
  W_E: HostMatrix; // [d_vocab, d_model]
  W_pos?: HostMatrix; // [n_ctx, d_model] (learned positions only)
  layers: HostLayer[];
  lnf_w: HostMatrix; // [d_model]
  lnf_b?: HostMatrix; // [d_model]
  /** Untied unembedding, stored as rows [d_vocab, d_model] (W_U transposed, like W_E); absent when tied. */
  W_U_rows?: HostMatrix;
  /** Unembedding bias [d_vocab]: none in the supported checkpoints; TransformerLens' processing makes one. */
  b_U?: HostMatrix;
}

/** Every matrix of the weights, for size accounting. */
export function hostMatrices(w: HostWeights): HostMatrix[] {
  const top = [w.W_E, w.W_pos, w.lnf_w, w.lnf_b, w.W_U_rows, w.b_U];
  return [...top, ...w.layers.flatMap((l) => Object.values(l))].filter((m): m is HostMatrix => !!m);
}
