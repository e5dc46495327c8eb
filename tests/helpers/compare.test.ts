/** The comparison rule itself: a test that passes wrongly everywhere else would start here. */
import { describe, expect, test } from 'vitest';
import { expectClose, maxAbs, maxAbsDiff, tolerance } from './compare.ts';

describe('compare', () => {
  test('max |diff| and max |x|', () => {
    expect(maxAbsDiff([1, -2, 3], [1, 2, 2.5])).toBe(4);
    expect(maxAbs(new Float32Array([0.5, -7, 3]))).toBe(7);
    expect(() => maxAbsDiff([1], [1, 2])).toThrow(/1 values with 2/);
  });

  test('tolerance is 1e-4 × max(1, max |ref|)', () => {
    expect(tolerance([0.1, -0.5])).toBe(1e-4);
    expect(tolerance([20, -300])).toBeCloseTo(3e-2, 12);
  });

  test('NaN never passes', () => {
    expect(maxAbsDiff([NaN, 0], [0, 0])).toBeNaN();
    expect(maxAbsDiff([0, 1], [0, NaN])).toBeNaN();
    expect(maxAbs([NaN, 1])).toBeNaN();
    expect(() => expectClose('x', [NaN], [0])).toThrow(/x: max \|diff\| NaN/);
  });

  test('expectClose names the tensor, the diff and the tolerance', () => {
    expect(expectClose('ok', [100.005], [100])).toBeCloseTo(0.005, 6);
    expect(() => expectClose('blocks.0.hook_resid_pre', [1.001], [1])).toThrow(/blocks\.0\.hook_resid_pre: max \|diff\| 1\.000e-3 > tolerance 1\.000e-4/);
    expect(() => expectClose('logits', [1, 2], [1])).toThrow(/logits: 2 values, reference has 1/);
  });
});
