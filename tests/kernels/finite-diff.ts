/**
 * Central finite differences in float64, the independent check of every backward kernel's CPU
 * reference: for a scalar loss L(x), (L(x + h e_i) - L(x - h e_i)) / 2h at chosen indices.
 * The loss is always a random projection of the op's outputs, L = sum_j g_j y_j(x), so
 * dL/dx is exactly what the backward computes from upstream gradient g.
 *
 * With h = 1e-5 and float64 the truncation error is O(h^2 |f'''|) ~ 1e-10 and the rounding
 * error ~ 1e-16 |L| / h ~ 1e-11 |L| for the smooth ops here; tests allow 1e-6 relative to the
 * gradient's largest magnitude, far above both and far below any real bug.
 */
import { expect } from 'vitest';
import { maxAbs } from '../helpers/compare.ts';

export const FD_STEP = 1e-5;
export const FD_TOL = 1e-6;

/** Every index, or `count` indices spread over 0 .. n-1 (both ends included). */
export function sampleIndices(n: number, count = n): number[] {
  if (count >= n) return [...Array(n).keys()];
  return [...new Set(Array.from({ length: count }, (_, i) => Math.round((i * (n - 1)) / (count - 1))))];
}

/** dL/dx_i by central differences, at `indices`. `loss` must not keep `x`. */
export function centralDiff(loss: (x: Float64Array) => number, x: ArrayLike<number>, indices: readonly number[], h = FD_STEP): Map<number, number> {
  const out = new Map<number, number>();
  const xp = Float64Array.from(x);
  for (const i of indices) {
    const x0 = xp[i];
    xp[i] = x0 + h;
    const up = loss(xp);
    xp[i] = x0 - h;
    const down = loss(xp);
    xp[i] = x0;
    out.set(i, (up - down) / (2 * h));
  }
  return out;
}

/** sum_j g_j y_j. */
export function project(g: ArrayLike<number>, y: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += g[i] * y[i];
  return s;
}

/** Asserts an analytic gradient matches central differences of `loss` at `count` indices. */
export function expectMatchesFiniteDiff(name: string, grad: ArrayLike<number>, loss: (x: Float64Array) => number, x: ArrayLike<number>, count = 40): void {
  const idx = sampleIndices(x.length, count);
  const fd = centralDiff(loss, x, idx);
  const scale = Math.max(maxAbs(grad), 1e-12);
  let worst = 0;
  for (const i of idx) worst = Math.max(worst, Math.abs(fd.get(i)! - grad[i]));
  const line = `${name}: finite differences vs analytic, max |diff| ${worst.toExponential(3)} (gradient max ${scale.toExponential(3)})`;
  if (process.env.KERNEL_TOL_REPORT) console.log(line);
  expect(worst, line).toBeLessThanOrEqual(FD_TOL * scale);
}
