/** CPU references (float64 sums) for `shaders/narrow-matmul.wgsl.ts`. */

/** rows_times_t: Y[M, N] = A[M, K] Z[N, K]^T (+ bias[N]) (+ res[M, N]). */
export function rowsTimesTCpu(A: ArrayLike<number>, Z: ArrayLike<number>, M: number, K: number, N: number, bias: ArrayLike<number> | null = null, res: ArrayLike<number> | null = null): Float64Array {
  const Y = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += A[m * K + k]! * Z[n * K + k]!;
      Y[m * N + n] = s + (bias ? bias[n]! : 0) + (res ? res[m * N + n]! : 0);
    }
  return Y;
}

/**
 * weight_grad: sum_i A[i, k] G[i, j] over M rows into `out` (overwritten, or added to with
 * `accumulate`), column j of block j / S at (j / S) Kin S + k S + j % S; returns the column sums
 * sum_i G[i, j] [N].
 */
export function weightGradCpu(out: Float64Array, A: ArrayLike<number>, G: ArrayLike<number>, M: number, Kin: number, N: number, split = N, accumulate = false): Float64Array {
  const bsum = new Float64Array(N);
  for (let j = 0; j < N; j++) {
    for (let i = 0; i < M; i++) bsum[j] += G[i * N + j]!;
    for (let k = 0; k < Kin; k++) {
      let s = 0;
      for (let i = 0; i < M; i++) s += A[i * Kin + k]! * G[i * N + j]!;
      const o = Math.floor(j / split) * Kin * split + k * split + (j % split);
      out[o] = (accumulate ? out[o]! : 0) + s;
    }
  }
  return bsum;
}
