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

/** erf in float64: a Maclaurin series below 2.5, a continued fraction for erfc above (both to ~1e-15). */
export function erf(x: number): number {
  const a = Math.abs(x);
  if (a < 2.5) {
    // Maclaurin series: erf(x) = 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1)); converges fast here.
    let term = a;
    let sum = a;
    for (let n = 1; n < 60; n++) {
      term *= (-a * a) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // Continued fraction for erfc (Lentz), accurate for a >= 2.5.
  let f = a;
  let C = a;
  let D = 0;
  for (let k = 1; k < 100; k++) {
    const an = k / 2;
    D = a + an * D;
    D = 1 / D;
    C = a + an / C;
    const delta = C * D;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-a * a) / (f * Math.sqrt(Math.PI));
  return Math.sign(x) * (1 - erfc);
}

export type ActFnCpu = 'gelu_new' | 'gelu' | 'silu' | 'relu';

/** y = act(x), or act(x) * up when gated; float64 math, no clamps (the exact functions). */
export function activationCpu(fn: ActFnCpu, y: Float32Array, x: Float32Array, n: number, up: Float32Array | null = null): void {
  const c = Math.sqrt(2 / Math.PI);
  for (let i = 0; i < n; i++) {
    const v = x[i];
    let r: number;
    if (fn === 'gelu_new') r = 0.5 * v * (1 + Math.tanh(c * (v + 0.044715 * v * v * v)));
    else if (fn === 'gelu') r = 0.5 * v * (1 + erf(v / Math.SQRT2));
    else if (fn === 'silu') r = v / (1 + Math.exp(-v));
    else r = Math.max(v, 0);
    y[i] = up ? r * up[i] : r;
  }
}

/** y = cap * tanh(y / cap) in place, float64 math. */
export function softcapCpu(y: Float32Array, n: number, cap: number): void {
  for (let i = 0; i < n; i++) y[i] = cap * Math.tanh(y[i] / cap);
}
