/** CPU reference for `matmul.ts`: out[m, n] = sum_k a[m, k] * b[k, n] (+ bias[n]); b is [N, K] when transB. */
export function matmulCpu(out: Float32Array, a: Float32Array, b: Float32Array, bias: Float32Array | null, M: number, N: number, K: number, transB = false): void {
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += a[m * K + k] * (transB ? b[n * K + k] : b[k * N + n]);
      out[m * N + n] = acc + (bias ? bias[n] : 0);
    }
  }
}
