/**
 * CPU references for `sae.ts`, in the GPU ops' argument order (outputs, inputs, dims), float64
 * sums. Definitions follow SAELens (`StandardSAE`, `JumpReLUSAE`, `TopKSAE`, `Transcoder`):
 *   pre = x @ W_enc + b_enc
 *   relu      acts = max(pre, 0)
 *   jumprelu  acts = max(pre, 0) * (pre > threshold)
 *   topk      acts = max(pre, 0) on the k largest entries of pre per row (ties: lower index)
 *   recons = acts @ W_dec + b_dec (+ x @ W_skip for a skip transcoder)
 */
import type { SaeActivationKind } from './sae.ts';

/** pre [rows, d_sae] = x [rows, d_in] @ W_enc [d_in, d_sae] + b_enc. */
export function saeEncodeCpu(pre: Float32Array, x: Float32Array, wEnc: Float32Array, bEnc: Float32Array, rows: number, dIn: number, dSae: number): void {
  const acc = new Float64Array(dSae);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < dSae; j++) acc[j] = bEnc[j];
    for (let i = 0; i < dIn; i++) {
      const xi = x[r * dIn + i];
      if (xi === 0) continue;
      const w = i * dSae;
      for (let j = 0; j < dSae; j++) acc[j] += xi * wEnc[w + j];
    }
    for (let j = 0; j < dSae; j++) pre[r * dSae + j] = acc[j];
  }
}

/** acts = act(pre) per row of d_sae. */
export function saeActivationCpu(kind: SaeActivationKind, acts: Float32Array, pre: Float32Array, threshold: Float32Array | null, rows: number, dSae: number, k = 0): void {
  for (let r = 0; r < rows; r++) {
    const o = r * dSae;
    if (kind === 'topk') {
      const order = Array.from({ length: dSae }, (_, i) => i).sort((a, b) => pre[o + b] - pre[o + a] || a - b);
      acts.fill(0, o, o + dSae);
      for (const i of order.slice(0, k)) acts[o + i] = Math.max(pre[o + i], 0);
      continue;
    }
    for (let i = 0; i < dSae; i++) {
      const v = pre[o + i];
      acts[o + i] = kind === 'relu' || v > threshold![i] ? Math.max(v, 0) : 0;
    }
  }
}

/** recons [rows, n] = acts [rows, d_sae] @ W_dec [d_sae, n] + b_dec (+ skip [rows, n]). */
export function saeDecodeCpu(recons: Float32Array, acts: Float32Array, wDec: Float32Array, bDec: Float32Array, skip: Float32Array | null, rows: number, dSae: number, n: number): void {
  const acc = new Float64Array(n);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < n; j++) acc[j] = bDec[j] + (skip ? skip[r * n + j] : 0);
    for (let f = 0; f < dSae; f++) {
      const a = acts[r * dSae + f];
      if (a === 0) continue;
      for (let j = 0; j < n; j++) acc[j] += a * wDec[f * n + j];
    }
    for (let j = 0; j < n; j++) recons[r * n + j] = acc[j];
  }
}

/** err = x - r. */
export function saeErrorCpu(err: Float32Array, x: Float32Array, r: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) err[i] = x[i] - r[i];
}

/** out = x, or x * gain per column of `width`. */
export function saeInputCpu(out: Float32Array, x: Float32Array, gain: Float32Array | null, n: number, width: number): void {
  for (let i = 0; i < n; i++) out[i] = gain ? x[i] * gain[i % width] : x[i];
}

/** Per row, the indices of the non-zero activations in index order (list [rows, d_sae], the rest untouched) and their count. */
export function saeCompactCpu(list: Uint32Array, counts: Uint32Array, acts: Float32Array, rows: number, dSae: number): void {
  for (let r = 0; r < rows; r++) {
    let n = 0;
    for (let f = 0; f < dSae; f++) if (acts[r * dSae + f] !== 0) list[r * dSae + n++] = f;
    counts[r] = n;
  }
}
