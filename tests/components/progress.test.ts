/** The loading line: indeterminate without a total, the time left once there is one. */
import { describe, expect, test } from 'vitest';
import { describeProgress, formatDuration } from '../../src/components/progress.ts';

describe('describeProgress', () => {
  test('an unknown total is indeterminate and never a percentage', () => {
    const p = describeProgress({ loaded: 1.5e6, total: 0, started: 0 }, 2000);
    expect(p.fraction).toBeNull();
    expect(p.text).toBe('1.5 MB so far (size unknown)');
  });

  test('a known total gives the fraction and, after a second, the time left at the rate so far', () => {
    expect(describeProgress({ loaded: 1e6, total: 4e6, started: 0 }, 500)).toEqual({ text: '1.0 of 4.0 MB (25%)', fraction: 0.25 });
    // 1 MB in 2 s: 3 MB more take 6 s.
    expect(describeProgress({ loaded: 1e6, total: 4e6, started: 0 }, 2000).text).toBe('1.0 of 4.0 MB (25%), about 6 s left');
    expect(describeProgress({ loaded: 100e6, total: 548e6, started: 0 }, 30_000).text).toBe('100.0 of 548.0 MB (18%), about 2 min 14 s left');
  });

  test('durations read as a person would say them', () => {
    expect(formatDuration(0.2)).toBe('1 s');
    expect(formatDuration(125)).toBe('2 min 5 s');
    expect(formatDuration(3 * 3600 + 120)).toBe('3 h 2 min');
  });
});
