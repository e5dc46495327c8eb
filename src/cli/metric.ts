/**
 * The `--metric` option of `patchbay ablate` and `patchbay patch`. One kind for now:
 *
 *   logit-diff:POS:GOOD:BAD   logits[row, POS, GOOD] - logits[row, POS, BAD]   (row 0 unless stated)
 *
 * Parsing checks the syntax; `checkMetric` checks it against the prompt length and the vocabulary
 * once they are known, so both kinds of mistake are one-line usage errors before any GPU work.
 */
import { logitDiff } from '../hooks/cache-helpers.ts';
import { UsageError } from './args.ts';

export const METRIC_SYNTAX = 'logit-diff:POS:GOOD:BAD';

export interface LogitDiffMetric {
  kind: 'logit-diff';
  /** Position the logits are read at. */
  pos: number;
  good: number;
  bad: number;
  /** The option as given, for messages. */
  text: string;
}

export type Metric = LogitDiffMetric;

/** Parses a `--metric` value, e.g. "logit-diff:10:631:751". */
export function parseMetric(text: string): Metric {
  const parts = text.split(':');
  const expected = `--metric ${text}: expected ${METRIC_SYNTAX} (POS a position, GOOD and BAD token ids, e.g. logit-diff:10:631:751)`;
  if (parts[0] !== 'logit-diff') {
    throw new UsageError(parts.length > 1 ? `--metric ${text}: unknown metric "${parts[0]}"; expected ${METRIC_SYNTAX}` : expected);
  }
  if (parts.length !== 4) throw new UsageError(expected);
  const [pos, good, bad] = parts.slice(1).map((s, i) => {
    // Digits only, as for --ids: Number() would accept "", "1e3" and "0x10".
    const v = /^\d+$/.test(s) ? Number(s) : NaN;
    if (!Number.isSafeInteger(v)) {
      throw new UsageError(`--metric ${text}: ${['POS', 'GOOD', 'BAD'][i]} "${s}" is not a non-negative integer; expected ${METRIC_SYNTAX}`);
    }
    return v;
  });
  return { kind: 'logit-diff', pos, good, bad, text };
}

/** Checks the metric against the prompt length (`nPos`) and the model's vocabulary. */
export function checkMetric(m: Metric, nPos: number, dVocab: number): void {
  if (m.pos >= nPos) {
    throw new UsageError(`--metric ${m.text}: position ${m.pos} is out of range; the prompt has ${nPos} positions (0 .. ${nPos - 1})`);
  }
  for (const [what, id] of [['GOOD', m.good], ['BAD', m.bad]] as const) {
    if (id >= dVocab) {
      throw new UsageError(`--metric ${m.text}: ${what} token ${id} is not in the vocabulary (ids are 0 .. ${dVocab - 1}, d_vocab ${dVocab})`);
    }
  }
}

/** The metric on batch row `row` of logits shaped [batch, pos, d_vocab]. */
export function metricValue(m: Metric, logits: Float32Array, shape: readonly number[], row = 0): number {
  return logitDiff(logits, shape, m.pos, m.good, m.bad, row);
}

/** "logit-diff at pos 10, token 631 − token 751", for human summaries. */
export function describeMetric(m: Metric): string {
  return `logit-diff at pos ${m.pos}: logit[${m.good}] − logit[${m.bad}]`;
}
