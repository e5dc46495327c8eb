/**
 * Head ablation on one prompt: heads' outputs (hook_z) zero- or mean-ablated together in one run
 * (`runHeadAblation`, what the figures, the CLI's `ablate` and specs run), or each head in turn
 * as a batch row of a resumed pass (`headAblationSweep`, see `sweep.ts`), with a metric.
 *
 * Mean-ablation replaces a head's output with its mean over a reference run, pooled over batch
 * rows and positions; the reference defaults to the prompt itself, unablated.
 */
import type { ActivationCache } from '../hooks/activation-cache.ts';
import { meanHead, zeroHead, type Intervention } from '../hooks/interventions.ts';
import type { CacheFilter, Model, RunResult, RunOptions, Tokens } from '../hooks/model.ts';
import type { HookName } from '../model/hook-points.ts';
import { metricCpu, validateMetric, type Metric } from '../model/metric.ts';
import type { Grid } from './patching.ts';
import { BASE_CACHE, baseRun, runVariants, type SweepOptions } from './sweep.ts';

export type AblationMode = 'zero' | 'mean';

/** An attention head, by layer and index (both from 0). */
export interface HeadRef {
  layer: number;
  head: number;
}

/** The hook_z names a mean-ablation of `heads` reads from its reference run. */
export const headOutputNames = (heads: readonly HeadRef[]): HookName[] => [...new Set(heads.map((h): HookName => `blocks.${h.layer}.attn.hook_z`))];

/** Interventions ablating `heads` together: zero, or each head's mean over `reference` (pooled over rows and positions). */
export function headAblations(heads: readonly HeadRef[], mode: AblationMode, reference?: ActivationCache): Intervention[] {
  if (mode === 'zero') return heads.map((h) => zeroHead(h.layer, h.head));
  if (!reference) throw new Error("mean-ablation needs a reference cache holding the heads' hook_z");
  return heads.map((h) => meanHead(h.layer, h.head, reference, { pooled: true }));
}

export interface HeadAblationOptions {
  /** 'zero' (default) or 'mean' (over an unablated run of the same tokens). */
  mode?: AblationMode;
  /** Hook points the ablated run keeps. */
  cache?: CacheFilter;
  /** Further interventions of the ablated run, applied before the head ablations. */
  hooks?: readonly Intervention[];
  /** SAEs spliced into both runs. */
  saes?: RunOptions['saes'];
  /** Also return the unablated run (the caller releases it); it is run anyway for a mean. */
  keepPlain?: boolean;
}

/**
 * Runs `tokens` with `heads` ablated together. A mean-ablation first runs the tokens unablated
 * and takes each head's mean over that run's rows and positions (what `headAblationSweep` does
 * without a reference), so every figure and command means the same by "mean-ablated".
 */
export async function runHeadAblation(model: Model, tokens: Tokens, heads: readonly HeadRef[], options: HeadAblationOptions = {}): Promise<{ ablated: RunResult; plain: RunResult | null }> {
  const mode = options.mode ?? 'zero';
  const saes = options.saes ? { saes: options.saes } : {};
  const mean = mode === 'mean' && heads.length > 0;
  const plain = options.keepPlain || mean ? await model.run(tokens, { ...saes, cache: mean ? headOutputNames(heads) : [] }) : null;
  let kept = false;
  try {
    const hooks = [...(options.hooks ?? []), ...headAblations(heads, mode, plain?.cache)];
    const ablated = await model.run(tokens, { ...saes, hooks, ...(options.cache ? { cache: options.cache } : {}) });
    kept = !!options.keepPlain;
    return { ablated, plain: kept ? plain : null };
  } finally {
    // The ablated run is submitted; the model's queue orders any reuse of these buffers after it.
    if (!kept) plain?.release();
  }
}

/** The metric (batch row 0) of `tokens` with `heads` ablated together (`runHeadAblation`), computed from the logits. */
export async function headAblationMetric(model: Model, tokens: readonly number[], heads: readonly HeadRef[], metric: Metric, mode: AblationMode = 'zero'): Promise<number> {
  validateMetric(metric, tokens.length, model.config.d_vocab);
  const { ablated } = await runHeadAblation(model, [tokens], heads, { mode });
  try {
    return metricCpu(metric, await ablated.logits.read(), 1, model.config.d_vocab)[0];
  } finally {
    ablated.release();
  }
}

export interface AblationOptions extends SweepOptions {
  mode?: AblationMode;
  /**
   * For mean-ablation: a cache holding `blocks.L.attn.hook_z` of reference runs; each head is
   * replaced by its mean over the reference's batch and positions. Default: the prompt itself.
   */
  reference?: ActivationCache;
}

/** [layer, head] grid of the metric with each head ablated alone. `clean` is the unablated metric. */
export async function headAblationSweep(model: Model, tokens: readonly number[], metric: Metric, options: AblationOptions = {}): Promise<Omit<Grid, 'site'> & { site: 'head_ablation' }> {
  const { n_layers: L, n_heads: H } = model.config;
  const T = tokens.length;
  validateMetric(metric, T, model.config.d_vocab);
  const mode = options.mode ?? 'zero';
  if (mode !== 'zero' && mode !== 'mean') throw new Error(`unknown ablation mode "${mode}"; use zero or mean`);
  const keepZ = mode === 'mean' && !options.reference;
  const base = await baseRun(model, tokens, (n) => BASE_CACHE.test(n) || (keepZ && n.endsWith('.attn.hook_z')), metric);
  try {
    const reference = options.reference ?? base.cache;
    const unablated = base.metric;
    const variants = [...Array(L).keys()].flatMap((l) =>
      [...Array(H).keys()].map((h) => ({ layer: l, pos: 0, hooks: [mode === 'zero' ? zeroHead(l, h) : meanHead(l, h, reference, { pooled: true })] })),
    );
    const { values, stats } = await runVariants(model, base, variants, metric, { shift: 0, scale: 1 }, unablated, options);
    return { site: 'head_ablation', shape: [L, H], axes: ['layer', 'head'], values, clean: unablated, corrupt: unablated, stats };
  } finally {
    base.release();
  }
}
