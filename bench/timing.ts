/** What every measurement of `npm run bench` shares: timing, summaries, progress, prompts. */

export const round = (x: number, d = 2) => +x.toFixed(d);

/** Median and minimum of repeated timings. */
export function summary(times: number[]) {
  const s = [...times].sort((a, b) => a - b);
  const median = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return { median_ms: round(median), min_ms: round(s[0]), reps: s.length };
}

export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

/** Progress, on stderr (stdout is the JSON result). */
export const log = (msg: string) => process.stderr.write(`bench: ${msg}\n`);

/** Token ids for a length-T prompt (deterministic, spread over the vocabulary). */
export const prompt = (T: number, V: number, salt = 0) => Array.from({ length: T }, (_, i) => (i * 7919 + 13 + salt * 104729) % V);

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`logit arrays differ in length: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return +m.toExponential(2);
}
