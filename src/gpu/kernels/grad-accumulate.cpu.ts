/** CPU reference for `grad-accumulate.ts`. */
export function accumulateCpu(y: Float32Array | Float64Array, x: ArrayLike<number>, n: number, a = 1): void {
  for (let i = 0; i < n; i++) y[i] += a * x[i];
}
