/**
 * Float64 CPU reference for the attention-only trainer (`attn-only.ts`): the loss of a GPT-2-style
 * model without MLPs (LayerNorm with biased variance and eps inside the square root, learned
 * positions, causal softmax attention with a per-layer scale, tied or untied unembedding without
 * bias) and its gradient for every weight, written out loop by loop so it can be read against the
 * kernels. Weights and gradients are keyed by the forward-layout names of `gradBuffers`
 * ('embed.W_E', 'blocks.0.attn.W_Q', 'ln_final.w', ...); matrices are [in, out] (x W), W_U rows
 * [V, D] like W_E.
 *
 * loss = (1 / N) sum over the N targets (row, pos, y) of lse(logits[row, pos]) - logits[row, pos, y].
 */
import { attentionScale, type ModelConfig } from '../model/config.ts';
import type { AttnOnlyDims } from '../../shaders/attn-only-train.wgsl.ts';

/** The kernels' sizes (B, T, D, H, E = d_head, V, P = rows of W_pos, eps) without the target capacity. */
export interface AttnOnlyCpuShape extends Omit<AttnOnlyDims, 'CAP'> {
  /** Each layer's factor on q.k (its length is the number of layers). */
  scales: readonly number[];
  tied: boolean;
}

export interface CpuTarget {
  row: number;
  pos: number;
  target: number;
}

/** The reference's shape for `cfg` at B sequences of T tokens. */
export function attnOnlyCpuShape(cfg: ModelConfig, B: number, T: number): AttnOnlyCpuShape {
  return {
    B,
    T,
    D: cfg.d_model,
    H: cfg.n_heads,
    E: cfg.d_head,
    V: cfg.d_vocab,
    P: cfg.n_ctx,
    eps: cfg.eps,
    scales: Array.from({ length: cfg.n_layers }, (_, l) => attentionScale(cfg, l)),
    tied: cfg.tied_embeddings,
  };
}

/** The weights the reference reads, by forward-layout name, with their shapes. */
export function attnOnlyCpuShapes(s: AttnOnlyCpuShape): Map<string, number[]> {
  const { D, H, E, V, P } = s;
  const HE = H * E;
  const out = new Map<string, number[]>([
    ['embed.W_E', [V, D]],
    ['pos_embed.W_pos', [P, D]],
  ]);
  s.scales.forEach((_, l) => {
    const p = `blocks.${l}.`;
    out.set(`${p}ln1.w`, [D]);
    out.set(`${p}ln1.b`, [D]);
    for (const n of ['Q', 'K', 'V']) {
      out.set(`${p}attn.W_${n}`, [D, HE]);
      out.set(`${p}attn.b_${n}`, [HE]);
    }
    out.set(`${p}attn.W_O`, [HE, D]);
    out.set(`${p}attn.b_O`, [D]);
  });
  out.set('ln_final.w', [D]);
  out.set('ln_final.b', [D]);
  if (!s.tied) out.set('unembed.W_U', [V, D]);
  return out;
}

interface LnSaved {
  nrm: Float64Array; // [R, D]
  rstd: Float64Array; // [R]
}

/** a = LayerNorm(x) w + b over R rows of D. */
function lnForward(x: Float64Array, w: ArrayLike<number>, b: ArrayLike<number>, R: number, D: number, eps: number): LnSaved & { a: Float64Array } {
  const nrm = new Float64Array(R * D);
  const rstd = new Float64Array(R);
  const a = new Float64Array(R * D);
  for (let r = 0; r < R; r++) {
    let mean = 0;
    for (let d = 0; d < D; d++) mean += x[r * D + d]!;
    mean /= D;
    let v = 0;
    for (let d = 0; d < D; d++) v += (x[r * D + d]! - mean) ** 2;
    const rs = 1 / Math.sqrt(v / D + eps);
    rstd[r] = rs;
    for (let d = 0; d < D; d++) {
      const n = (x[r * D + d]! - mean) * rs;
      nrm[r * D + d] = n;
      a[r * D + d] = n * w[d]! + b[d]!;
    }
  }
  return { nrm, rstd, a };
}

/** dx += LayerNorm backward of da; dw += sum da nrm, db += sum da. */
function lnBackward(da: Float64Array, saved: LnSaved, w: ArrayLike<number>, R: number, D: number, dx: Float64Array, dw: Float64Array, db: Float64Array): void {
  for (let r = 0; r < R; r++) {
    let m1 = 0;
    let m2 = 0;
    for (let d = 0; d < D; d++) {
      const g = da[r * D + d]! * w[d]!;
      m1 += g;
      m2 += g * saved.nrm[r * D + d]!;
    }
    m1 /= D;
    m2 /= D;
    for (let d = 0; d < D; d++) {
      const o = r * D + d;
      dx[o] += saved.rstd[r]! * (da[o]! * w[d]! - m1 - saved.nrm[o]! * m2);
      dw[d] += da[o]! * saved.nrm[o]!;
      db[d] += da[o]!;
    }
  }
}

