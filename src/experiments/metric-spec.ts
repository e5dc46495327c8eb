/**
 * Metrics as short strings, for the command line and for URLs of figures:
 *
 *   logit-diff:POS:GOOD:BAD   logits[POS, GOOD] - logits[POS, BAD]
 *   logprob:POS:TOKEN         log p(TOKEN) at POS
 *   prob:POS:TOKEN            p(TOKEN) at POS
 *   loss:START:END            mean cross-entropy of the prompt's next tokens at START .. END-1
 */
import { logProbMetric, logitDiffMetric, lossMetric, probMetric, type Metric } from './metric.ts';

export const METRIC_SPECS = ['logit-diff:POS:GOOD:BAD', 'logprob:POS:TOKEN', 'prob:POS:TOKEN', 'loss:START:END'] as const;

export class MetricSpecError extends Error {
  override name = 'MetricSpecError';
}

const ARITY: Record<string, number> = { 'logit-diff': 3, logprob: 2, prob: 2, loss: 2 };

/** Parses a spec; `tokens` are the prompt whose next tokens a loss predicts. */
export function parseMetricSpec(spec: string, tokens: readonly number[] = []): Metric {
  const [kind, ...rest] = spec.split(':');
  const syntax = METRIC_SPECS.join(', ');
  if (!(kind in ARITY)) throw new MetricSpecError(`metric "${spec}": unknown kind "${kind}"; expected one of ${syntax}`);
  if (rest.length !== ARITY[kind]) {
    throw new MetricSpecError(`metric "${spec}": ${kind} takes ${ARITY[kind]} numbers (${METRIC_SPECS.find((s) => s.startsWith(kind + ':'))})`);
  }
  const n = rest.map((s) => {
    // Digits only: Number() would accept "", "1e3" and "0x10".
    if (!/^\d+$/.test(s) || !Number.isSafeInteger(Number(s))) throw new MetricSpecError(`metric "${spec}": "${s}" is not a non-negative integer`);
    return Number(s);
  });
  switch (kind) {
    case 'logit-diff':
      return logitDiffMetric(n[0], n[1], n[2]);
    case 'logprob':
      return logProbMetric(n[0], n[1]);
    case 'prob':
      return probMetric(n[0], n[1]);
    default:
      return lossMetric(tokens, n[0], n[1]);
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
