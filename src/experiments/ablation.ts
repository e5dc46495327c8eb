/**
 * Head ablation sweeps on one prompt: zero- or mean-ablate each head's output (hook_z) in turn,
 * every head a batch row of a resumed pass (see `sweep.ts`), and record a metric.
 */
import type { ActivationCache } from '../hooks/activation-cache.ts';
import { meanHead, zeroHead } from '../hooks/interventions.ts';
import type { Model } from '../hooks/model.ts';
import { validateMetric, type Metric } from '../model/metric.ts';
import type { Grid } from './patching.ts';
import { BASE_CACHE, baseRun, runVariants, type SweepOptions } from './sweep.ts';

export interface AblationOptions extends SweepOptions {
  mode?: 'zero' | 'mean';
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