/** y[R, N] = x[R, K] W[K, N] + b[N]. */
function affine(x: Float64Array, W: ArrayLike<number>, b: ArrayLike<number>, R: number, K: number, N: number): Float64Array {
  const y = new Float64Array(R * N);
  for (let r = 0; r < R; r++)
    for (let n = 0; n < N; n++) {
      let s = b[n]!;
      for (let k = 0; k < K; k++) s += x[r * K + k]! * W[k * N + n]!;
      y[r * N + n] = s;
    }
  return y;
}

/** For y = x W + b: dW += x^T dy, db += sum dy, dx += dy W^T. */
function affineBackward(x: Float64Array, W: ArrayLike<number>, dy: Float64Array, R: number, K: number, N: number, dx: Float64Array, dW: Float64Array, db: Float64Array): void {
  for (let r = 0; r < R; r++)
    for (let n = 0; n < N; n++) {
      const g = dy[r * N + n]!;
      db[n] += g;
      for (let k = 0; k < K; k++) {
        dW[k * N + n] += x[r * K + k]! * g;
        dx[r * K + k] += g * W[k * N + n]!;
      }
    }
}

/**
 * The loss at `ids` [B][T] and `targets`, and d loss / d weight for every weight of
 * `attnOnlyCpuShapes(s)` (the key bias's gradient is zero up to rounding: the softmax cancels it).
 */
