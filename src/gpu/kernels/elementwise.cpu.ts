/** CPU references for `elementwise.ts`. */

/** GPT-2's gelu_new, computed in float64 without any clamp (the exact function). */
export function geluNewCpu(y: Float32Array, x: Float32Array, n: number): void {
  const c = Math.sqrt(2 / Math.PI);
  for (let i = 0; i < n; i++) {
    const v = x[i];
    y[i] = 0.5 * v * (1 + Math.tanh(c * (v + 0.044715 * v * v * v)));
  }
}

export function addCpu(out: Float32Array, a: Float32Array, b: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
}
