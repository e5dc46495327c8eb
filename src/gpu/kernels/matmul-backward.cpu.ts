/**
 * CPU reference for `matmul-backward.ts`, in float64 (so the same code checks finite
 * differences). Forward: y[m, n] = sum_k x[m, k] w[k, n] + b[n] (`transW`: w is [N, K]).
 */
type Out = Float32Array | Float64Array;

/** dx[m, k] (+)= sum_n g[m, n] w[k, n] (transW: w[n, k]). */
export function matmulDxCpu(dx: Out, g: ArrayLike<number>, w: ArrayLike<number>, M: number, N: number, K: number, transW = false, accumulate = false): void {
  for (let m = 0; m < M; m++) {
    for (let k = 0; k < K; k++) {
      let s = 0;
      for (let n = 0; n < N; n++) s += g[m * N + n] * (transW ? w[n * K + k] : w[k * N + n]);
      dx[m * K + k] = (accumulate ? dx[m * K + k] : 0) + s;
    }
  }
}

/** dw[k, n] (+)= sum_m x[m, k] g[m, n], stored [N, K] with transOut. */
export function matmulDwCpu(dw: Out, x: ArrayLike<number>, g: ArrayLike<number>, M: number, N: number, K: number, transOut = false, accumulate = false): void {
  for (let k = 0; k < K; k++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let m = 0; m < M; m++) s += x[m * K + k] * g[m * N + n];
      const o = transOut ? n * K + k : k * N + n;
      dw[o] = (accumulate ? dw[o] : 0) + s;
    }
  }
}

/** db[n] (+)= sum_m g[m, n]. */
export function biasGradCpu(db: Out, g: ArrayLike<number>, M: number, N: number, accumulate = false): void {
  for (let n = 0; n < N; n++) {
    let s = 0;
    for (let m = 0; m < M; m++) s += g[m * N + n];
    db[n] = (accumulate ? db[n] : 0) + s;
  }
}

/** The forward in float64, for finite differences: y = x w (+ b); transW: w is [N, K]. */
export function matmulForward64(x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number> | null, M: number, N: number, K: number, transW = false): Float64Array {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = b ? b[n] : 0;
      for (let k = 0; k < K; k++) s += x[m * K + k] * (transW ? w[n * K + k] : w[k * N + n]);
      y[m * N + n] = s;
    }
  return y;
}

/** xt[k, m] = x[m, k] * gain[k] + bias[k] (gain 1, bias 0 without). */
export function transposeCpu(xt: Out, x: ArrayLike<number>, M: number, K: number, gain: ArrayLike<number> | null = null, bias: ArrayLike<number> | null = null): void {
  for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) xt[k * M + m] = x[m * K + k] * (gain ? gain[k] : 1) + (bias ? bias[k] : 0);
}
