/** CPU references (float64 sums) for `shaders/narrow-matmul.wgsl.ts`, on the matmul backward's references. */
import { biasGradCpu, matmulDwCpu, matmulForward64 } from './matmul-backward.cpu.ts';

/** rows_times_t: Y[M, N] = A[M, K] Z[N, K]^T (+ bias[N]) (+ res[M, N]). */
export function rowsTimesTCpu(A: ArrayLike<number>, Z: ArrayLike<number>, M: number, K: number, N: number, bias: ArrayLike<number> | null = null, res: ArrayLike<number> | null = null): Float64Array {
  const Y = matmulForward64(A, Z, bias, M, N, K, true);
  if (res) for (let i = 0; i < M * N; i++) Y[i] += res[i]!;
  return Y;
}

/**
 * weight_grad: sum_i A[i, k] G[i, j] over M rows into `out` (overwritten, or added to with
 * `accumulate`), column j of block j / S at (j / S) Kin S + k S + j % S; returns the column sums
 * sum_i G[i, j] [N].
 */
export function weightGradCpu(out: Float64Array, A: ArrayLike<number>, G: ArrayLike<number>, M: number, Kin: number, N: number, split = N, accumulate = false): Float64Array {
  const dw = new Float64Array(Kin * N); // [Kin, N]
  matmulDwCpu(dw, A, G, M, N, Kin);
  for (let k = 0; k < Kin; k++)
    for (let j = 0; j < N; j++) {
      const o = Math.floor(j / split) * Kin * split + k * split + (j % split);
      out[o] = (accumulate ? out[o]! : 0) + dw[k * N + j]!;
    }
  const bsum = new Float64Array(N);
  biasGradCpu(bsum, G, M, N);
  return bsum;
}
