/**
 * CPU references for `sae-backward.ts` in float64, the GPU ops' argument order (outputs, inputs,
 * dims), plus the float64 SAE forward the finite-difference tests differentiate.
 */
import type { SaeActivationKind } from './sae.ts';

type Out = Float32Array | Float64Array;

/** dActs [rows, d_sae] = g [rows, d_out] W_dec^T (W_dec [d_sae, d_out]). */
export function saeDecodeBackwardCpu(dActs: Out, g: ArrayLike<number>, wDec: ArrayLike<number>, rows: number, dSae: number, dOut: number): void {
  for (let r = 0; r < rows; r++)
    for (let f = 0; f < dSae; f++) {
      let s = 0;
      for (let j = 0; j < dOut; j++) s += g[r * dOut + j] * wDec[f * dOut + j];
      dActs[r * dSae + f] = s;
    }
}

/** dPre = dActs where ref != 0, else 0. */
export function saeMaskBackwardCpu(dPre: Out, dActs: ArrayLike<number>, ref: ArrayLike<number>, n: number): void {
  for (let i = 0; i < n; i++) dPre[i] = ref[i] !== 0 ? dActs[i] : 0;
}

/** dx [rows, d_in] (+)= coef d [rows, cols] W^T, W [d_in, cols]. */
export function saeEncodeBackwardCpu(dx: Out, d: ArrayLike<number>, w: ArrayLike<number>, rows: number, dIn: number, cols: number, coef = 1, accumulate = false): void {
  for (let r = 0; r < rows; r++)
    for (let i = 0; i < dIn; i++) {
      let s = 0;
      for (let f = 0; f < cols; f++) s += d[r * cols + f] * w[i * cols + f];
      dx[r * dIn + i] = (accumulate ? dx[r * dIn + i] : 0) + coef * s;
    }
}

/** out (+)= d, or d * gain per column of `width`. */
export function saeInputBackwardCpu(out: Out, d: ArrayLike<number>, gain: ArrayLike<number> | null, n: number, width: number, accumulate = false): void {
  for (let i = 0; i < n; i++) out[i] = (accumulate ? out[i] : 0) + d[i] * (gain ? gain[i % width] : 1);
}

export interface Sae64 {
  kind: SaeActivationKind;
  wEnc: ArrayLike<number>; // [d_in, d_sae]
  bEnc: ArrayLike<number>;
  wDec: ArrayLike<number>; // [d_sae, d_out]
  bDec: ArrayLike<number>;
  threshold?: ArrayLike<number> | null;
  wSkip?: ArrayLike<number> | null; // [d_in, d_out]
  k?: number;
  dIn: number;
  dSae: number;
  dOut: number;
}

/**
 * The SAE's forward in float64 for `rows` rows of x: pre, acts and recons, as SAELens defines
 * them (`sae.cpu.ts`' definitions). `fired`, when given, fixes which units are active (the
 * derivative of the activation is taken with the threshold and the ranking held, as autograd
 * does): a finite difference must not flip a unit.
 */
export function saeForward64(s: Sae64, x: ArrayLike<number>, rows: number, fired?: Uint8Array): { pre: Float64Array; acts: Float64Array; recons: Float64Array; fired: Uint8Array } {
  const { dIn, dSae, dOut } = s;
  const pre = new Float64Array(rows * dSae);
  const acts = new Float64Array(rows * dSae);
  const recons = new Float64Array(rows * dOut);
  const on = fired ?? new Uint8Array(rows * dSae);
  for (let r = 0; r < rows; r++) {
    for (let f = 0; f < dSae; f++) {
      let v = s.bEnc[f];
      for (let i = 0; i < dIn; i++) v += x[r * dIn + i] * s.wEnc[i * dSae + f];
      pre[r * dSae + f] = v;
    }
    if (!fired) {
      const o = r * dSae;
      if (s.kind === 'topk') {
        const order = Array.from({ length: dSae }, (_, i) => i).sort((a, b) => pre[o + b] - pre[o + a] || a - b);
        for (const f of order.slice(0, s.k!)) on[o + f] = pre[o + f] > 0 ? 1 : 0;
      } else {
        for (let f = 0; f < dSae; f++) on[o + f] = pre[o + f] > 0 && (s.kind === 'relu' || pre[o + f] > s.threshold![f]) ? 1 : 0;
      }
    }
    for (let f = 0; f < dSae; f++) acts[r * dSae + f] = on[r * dSae + f] ? pre[r * dSae + f] : 0;
    for (let j = 0; j < dOut; j++) {
      let v = s.bDec[j];
      for (let f = 0; f < dSae; f++) v += acts[r * dSae + f] * s.wDec[f * dOut + j];
      if (s.wSkip) for (let i = 0; i < dIn; i++) v += x[r * dIn + i] * s.wSkip[i * dOut + j];
      recons[r * dOut + j] = v;
    }
  }
  return { pre, acts, recons, fired: on };
}
