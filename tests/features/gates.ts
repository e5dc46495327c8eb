/**
 * JumpReLU gates decided by fp32 rounding: elements whose pre-activation x @ W_enc + b_enc lies
 * within its own fp32 error bound of the threshold. The bound is gamma_{d_in+1} times the sum of
 * the absolute terms (Higham 3.1), the most any fp32 summation order can be off; pre itself is
 * computed in float64.
 */
import { gamma } from '../kernels/check.ts';

/** Flat indices (row * d_sae + feature) of the ambiguous gates. */
export function ambiguousGates(x: Float32Array, wEnc: Float32Array, bEnc: Float32Array, threshold: Float32Array, dIn: number, dSae: number): Set<number> {
  const rows = x.length / dIn;
  const out = new Set<number>();
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < dSae; j++) {
      let pre = bEnc[j];
      let mag = Math.abs(bEnc[j]);
      for (let i = 0; i < dIn; i++) {
        const t = x[r * dIn + i] * wEnc[i * dSae + j];
        pre += t;
        mag += Math.abs(t);
      }
      if (Math.abs(pre - threshold[j]) <= gamma(dIn + 1) * mag) out.add(r * dSae + j);
    }
  }
  return out;
}
