/**
 * TransformerLens' weight processing: what `HookedTransformer.from_pretrained` does to a
 * checkpoint by default (`fold_ln`, `center_writing_weights`, `center_unembed`,
 * `fold_value_biases`), as a host-side transform of `HostWeights` before upload. Written from
 * TransformerLens' `ProcessWeights` (`weight_processing.py`), in this order:
 *
 *   fold_ln                 LayerNorm: each norm's bias goes into the biases of the matrices
 *                           that read it (b += ln.b @ W), its gain into their rows
 *                           (W[c, :] *= ln.w[c]), then those matrices are centred over d_model
 *                           (W_Q, W_K, W_V, W_in — not W_gate — and W_U), because a normalized
 *                           input has zero mean. ln_final's bias lands in b_U.
 *                           RMSNorm: the gain only (no bias, no centring).
 *                           The norms that remain are LNPre / RMSPre: gain 1, bias 0. A parallel
 *                           block (GPT-NeoX) folds ln1 into attention and ln2 into the MLP.
 *   center_writing_weights  LayerNorm only: every vector written to the residual stream has
 *                           zero mean over d_model (rows of W_E, W_pos, W_O, W_out; b_O, b_out).
 *                           Skipped under RMSNorm, which does not remove the mean.
 *   center_unembed          every family: each row of W_U [d_model, d_vocab] and b_U have zero
 *                           mean over the vocabulary (softmax is shift-invariant: log-probs
 *                           stay, logits move by a constant per position). Skipped under a
 *                           final logit soft-cap, which is not shift-invariant.
 *   fold_value_biases       b_O += Σ_heads b_V[h] @ W_O[h] (a key/value head's bias counted for
 *                           every query head that reads it), b_V = 0; b_O re-centred under
 *                           LayerNorm. Attention patterns sum to 1, so this moves a constant
 *                           from each head's output to the layer's.
 *
 * The per-head q/k norms and Gemma 3's post-norms are kept: they act after the matrices.
 *
 * After it the unembedding is untied from the embedding (W_U is no longer W_E^T) and has a
 * bias. Arithmetic is in float64, stored as float32.
 */
import type { ModelConfig } from './config.ts';
import type { HostLayer, HostMatrix, HostWeights } from './host-weights.ts';

/** How a model's weights are prepared on load: as the checkpoint has them, or as TransformerLens' `from_pretrained` leaves them. */
export type Processing = 'none' | 'transformer-lens';
export const PROCESSINGS: readonly Processing[] = ['none', 'transformer-lens'];

/** Throws naming the choices unless `p` is a known processing. */
export function checkProcessing(p: string): Processing {
  if (!(PROCESSINGS as readonly string[]).includes(p)) throw new Error(`unknown weight processing "${p}"; use ${PROCESSINGS.join(' or ')}`);
  return p as Processing;
}

/** A [rows, cols] row-major matrix in float64 for the arithmetic. */
interface M64 {
  d: Float64Array;
  rows: number;
  cols: number;
}

const m64 = (m: HostMatrix): M64 => ({ d: Float64Array.from(m.data), rows: m.shape[0], cols: m.shape.length > 1 ? m.shape[1] : 1 });
const back = (m: M64, shape: number[]): HostMatrix => ({ data: Float32Array.from(m.d), shape: shape.slice() });
const ones = (n: number): HostMatrix => ({ data: new Float32Array(n).fill(1), shape: [n] });
const zerosOf = (n: number): HostMatrix => ({ data: new Float32Array(n), shape: [n] });

/** b[j] += Σ_c lnB[c] · W[c, j]  (W [d_model, n]: the norm's bias pushed through the matrix). */
function foldBias(b: Float64Array, W: M64, lnB: Float32Array): void {
  for (let c = 0; c < W.rows; c++) for (let j = 0; j < W.cols; j++) b[j] += lnB[c] * W.d[c * W.cols + j];
}

/** W[c, :] *= lnW[c]. */
function scaleRows(W: M64, lnW: Float32Array): void {
  for (let c = 0; c < W.rows; c++) for (let j = 0; j < W.cols; j++) W.d[c * W.cols + j] *= lnW[c];
}

