/**
 * Float64 CPU reference for the attention-only trainer (`attn-only.ts`): the loss of a GPT-2-style
 * model without MLPs (LayerNorm with biased variance and eps inside the square root, learned
 * positions, causal softmax attention with a per-layer scale, tied or untied unembedding without
 * bias) and its gradient for every weight, composed from the engine's float64 references of
 * each piece (`normForward64` ..., `matmulForward64` ..., `attentionForward64` ..., `tokenLossCpu`),
 * each of which is checked by finite differences on its own. Weights and gradients are keyed by the forward-layout names of `gradBuffers`
 * ('embed.W_E', 'blocks.0.attn.W_Q', 'ln_final.w', ...); matrices are [in, out] (x W), W_U rows
 * [V, D] like W_E.
 *
 * loss = (1 / N) sum over the N targets (row, pos, y) of lse(logits[row, pos]) - logits[row, pos, y].
 */
import { attentionScale, type ModelConfig } from '../model/config.ts';
import type { AttnOnlyDims } from '../../shaders/attn-only-train.wgsl.ts';
import { attentionForward64, attnDPatternCpu, attnDQKCpu, attnDVCpu, attnSoftmaxBackwardCpu } from '../gpu/kernels/attention-backward.cpu.ts';
import { normForward64, normGainBackwardCpu, normInputGradCpu, normParamGradCpu, normScaleGradCpu } from '../gpu/kernels/layernorm-backward.cpu.ts';
import { biasGradCpu, matmulDwCpu, matmulDxCpu, matmulForward64 } from '../gpu/kernels/matmul-backward.cpu.ts';
import { tokenLossCpu } from '../gpu/kernels/token-loss.cpu.ts';

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

/** a = LayerNorm(x) w + b over R rows of D, with what the backward reads. */
function lnForward(x: Float64Array, w: ArrayLike<number>, b: ArrayLike<number>, R: number, D: number, eps: number) {
  const { n, scale } = normForward64(x, R, D, eps, false);
  const a = new Float64Array(R * D);
  for (let i = 0; i < R * D; i++) a[i] = n[i]! * w[i % D]! + b[i % D]!;
  return { n, scale, a };
}

/** dx += LayerNorm backward of da; dw += sum da n, db += sum da. */
function lnBackward(da: Float64Array, ln: { n: Float64Array; scale: Float64Array }, w: ArrayLike<number>, R: number, D: number, dx: Float64Array, dw: Float64Array, db: Float64Array): void {
  const dn = new Float64Array(R * D);
  const dscale = new Float64Array(R);
  normGainBackwardCpu(dn, da, w, R, D);
  normScaleGradCpu(dscale, dn, ln.n, ln.scale, R, D);
  normInputGradCpu(dx, dn, ln.n, ln.scale, dscale, R, D, false, true);
  normParamGradCpu(dw, db, da, ln.n, R, D, true);
}

/** For y = x W + b (W [K, N]): dW += x^T dy, db += sum dy, dx += dy W^T. */
function affineBackward(x: Float64Array, W: ArrayLike<number>, dy: Float64Array, R: number, K: number, N: number, dx: Float64Array, dW: Float64Array, db: Float64Array): void {
  matmulDwCpu(dW, x, dy, R, N, K, false, true);
  biasGradCpu(db, dy, R, N, true);
  matmulDxCpu(dx, dy, W, R, N, K, false, true);
}

/**
 * The loss at `ids` [B][T] and `targets`, and d loss / d weight for every weight of
 * `attnOnlyCpuShapes(s)` (the key bias's gradient is zero up to rounding: the softmax cancels it),
 * composed from the engine's float64 references of each piece (norms, matmuls, attention, loss).
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
    const q = matmulForward64(ln.a, W(`${p}attn.W_Q`), W(`${p}attn.b_Q`), R, HE, D); // [R, HE] = [B, T, H, E]
    const k = matmulForward64(ln.a, W(`${p}attn.W_K`), W(`${p}attn.b_K`), R, HE, D);
    const v = matmulForward64(ln.a, W(`${p}attn.W_V`), W(`${p}attn.b_V`), R, HE, D);
    const { pattern, z } = attentionForward64(q, k, v, B, T, H, E, H, { scale: s.scales[l]! }); // [B, H, T, T], [R, HE]
    const out = matmulForward64(z, W(`${p}attn.W_O`), W(`${p}attn.b_O`), R, D, HE);
    saved.push({ ln, q, k, v, pattern, z });
    const next = new Float64Array(R * D);
    for (let i = 0; i < R * D; i++) next[i] = x[i]! + out[i]!;
    x = next;
  }
  const lnf = lnForward(x, W('ln_final.w'), W('ln_final.b'), R, D, eps);
  // Logits only at the scored rows: [N, V] from their final-norm outputs [N, D].
  const N = targets.length;
  const af = new Float64Array(N * D);
  targets.forEach(({ row, pos }, i) => af.set(lnf.a.subarray((row * T + pos) * D, (row * T + pos + 1) * D), i * D));
  const logits = matmulForward64(af, WU, null, N, V, D, true);
  const dlogits = new Float64Array(N * V);
  const loss = tokenLossCpu(
    dlogits,
    logits,
    targets.map((x) => x.target),
    N,
    V,
  );
  matmulDwCpu(G(s.tied ? 'embed.W_E' : 'unembed.W_U'), dlogits, af, N, D, V, false, true); // d rows of W_U
  const dafRows = new Float64Array(N * D);
  matmulDxCpu(dafRows, dlogits, WU, N, V, D, true);
  const daf = new Float64Array(R * D); // d loss / d ln_final output
  targets.forEach(({ row, pos }, i) => {
    for (let d = 0; d < D; d++) daf[(row * T + pos) * D + d] += dafRows[i * D + d]!;
  });

  // ---- backward ----
  const dx = new Float64Array(R * D); // d loss / d residual stream
  lnBackward(daf, lnf, W('ln_final.w'), R, D, dx, G('ln_final.w'), G('ln_final.b'));
  for (let l = L - 1; l >= 0; l--) {
    const p = `blocks.${l}.`;
    const { ln, q, k, v, pattern, z } = saved[l]!;
    // x_{l+1} = x_l + z W_O + b_O: dx passes through and feeds z
    const dz = new Float64Array(R * HE);
    affineBackward(z, W(`${p}attn.W_O`), dx, R, HE, D, dz, G(`${p}attn.W_O`), G(`${p}attn.b_O`));
    const dpattern = new Float64Array(B * H * T * T);
    const dscores = new Float64Array(B * H * T * T);
    const dq = new Float64Array(R * HE);
    const dk = new Float64Array(R * HE);
    const dv = new Float64Array(R * HE);
    attnDPatternCpu(dpattern, dz, v, B, T, H, E);
    attnDVCpu(dv, pattern, dz, B, T, H, E);
    attnSoftmaxBackwardCpu(dscores, pattern, dpattern, B, T, H);
    attnDQKCpu(dq, dk, dscores, q, k, B, T, H, E, H, s.scales[l]!);
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