export function attnOnlyLossCpu(
  s: AttnOnlyCpuShape,
  weights: ReadonlyMap<string, ArrayLike<number>>,
  ids: readonly (readonly number[])[],
  targets: readonly CpuTarget[],
): { loss: number; grads: Map<string, Float64Array> } {
  const { B, T, D, H, E, V, eps } = s;
  const HE = H * E;
  const R = B * T;
  const L = s.scales.length;
  const W = (name: string) => {
    const t = weights.get(name);
    if (!t) throw new Error(`attnOnlyLossCpu: no weight ${name}`);
    return t;
  };
  const grads = new Map([...attnOnlyCpuShapes(s)].map(([n, shape]) => [n, new Float64Array(shape.reduce((a, b) => a * b, 1))]));
  const G = (name: string) => grads.get(name)!;
  const WE = W('embed.W_E');
  const Wpos = W('pos_embed.W_pos');
  const WU = s.tied ? WE : W('unembed.W_U'); // rows [V, D]

  // ---- forward ----
  let x = new Float64Array(R * D); // [R, D] the residual stream
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++) {
      const id = ids[b]![t]!;
      for (let d = 0; d < D; d++) x[(b * T + t) * D + d] = WE[id * D + d]! + Wpos[t * D + d]!;
    }
  const saved = [];
  for (let l = 0; l < L; l++) {
    const p = `blocks.${l}.`;
    const ln = lnForward(x, W(`${p}ln1.w`), W(`${p}ln1.b`), R, D, eps);
    const q = affine(ln.a, W(`${p}attn.W_Q`), W(`${p}attn.b_Q`), R, D, HE); // [R, HE]
    const k = affine(ln.a, W(`${p}attn.W_K`), W(`${p}attn.b_K`), R, D, HE);
    const v = affine(ln.a, W(`${p}attn.W_V`), W(`${p}attn.b_V`), R, D, HE);
    const pat = new Float64Array(B * H * T * T); // [B, H, T, T], zero above the diagonal
    const z = new Float64Array(R * HE); // [R, HE]
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++)
        for (let i = 0; i < T; i++) {
          const row = ((b * H + h) * T + i) * T;
          let m = -Infinity;
          for (let j = 0; j <= i; j++) {
            let dot = 0;
            for (let e = 0; e < E; e++) dot += q[(b * T + i) * HE + h * E + e]! * k[(b * T + j) * HE + h * E + e]!;
            pat[row + j] = dot * s.scales[l]!;
            m = Math.max(m, pat[row + j]!);
          }
          let sum = 0;
          for (let j = 0; j <= i; j++) sum += pat[row + j] = Math.exp(pat[row + j]! - m);
          for (let j = 0; j <= i; j++) {
            pat[row + j] /= sum;
            for (let e = 0; e < E; e++) z[(b * T + i) * HE + h * E + e] += pat[row + j]! * v[(b * T + j) * HE + h * E + e]!;
          }
        }
    const out = affine(z, W(`${p}attn.W_O`), W(`${p}attn.b_O`), R, HE, D);
    saved.push({ ln, q, k, v, pat, z });
    const next = new Float64Array(R * D);
    for (let i = 0; i < R * D; i++) next[i] = x[i]! + out[i]!;
    x = next;
  }
  const lnf = lnForward(x, W('ln_final.w'), W('ln_final.b'), R, D, eps);
  const N = targets.length;
  let loss = 0;
  const daf = new Float64Array(R * D); // d loss / d ln_final output
  for (const { row, pos, target } of targets) {
    const r = row * T + pos;
    const logits = new Float64Array(V);
    for (let u = 0; u < V; u++) {
      let dot = 0;
      for (let d = 0; d < D; d++) dot += lnf.a[r * D + d]! * WU[u * D + d]!;
      logits[u] = dot;
    }
    let m = -Infinity;
    for (const z of logits) m = Math.max(m, z);
    let sum = 0;
    for (const z of logits) sum += Math.exp(z - m);
    loss += (m + Math.log(sum) - logits[target]!) / N;
    // dlogits = (softmax - onehot) / N; the unembedding's rows and the final norm's output
    const dWU = G(s.tied ? 'embed.W_E' : 'unembed.W_U');
    for (let u = 0; u < V; u++) {
      const g = (Math.exp(logits[u]! - m) / sum - (u === target ? 1 : 0)) / N;
      for (let d = 0; d < D; d++) {
        dWU[u * D + d] += g * lnf.a[r * D + d]!;
        daf[r * D + d] += g * WU[u * D + d]!;
      }
    }
  }

  // ---- backward ----
  const dx = new Float64Array(R * D); // d loss / d residual stream
  lnBackward(daf, lnf, W('ln_final.w'), R, D, dx, G('ln_final.w'), G('ln_final.b'));
  for (let l = L - 1; l >= 0; l--) {
    const p = `blocks.${l}.`;
    const { ln, q, k, v, pat, z } = saved[l]!;
    // x_{l+1} = x_l + z W_O + b_O: dx passes through and feeds z
    const dz = new Float64Array(R * HE);
    affineBackward(z, W(`${p}attn.W_O`), dx, R, HE, D, dz, G(`${p}attn.W_O`), G(`${p}attn.b_O`));
    const dq = new Float64Array(R * HE);
    const dk = new Float64Array(R * HE);
    const dv = new Float64Array(R * HE);
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++)
        for (let i = 0; i < T; i++) {
          const row = ((b * H + h) * T + i) * T;
          const qi = (b * T + i) * HE + h * E;
          const dp = new Float64Array(i + 1);
          let pdp = 0;
          for (let j = 0; j <= i; j++) {
            const vj = (b * T + j) * HE + h * E;
            for (let e = 0; e < E; e++) {
              dp[j] += dz[qi + e]! * v[vj + e]!;
              dv[vj + e] += pat[row + j]! * dz[qi + e]!;
            }
            pdp += pat[row + j]! * dp[j]!;
          }
          for (let j = 0; j <= i; j++) {
            const dscore = pat[row + j]! * (dp[j]! - pdp) * s.scales[l]!;
            const kj = (b * T + j) * HE + h * E;
            for (let e = 0; e < E; e++) {
              dq[qi + e] += dscore * k[kj + e]!;
              dk[kj + e] += dscore * q[qi + e]!;
            }
          }
        }
    const da = new Float64Array(R * D);
    affineBackward(ln.a, W(`${p}attn.W_Q`), dq, R, D, HE, da, G(`${p}attn.W_Q`), G(`${p}attn.b_Q`));
    affineBackward(ln.a, W(`${p}attn.W_K`), dk, R, D, HE, da, G(`${p}attn.W_K`), G(`${p}attn.b_K`));
    affineBackward(ln.a, W(`${p}attn.W_V`), dv, R, D, HE, da, G(`${p}attn.W_V`), G(`${p}attn.b_V`));
    lnBackward(da, ln, W(`${p}ln1.w`), R, D, dx, G(`${p}ln1.w`), G(`${p}ln1.b`));
  }
  const dWE = G('embed.W_E');
  const dWpos = G('pos_embed.W_pos');
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++) {
      const id = ids[b]![t]!;
      for (let d = 0; d < D; d++) {
        dWE[id * D + d] += dx[(b * T + t) * D + d]!;
        dWpos[t * D + d] += dx[(b * T + t) * D + d]!;
      }
    }
  return { loss, grads };
}
