/**
 * The gradient norm's ranges (`sumsqRanges`): entries back to back in one buffer are summed as one
 * range, whatever order the entries come in; a gap, another buffer, or two entries on the same
 * elements (a zero gradient two names share) start a new one, so every entry counts exactly once.
 */
import { describe, expect, it } from 'vitest';
import { sumsqRanges, type UpdateEntry } from '../../src/train/optimizer.ts';

describe('sumsqRanges', () => {
  it('merges back-to-back entries of a buffer, keeps gaps, duplicates and other buffers apart', () => {
    const A = { label: 'A' } as unknown as GPUBuffer;
    const B = { label: 'B' } as unknown as GPUBuffer;
    const P = { label: 'param' } as unknown as GPUBuffer;
    const e = (name: string, grad: GPUBuffer, gradStart: number, n: number): UpdateEntry => ({ name, param: P, grad, gradStart, n });
    const entries = [e('y', A, 64, 64), e('v', B, 0, 7), e('x', A, 0, 64), e('dup1', A, 128, 64), e('z', A, 192, 10), e('dup2', A, 128, 64), e('w', A, 256, 5)];
    const ranges = sumsqRanges(entries).map((r) => [r.grad === A ? 'A' : 'B', r.start, r.n]);
    expect(ranges).toEqual([
      ['A', 0, 192], // x, y, dup1
      ['A', 128, 74], // dup2, z
      ['A', 256, 5], // w, after a gap
      ['B', 0, 7],
    ]);
    const covered = ranges.reduce((s, [, , n]) => s + (n as number), 0);
    expect(covered).toBe(entries.reduce((s, x) => s + x.n, 0));
  });
});