/** Each column minus its mean over rows (W [d_model, n]: centred over the normalized input). */
function centerColumns(W: M64): void {
  for (let j = 0; j < W.cols; j++) {
    let s = 0;
    for (let c = 0; c < W.rows; c++) s += W.d[c * W.cols + j];
    const mean = s / W.rows;
    for (let c = 0; c < W.rows; c++) W.d[c * W.cols + j] -= mean;
  }
}

/** Each row minus its mean over columns (a vector written to the residual stream per row). */
function centerRows(W: M64): void {
  for (let r = 0; r < W.rows; r++) {
    let s = 0;
    for (let j = 0; j < W.cols; j++) s += W.d[r * W.cols + j];
    const mean = s / W.cols;
    for (let j = 0; j < W.cols; j++) W.d[r * W.cols + j] -= mean;
  }
}

function centerVector(v: Float64Array): void {
  let s = 0;
  for (const x of v) s += x;
  const mean = s / v.length;
  for (let i = 0; i < v.length; i++) v[i] -= mean;
}

/** Transposes [rows, cols] to [cols, rows]. */
function transpose(W: M64): M64 {
  const d = new Float64Array(W.d.length);
  for (let r = 0; r < W.rows; r++) for (let c = 0; c < W.cols; c++) d[c * W.rows + r] = W.d[r * W.cols + c];
  return { d, rows: W.cols, cols: W.rows };
}

