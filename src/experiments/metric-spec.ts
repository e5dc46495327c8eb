/**
 * Metrics as short strings, shared by the command line (`--metric`) and the URLs of figures:
 *
 *   logit-diff:POS:GOOD:BAD   logits[POS, GOOD] - logits[POS, BAD]
 *   logprob:POS:TOKEN         log p(TOKEN) at POS (log-softmax of the logits there)
 *   prob:POS:TOKEN            p(TOKEN) at POS
 *   loss:START:END            mean cross-entropy of predicting the prompt's own next token,
 *                             tokens[t + 1] at t, for START <= t < END (END <= n_pos - 1)
 *
 * `parseMetricSyntax` checks the syntax alone; `checkMetricSpec` checks it against a prompt's
 * length and a vocabulary once they are known; `specToMetric` gives the metric the engine
 * computes (src/experiments/metric.ts), given the tokens a loss predicts. Errors are
 * `MetricSpecError`s whose message names the spec and the problem.
 */
import { logProbMetric, logitDiffMetric, lossMetric, probMetric, type Metric } from './metric.ts';

const SYNTAX = {
  'logit-diff': { syntax: 'logit-diff:POS:GOOD:BAD', fields: ['POS', 'GOOD', 'BAD'], example: 'logit-diff:10:631:751' },
  logprob: { syntax: 'logprob:POS:TOKEN', fields: ['POS', 'TOKEN'], example: 'logprob:10:631' },
  prob: { syntax: 'prob:POS:TOKEN', fields: ['POS', 'TOKEN'], example: 'prob:10:631' },
  loss: { syntax: 'loss:START:END', fields: ['START', 'END'], example: 'loss:0:10' },
} as const;

type Kind = keyof typeof SYNTAX;
const KINDS = Object.keys(SYNTAX) as Kind[];

export const METRIC_SPECS: readonly string[] = KINDS.map((k) => SYNTAX[k].syntax);
/** "logit-diff:POS:GOOD:BAD, logprob:POS:TOKEN, prob:POS:TOKEN or loss:START:END". */
const METRIC_LIST = `${METRIC_SPECS.slice(0, -1).join(', ')} or ${METRIC_SPECS[METRIC_SPECS.length - 1]}`;

export class MetricSpecError extends Error {
  override name = 'MetricSpecError';
}

export type MetricSpec =
  | { kind: 'logit-diff'; pos: number; good: number; bad: number; text: string }
  | { kind: 'logprob' | 'prob'; pos: number; token: number; text: string }
  | { kind: 'loss'; start: number; end: number; text: string };

/** Parses e.g. "logit-diff:10:631:751" or "loss:0:10" (syntax only). */
export function parseMetricSyntax(text: string): MetricSpec {
  const [kindText, ...rest] = text.split(':');
  if (!(KINDS as string[]).includes(kindText)) {
    if (rest.length === 0) throw new MetricSpecError(`metric "${text}": expected ${METRIC_LIST} (e.g. logit-diff:10:631:751)`);
    throw new MetricSpecError(`metric "${text}": unknown metric "${kindText}"; expected ${METRIC_LIST}`);
  }
  const kind = kindText as Kind;
  const { syntax, fields, example } = SYNTAX[kind];
  if (rest.length !== fields.length) {
    throw new MetricSpecError(`metric "${text}": expected ${syntax} (${fields.length} non-negative integers after "${kind}:", e.g. ${example})`);
  }
  const n = rest.map((s, i) => {
    // Digits only: Number() would accept "", "1e3" and "0x10".
    const v = /^\d+$/.test(s) ? Number(s) : NaN;
    if (!Number.isSafeInteger(v)) throw new MetricSpecError(`metric "${text}": ${fields[i]} "${s}" is not a non-negative integer; expected ${syntax}`);
    return v;
  });
  switch (kind) {
    case 'logit-diff':
      return { kind, pos: n[0], good: n[1], bad: n[2], text };
    case 'logprob':
    case 'prob':
      return { kind, pos: n[0], token: n[1], text };
    case 'loss':
      if (n[0] >= n[1]) throw new MetricSpecError(`metric "${text}": START ${n[0]} must be less than END ${n[1]} (the span is START .. END-1)`);
      return { kind, start: n[0], end: n[1], text };
  }
}

/** Checks the metric against the prompt length (`nPos`) and the model's vocabulary. */
export function checkMetricSpec(m: MetricSpec, nPos: number, dVocab: number): void {
  if (m.kind === 'loss') {
    if (m.end > nPos - 1) {
      throw new MetricSpecError(
        `metric "${m.text}": END ${m.end} is out of range; the prompt has ${nPos} positions and the last one has no next token, so END <= ${nPos - 1}`,
      );
    }
    return;
  }
  if (m.pos >= nPos) {
    throw new MetricSpecError(`metric "${m.text}": position ${m.pos} is out of range; the prompt has ${nPos} positions (0 .. ${nPos - 1})`);
  }
  const tokens: Array<readonly [string, number]> = m.kind === 'logit-diff' ? [['GOOD token', m.good], ['BAD token', m.bad]] : [['token', m.token]];
  for (const [what, id] of tokens) {
    if (id >= dVocab) {
      throw new MetricSpecError(`metric "${m.text}": ${what} ${id} is not in the vocabulary (ids are 0 .. ${dVocab - 1}, d_vocab ${dVocab})`);
    }
  }
}

/** The engine's metric; `tokens` is the prompt whose next tokens a loss predicts. */
export function specToMetric(m: MetricSpec, tokens: readonly number[]): Metric {
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

/** Parses a spec into the engine's metric for `tokens` (the prompt a loss predicts). */
export function parseMetricSpec(text: string, tokens: readonly number[] = []): Metric {
  return specToMetric(parseMetricSyntax(text), tokens);
}

/** The (last) position whose logits the metric reads: POS, or END-1 for a loss. */
export function metricSpecReadPos(m: MetricSpec): number {
  return m.kind === 'loss' ? m.end - 1 : m.pos;
}

/** "logit-diff at pos 10: logit[631] − logit[751]", for human summaries. */
export function describeMetricSpec(m: MetricSpec): string {
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

export function formatMetricSpec(m: Metric): string {
  switch (m.kind) {
    case 'logit-diff':
      return `logit-diff:${m.pos}:${m.good}:${m.bad}`;
    case 'logprob':
    case 'prob':
      return `${m.kind}:${m.pos}:${m.token}`;
    case 'loss':
      return `loss:${m.start}:${m.end}`;
  }
}
