/**
 * The `--metric` option of `patchbay ablate`, `patch` and `sweep-ablate`:
 *
 *   logit-diff:POS:GOOD:BAD   logits[POS, GOOD] - logits[POS, BAD]
 *   logprob:POS:TOKEN         log p(TOKEN) at POS (log-softmax of the logits there)
 *   prob:POS:TOKEN            p(TOKEN) at POS
 *   loss:START:END            mean cross-entropy of predicting the prompt's own next token,
 *                             tokens[t + 1] at t, for START <= t < END (END <= n_pos - 1)
 *
 * The parsing and checks live in src/experiments/metric-spec.ts (figures read the same strings
 * from their URL); here their errors become one-line usage errors before any GPU work.
 */
import { metricCpu } from '../model/metric.ts';
import {
  MetricSpecError,
  METRIC_SPECS,
  checkMetricSpec,
  describeMetricSpec,
  metricSpecReadPos,
  parseMetricSyntax,
  resolveMetricSpec,
  specToMetric,
  type MetricSpec,
} from '../experiments/metric-spec.ts';
import { UsageError } from './args.ts';

export type Metric = MetricSpec;

/** Every accepted form, for usage texts: "logit-diff:POS:GOOD:BAD|logprob:POS:TOKEN|…". */
export const METRIC_SYNTAX = METRIC_SPECS.join('|');

/** The `--metric` lines of a command's --help: `what` it measures, `targets` whose tokens a loss predicts. */
export function metricHelp(what: string, targets: string): string {
  return `  --metric METRIC     ${what}, one of:
  --metric logit-diff:POS:GOOD:BAD
                      logits[POS, GOOD] - logits[POS, BAD]; POS may count from the end (-1 is
                      the last position)
  --metric logprob:POS:TOKEN
                      log p(TOKEN) at POS (log-softmax of the logits at POS)
  --metric prob:POS:TOKEN
                      p(TOKEN) at POS
  --metric loss:START:END
                      mean cross-entropy of predicting the next token at positions START .. END-1
                      (0 <= START < END <= n_pos - 1; negative values count from the end, END -1
                      is n_pos - 1); the targets are
                      ${targets}`;
}

/** `fn`'s MetricSpecError as a usage error about the --metric option. */
function asUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof MetricSpecError) throw new UsageError(e.message.replace(/^metric "([^"]*)"/, '--metric $1'));
    throw e;
  }
}

/** Parses a `--metric` value, e.g. "logit-diff:10:631:751" or "loss:0:10". */
export function parseMetric(text: string): Metric {
  return asUsage(() => parseMetricSyntax(text));
}

/** Checks the metric against the prompt length (`nPos`) and the model's vocabulary. */
export function checkMetric(m: Metric, nPos: number, dVocab: number): void {
  asUsage(() => checkMetricSpec(m, nPos, dVocab));
}

/** The engine's metric for the prompt `tokens` (relative positions resolved against it). */
export const toMetric = (m: Metric, tokens: readonly number[]) => asUsage(() => specToMetric(m, tokens));
/** The (last) position whose logits the metric reads, in the prompt `tokens`. */
export const metricReadPos = (m: Metric, tokens: readonly number[]) => metricSpecReadPos(asUsage(() => resolveMetricSpec(m, tokens, Infinity)));
export const describeMetric = describeMetricSpec;

/**
 * The metric on batch row `row` of logits shaped [batch, pos, d_vocab], on the CPU; `tokens` is
 * the prompt whose next tokens a loss predicts.
 */
export function metricValue(m: Metric, logits: Float32Array, shape: readonly number[], tokens: readonly number[], row = 0): number {
  const [, T, V] = shape;
  return metricCpu(toMetric(m, tokens), logits.subarray(row * T * V, (row + 1) * T * V), 1, V)[0];
}