/** Returns new weights, processed as TransformerLens' `from_pretrained` defaults do; `w` is not changed. */
export function processWeights(cfg: ModelConfig, w: HostWeights): HostWeights {
  const ln = cfg.normalization === 'LN';
  const { d_model: C, n_heads: H, n_key_value_heads: Hkv, d_head: dh, d_vocab: V } = cfg;

  // --- fold_ln: per layer, ln1 into W_Q/W_K/W_V, ln2 into W_in/W_gate.
  const layers = w.layers.map((p): HostLayer => {
    const W_Q = m64(p.W_Q);
    const W_K = m64(p.W_K);
    const W_V = m64(p.W_V);
    const b_Q = Float64Array.from(p.b_Q.data);
    const b_K = Float64Array.from(p.b_K.data);
    const b_V = Float64Array.from(p.b_V.data);
    if (ln)
      for (const [W, b] of [
        [W_Q, b_Q],
        [W_K, b_K],
        [W_V, b_V],
      ] as const)
        foldBias(b, W, p.ln1_b!.data);
    for (const W of [W_Q, W_K, W_V]) scaleRows(W, p.ln1_w.data);
    if (ln) for (const W of [W_Q, W_K, W_V]) centerColumns(W);

    const W_in = m64(p.W_in);
    const b_in = Float64Array.from(p.b_in.data);
    const W_gate = p.W_gate ? m64(p.W_gate) : null;
    const b_gate = p.b_gate ? Float64Array.from(p.b_gate.data) : null;
    if (ln) {
      foldBias(b_in, W_in, p.ln2_b!.data);
      if (W_gate && b_gate) foldBias(b_gate, W_gate, p.ln2_b!.data);
    }
    scaleRows(W_in, p.ln2_w.data);
    if (W_gate) scaleRows(W_gate, p.ln2_w.data);
    if (ln) centerColumns(W_in); // TransformerLens centres W_in only, not W_gate

    const out: HostLayer = {
      ln1_w: ones(C),
      ...(ln ? { ln1_b: zerosOf(C) } : {}),
      W_Q: back(W_Q, p.W_Q.shape),
      b_Q: back({ d: b_Q, rows: b_Q.length, cols: 1 }, p.b_Q.shape),
      W_K: back(W_K, p.W_K.shape),
      b_K: back({ d: b_K, rows: b_K.length, cols: 1 }, p.b_K.shape),
      W_V: back(W_V, p.W_V.shape),
      b_V: back({ d: b_V, rows: b_V.length, cols: 1 }, p.b_V.shape),
      W_O: p.W_O,
      b_O: p.b_O,
      ln2_w: ones(C),
      ...(ln ? { ln2_b: zerosOf(C) } : {}),
      W_in: back(W_in, p.W_in.shape),
      b_in: back({ d: b_in, rows: b_in.length, cols: 1 }, p.b_in.shape),
      ...(W_gate ? { W_gate: back(W_gate, p.W_gate!.shape), b_gate: back({ d: b_gate!, rows: b_gate!.length, cols: 1 }, p.b_gate!.shape) } : {}),
      W_out: p.W_out,
      b_out: p.b_out,
      // Per-head q/k norms and the post-norms (Gemma 3, Qwen3) act after the matrices and are
      // kept as they are, as TransformerLens keeps them.
      ...(p.q_norm_w ? { q_norm_w: p.q_norm_w } : {}),
      ...(p.k_norm_w ? { k_norm_w: p.k_norm_w } : {}),
      ...(p.ln1_post_w ? { ln1_post_w: p.ln1_post_w } : {}),
      ...(p.ln2_post_w ? { ln2_post_w: p.ln2_post_w } : {}),
    };
    return out;
  });

  // ln_final into the unembedding, as W_U [d_model, d_vocab] (the rows we store are its transpose).
  const W_U = transpose(m64(w.W_U_rows ?? w.W_E)); // [C, V]
  const b_U = w.b_U ? Float64Array.from(w.b_U.data) : new Float64Array(V);
  if (ln) foldBias(b_U, W_U, w.lnf_b!.data);
  scaleRows(W_U, w.lnf_w.data);
  if (ln) centerColumns(W_U);

  // --- center_writing_weights (LayerNorm only).
  let W_E = w.W_E;
  let W_pos = w.W_pos;
  const writers = layers.map((p) => ({ W_O: m64(p.W_O), b_O: Float64Array.from(p.b_O.data), W_out: m64(p.W_out), b_out: Float64Array.from(p.b_out.data) }));
  if (ln) {
    const E = m64(w.W_E);
    centerRows(E);
    W_E = back(E, w.W_E.shape);
    if (w.W_pos) {
      const P = m64(w.W_pos);
      centerRows(P);
      W_pos = back(P, w.W_pos.shape);
    }
    for (const x of writers) {
      centerRows(x.W_O);
      centerVector(x.b_O);
      centerRows(x.W_out);
      centerVector(x.b_out);
    }
  }

  // --- center_unembed: each d_model row of W_U, and b_U, zero mean over the vocabulary. Not
  // under a final logit soft-cap, which is not shift-invariant (TransformerLens turns it off then).
  if (!cfg.output_logits_soft_cap) {
    centerRows(W_U);
    centerVector(b_U);
  }

  // --- fold_value_biases: b_O += Σ_h b_V[kv(h)] @ W_O[h]; b_V = 0.
  const group = H / Hkv; // query heads per key/value head
  layers.forEach((p, l) => {
    const x = writers[l];
    const bV = p.b_V.data; // [Hkv * dh]
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / group);
      for (let e = 0; e < dh; e++) {
        const v = bV[g * dh + e];
        if (v === 0) continue;
        const row = (h * dh + e) * C;
        for (let c = 0; c < C; c++) x.b_O[c] += v * x.W_O.d[row + c];
      }
    }
    if (ln) centerVector(x.b_O);
    p.b_V = zerosOf(bV.length);
    p.W_O = back(x.W_O, p.W_O.shape);
    p.b_O = back({ d: x.b_O, rows: C, cols: 1 }, p.b_O.shape);
    p.W_out = back(x.W_out, p.W_out.shape);
    p.b_out = back({ d: x.b_out, rows: C, cols: 1 }, p.b_out.shape);
  });

  return {
    W_E,
    ...(W_pos ? { W_pos } : {}),
    layers,
    lnf_w: ones(C),
    ...(ln ? { lnf_b: zerosOf(C) } : {}),
    W_U_rows: back(transpose(W_U), [V, C]),
    b_U: back({ d: b_U, rows: V, cols: 1 }, [V]),
  };
}
