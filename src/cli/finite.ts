/**
 * Reporting numbers that may not be finite. JSON has no NaN or Infinity (JSON.stringify writes
 * them as `null`, which reads as "missing"), so --json output writes them as the strings "NaN",
 * "Infinity" and "-Infinity", which Python's `float()` and JavaScript's `Number()` both parse.
 * A command whose results are not finite still prints them, then fails (exit 1) unless the
 * user passed --allow-nonfinite: NaN logits mean the model or its inputs are broken, and a
 * script should not read them as a result.
 */

/** `--allow-nonfinite` in each command's --help. */
export const ALLOW_NONFINITE_HELP = `  --allow-nonfinite   exit 0 even when a reported value is NaN or +-Infinity (by default the
                      command prints its results, then fails with exit code 1); in --json such
                      values are the strings "NaN", "Infinity", "-Infinity"`;

export const ALLOW_NONFINITE_FLAG = { boolean: true } as const;

/** One line of JSON with non-finite numbers as the strings "NaN", "Infinity", "-Infinity". */
export function jsonLine(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v));
}

/**
 * Throws unless every value is finite or `allow` is set. `what` names the values in the
 * message ("the metric", "3 of 34 grid cells").
 */
export function checkFinite(values: Iterable<number>, what: string, allow: boolean): void {
  if (allow) return;
  const bad: number[] = [];
  let n = 0;
  for (const v of values) {
    n++;
    if (!Number.isFinite(v)) bad.push(v);
  }
  if (bad.length === 0) return;
  const kinds = [...new Set(bad.map(String))].join(', ');
  const which = n === 1 ? what : `${bad.length} of ${n} values of ${what}`;
  throw new Error(`${which} ${bad.length === 1 ? 'is' : 'are'} not finite (${kinds}): the model's weights or activations overflow or are NaN; ` + 'pass --allow-nonfinite to accept such results');
}
