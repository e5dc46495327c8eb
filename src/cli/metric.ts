/**
 * The `--metric` option of `patchbay ablate`, `patch` and `sweep-ablate`:
 *
 *   logit-diff:POS:GOOD:BAD   logits[POS, GOOD] - logits[POS, BAD]
 *   logprob:POS:TOKEN         log p(TOKEN) at POS (log-softmax of the logits there)
 *   prob:POS:TOKEN            p(TOKEN) at POS
 *   loss:START:END            mean cross-entropy of predicting the prompt's own next token,
 *                             tokens[t + 1] at t, for START <= t < END (END <= n_pos - 1)
 *
 * Parsing checks the syntax; `checkMetric` checks it against the prompt length and the vocabulary
 * once they are known, so both kinds of mistake are one-line usage errors before any GPU work.
 * `toMetric` turns the option into the library's metric (src/experiments/metric.ts), given the
 * tokens a loss predicts.
 */
import { logProbMetric, logitDiffMetric, lossMetric, metricCpu, probMetric, type Metric as LibraryMetric } from '../experiments/metric.ts';
import { UsageError } from './args.ts';

const SYNTAX = {
  'logit-diff': { syntax: 'logit-diff:POS:GOOD:BAD', fields: ['POS', 'GOOD', 'BAD'], example: 'logit-diff:10:631:751' },
  logprob: { syntax: 'logprob:POS:TOKEN', fields: ['POS', 'TOKEN'], example: 'logprob:10:631' },
  prob: { syntax: 'prob:POS:TOKEN', fields: ['POS', 'TOKEN'], example: 'prob:10:631' },
  loss: { syntax: 'loss:START:END', fields: ['START', 'END'], example: 'loss:0:10' },
} as const;

type Kind = keyof typeof SYNTAX;
const KINDS = Object.keys(SYNTAX) as Kind[];

/** Every accepted form, for usage texts: "logit-diff:POS:GOOD:BAD|logprob:POS:TOKEN|…". */
export const METRIC_SYNTAX = KINDS.map((k) => SYNTAX[k].syntax).join('|');

/** The forms as a readable list: "logit-diff:POS:GOOD:BAD, logprob:POS:TOKEN, prob:POS:TOKEN or loss:START:END". */
const METRIC_LIST = `${KINDS.slice(0, -1).map((k) => SYNTAX[k].syntax).join(', ')} or ${SYNTAX[KINDS[KINDS.length - 1]].syntax}`;

/** The `--metric` lines of a command's --help: `what` it measures, `targets` whose tokens a loss predicts. */
export function metricHelp(what: string, targets: string): string {
  return `  --metric METRIC     ${what}, one of:
  --metric logit-diff:POS:GOOD:BAD
                      logits[POS, GOOD] - logits[POS, BAD]
  --metric logprob:POS:TOKEN
                      log p(TOKEN) at POS (log-softmax of the logits at POS)
  --metric prob:POS:TOKEN
                      p(TOKEN) at POS
  --metric loss:START:END
                      mean cross-entropy of predicting the next token at positions START .. END-1
                      (0 <= START < END <= n_pos - 1); the targets are
                      ${targets}`;
}

export type Metric =
  | { kind: 'logit-diff'; pos: number; good: number; bad: number; text: string }
  | { kind: 'logprob' | 'prob'; pos: number; token: number; text: string }
  | { kind: 'loss'; start: number; end: number; text: string };

