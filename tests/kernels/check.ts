/**
 * The kernel tests' comparison: max |gpu - ref| <= abs + rel * max |ref|, with abs and rel chosen
 * per kernel from how its fp32 rounding error grows (each test states why). NaN never passes.
 * KERNEL_TOL_REPORT=1 logs every comparison's max diff and bound.
 */
import { expect } from 'vitest';
import { maxAbs, maxAbsDiff } from '../helpers/compare.ts';

/** The fp32 unit roundoff. */
export const U = 2 ** -24;

/** gamma_n = n u / (1 - n u): the bound on n successive fp32 roundings (Higham, 3.1). */
export const gamma = (n: number): number => (n * U) / (1 - n * U);

export interface Tol {
  abs: number;
  rel: number;
}

/** The bound for `ref` under `tol`. */
export function bound(ref: ArrayLike<number>, tol: Tol): number {
  return tol.abs + tol.rel * maxAbs(ref);
}

/** Asserts `got` matches `ref`; returns max |diff| / bound (<= 1 when it passes) for reports. */
export function expectNear(name: string, got: ArrayLike<number>, ref: ArrayLike<number>, tol: Tol): number {
  expect(got.length, `${name}: length`).toBe(ref.length);
  const diff = maxAbsDiff(got, ref);
  const b = bound(ref, tol);
  const line = `${name}: max |diff| ${diff.toExponential(3)} vs bound ${b.toExponential(3)}`;
  if (process.env.KERNEL_TOL_REPORT) console.log(line);
  expect(diff, line).toBeLessThanOrEqual(b);
  return diff / b;
}

/** Index of the first NaN (or -1). */
export function firstNaN(a: ArrayLike<number>): number {
  for (let i = 0; i < a.length; i++) if (Number.isNaN(a[i])) return i;
  return -1;
}
