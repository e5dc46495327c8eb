/**
 * The one comparison rule for engine output against the Hugging Face reference tensors:
 * max |actual - ref| <= 1e-4 * max(1, max |ref|), per tensor. Relative to the tensor's largest
 * magnitude (not per element), because fp32 reductions on a GPU differ from PyTorch's by a few
 * ulps of the largest terms, not of each result. Used in Node and in the browser page, so it
 * imports nothing.
 */

/** Relative part of the tolerance; the absolute floor is this times 1. */
export const RELATIVE_TOLERANCE = 1e-4;

/** Largest |a[i] - b[i]|. NaN anywhere gives NaN, so it can never pass a `<=` check. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) {
    throw new Error(`cannot compare ${a.length} values with ${b.length}`);
  }
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (Number.isNaN(d)) return NaN; // one NaN fails the whole tensor
    if (d > m) m = d;
  }
  return m;
}

/** Largest |a[i]| (NaN propagates). */
export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const v = Math.abs(a[i]);
    if (Number.isNaN(v)) return NaN;
    if (v > m) m = v;
  }
  return m;
}

/** The largest error allowed against `ref`: 1e-4 × max(1, max |ref|). */
export function tolerance(ref: ArrayLike<number>): number {
  return RELATIVE_TOLERANCE * Math.max(1, maxAbs(ref));
}

/**
 * Throws unless `actual` matches `ref` under the rule above. The message names the tensor and
 * gives the max diff and the tolerance, like llm.c's `check_tensor`. Returns the max diff so
 * callers can report the largest error per fixture.
 */
export function expectClose(name: string, actual: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (actual.length !== ref.length) {
    throw new Error(`${name}: ${actual.length} values, reference has ${ref.length}`);
  }
  const diff = maxAbsDiff(actual, ref);
  const tol = tolerance(ref);
  if (!(diff <= tol)) {
    throw new Error(`${name}: max |diff| ${diff.toExponential(3)} > tolerance ${tol.toExponential(3)} (NOT OK)`);
  }
  return diff;
}