/** Parses a `--metric` value, e.g. "logit-diff:10:631:751" or "loss:0:10". */
export function parseMetric(text: string): Metric {
  const [kindText, ...rest] = text.split(':');
  if (!(KINDS as string[]).includes(kindText)) {
    if (rest.length === 0) throw new UsageError(`--metric ${text}: expected ${METRIC_LIST} (e.g. logit-diff:10:631:751)`);
    throw new UsageError(`--metric ${text}: unknown metric "${kindText}"; expected ${METRIC_LIST}`);
  }
  const kind = kindText as Kind;
  const { syntax, fields, example } = SYNTAX[kind];
  if (rest.length !== fields.length) {
    throw new UsageError(`--metric ${text}: expected ${syntax} (${fields.length} non-negative integers after "${kind}:", e.g. ${example})`);
  }
  const n = rest.map((s, i) => {
    // Digits only, as for --ids: Number() would accept "", "1e3" and "0x10".
    const v = /^\d+$/.test(s) ? Number(s) : NaN;
    if (!Number.isSafeInteger(v)) throw new UsageError(`--metric ${text}: ${fields[i]} "${s}" is not a non-negative integer; expected ${syntax}`);
    return v;
  });
  switch (kind) {
    case 'logit-diff':
      return { kind, pos: n[0], good: n[1], bad: n[2], text };
    case 'logprob':
    case 'prob':
      return { kind, pos: n[0], token: n[1], text };
    case 'loss':
      if (n[0] >= n[1]) throw new UsageError(`--metric ${text}: START ${n[0]} must be less than END ${n[1]} (the span is START .. END-1)`);
      return { kind, start: n[0], end: n[1], text };
  }
}

/** Checks the metric against the prompt length (`nPos`) and the model's vocabulary. */
export function checkMetric(m: Metric, nPos: number, dVocab: number): void {
  if (m.kind === 'loss') {
    if (m.end > nPos - 1) {
      throw new UsageError(
        `--metric ${m.text}: END ${m.end} is out of range; the prompt has ${nPos} positions and the last one has no next token, so END <= ${nPos - 1}`,
      );
    }
    return;
  }
  if (m.pos >= nPos) {
    throw new UsageError(`--metric ${m.text}: position ${m.pos} is out of range; the prompt has ${nPos} positions (0 .. ${nPos - 1})`);
  }
  const tokens: Array<readonly [string, number]> = m.kind === 'logit-diff' ? [['GOOD token', m.good], ['BAD token', m.bad]] : [['token', m.token]];
  for (const [what, id] of tokens) {
    if (id >= dVocab) {
      throw new UsageError(`--metric ${m.text}: ${what} ${id} is not in the vocabulary (ids are 0 .. ${dVocab - 1}, d_vocab ${dVocab})`);
    }
  }
}

/** The library's metric; `tokens` is the prompt whose next tokens a loss predicts. */
export function toMetric(m: Metric, tokens: readonly number[]): LibraryMetric {
  switch (m.kind) {
    case 'logit-diff':
      return logitDiffMetric(m.pos, m.good, m.bad);
    case 'logprob':
      return logProbMetric(m.pos, m.token);
    case 'prob':
      return probMetric(m.pos, m.token);
    case 'loss':
      return lossMetric(tokens, m.start, m.end);
  }
}

/**
 * The metric on batch row `row` of logits shaped [batch, pos, d_vocab], on the CPU; `tokens` is
 * the prompt whose next tokens a loss predicts.
 */
export function metricValue(m: Metric, logits: Float32Array, shape: readonly number[], tokens: readonly number[], row = 0): number {
  const [, T, V] = shape;
  return metricCpu(toMetric(m, tokens), logits.subarray(row * T * V, (row + 1) * T * V), 1, V)[0];
}

/** The (last) position whose logits the metric reads: POS, or END-1 for a loss. */
export function metricReadPos(m: Metric): number {
  return m.kind === 'loss' ? m.end - 1 : m.pos;
}

/** "logit-diff at pos 10: logit[631] − logit[751]", for human summaries. */
export function describeMetric(m: Metric): string {
  switch (m.kind) {
    case 'logit-diff':
      return `logit-diff at pos ${m.pos}: logit[${m.good}] − logit[${m.bad}]`;
    case 'logprob':
      return `log p(${m.token}) at pos ${m.pos}`;
    case 'prob':
      return `p(${m.token}) at pos ${m.pos}`;
    case 'loss':
      return `loss (mean cross-entropy of the next token) at pos ${m.start} .. ${m.end - 1}`;
  }
}
