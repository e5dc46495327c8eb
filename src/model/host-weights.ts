/**
 * GPT-2 parameters on the CPU, named as TransformerLens names them, fp32, in the layout the
 * kernels read. Matrices are `[in, out]` (x @ W), which is how GPT-2's `Conv1D` already
 * stores them, so nothing is transposed on load.
 */
export interface HostMatrix {
  data: Float32Array;
  shape: number[];
}

export interface HostLayer {
  ln1_w: HostMatrix; // [d_model]
  ln1_b: HostMatrix; // [d_model]
  W_Q: HostMatrix; // [d_model, n_heads * d_head]  (columns of c_attn 0 .. d_model)
  b_Q: HostMatrix; // [n_heads * d_head]
  W_K: HostMatrix; // [d_model, n_heads * d_head]  (columns d_model .. 2 d_model)
  b_K: HostMatrix;
  W_V: HostMatrix; // [d_model, n_heads * d_head]  (columns 2 d_model .. 3 d_model)
  b_V: HostMatrix;
  W_O: HostMatrix; // [n_heads * d_head, d_model]  (attn.c_proj)
  b_O: HostMatrix; // [d_model]
  ln2_w: HostMatrix; // [d_model]
  ln2_b: HostMatrix; // [d_model]
  W_in: HostMatrix; // [d_model, d_mlp]  (mlp.c_fc)
  b_in: HostMatrix; // [d_mlp]
  W_out: HostMatrix; // [d_mlp, d_model]  (mlp.c_proj)
  b_out: HostMatrix; // [d_model]
}

export interface HostWeights {
  W_E: HostMatrix; // [d_vocab, d_model]  (wte; also the tied unembedding, transposed)
  W_pos: HostMatrix; // [n_ctx, d_model]  (wpe)
  layers: HostLayer[];
  lnf_w: HostMatrix; // [d_model]
  lnf_b: HostMatrix; // [d_model]
}
