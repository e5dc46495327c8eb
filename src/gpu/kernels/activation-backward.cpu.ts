/** CPU reference for `activation-backward.ts`: the exact derivatives in float64 (no clamps). */
import { erf, type ActFnCpu } from './elementwise.cpu.ts';

/** act(x) and act'(x) in float64. */
export function activationSlope64(fn: ActFnCpu, x: number): { value: number; slope: number } {
  switch (fn) {
    case 'gelu_new': {
      const c = Math.sqrt(2 / Math.PI);
      const t = Math.tanh(c * (x + 0.044715 * x ** 3));
      return { value: 0.5 * x * (1 + t), slope: 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x) };
    }
    case 'gelu': {
      const cdf = 0.5 * (1 + erf(x / Math.SQRT2));
      return { value: x * cdf, slope: cdf + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI) };
    }
    case 'silu': {
      const s = 1 / (1 + Math.exp(-x));
      return { value: x * s, slope: s * (1 + x * (1 - s)) };
    }
    case 'relu':
      return { value: Math.max(x, 0), slope: x > 0 ? 1 : 0 };
  }
}

/** dx = dy act'(x); gated (up given): dx = dy up act'(x), dUp = dy act(x). */
export function activationBackwardCpu(
  fn: ActFnCpu,
  dx: Float32Array | Float64Array,
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  n: number,
  gate: { up: ArrayLike<number>; dUp: Float32Array | Float64Array } | null = null,
): void {
  for (let i = 0; i < n; i++) {
    const { value, slope } = activationSlope64(fn, x[i]);
    if (gate) {
      dx[i] = dy[i] * gate.up[i] * slope;
      gate.dUp[i] = dy[i] * value;
    } else dx[i] = dy[i] * slope;
  }
}
