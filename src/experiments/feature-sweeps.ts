/**
 * Ablation and patching sweeps over an SAE's features: for each position, the k features that
 * matter there, each ablated (or patched) alone, every cell a batch row of a resumed pass with
 * the SAE spliced in (`sweep.ts`). The SAE is spliced with its error term by default, so a
 * cell's change is exactly its feature's (SAELens' convention for circuit work).
 *
 *   featureAblationSweep(model, sae, tokens, metric, { k })
 *       cells: the k most active features at each position; value: the metric with that feature
 *       zeroed (mode 'zero') at that position alone.
 *   featurePatchingSweep(model, sae, clean, corrupt, metric, { k })
 *       cells: the k features whose activation differs most between the clean and corrupted
 *       runs at each position; value: the corrupted run's metric with that feature patched from
 *       the clean run at that position (normalized on request).
 *
 * Both return a `FeatureGrid` [pos, k]: `features` and `acts` name each cell's feature and its
 * activation (clean run); positions with fewer than k candidates have feature -1 and value NaN.
 */
import type { Model } from '../hooks/model.ts';
import type { Sae } from '../features/sae.ts';
import { saeHook, patchFeature, zeroFeature } from '../hooks/feature-interventions.ts';
import { asSplice, withErrorTerm, type SaeUse } from '../hooks/splice.ts';
import { validateTokens } from '../model/tokens.ts';
import { validateMetric, type Metric } from '../model/metric.ts';
import { BASE_CACHE, baseRun, runVariants, type SweepOptions, type SweepStats, type Variant } from './sweep.ts';
import { topFeatures } from './feature-attribution.ts';

export interface FeatureSweepOptions extends Omit<SweepOptions, 'saes'> {
  /** Features per position (default 5). */
  k?: number;
  /** Splice with the error term (default true). */
  errorTerm?: boolean;
  /** Positions to sweep (default: every position). */
  positions?: readonly number[];
  /** Patching: report (m - m_corrupt) / (m_clean - m_corrupt). */
  normalize?: boolean;
}

export interface FeatureGrid {
  site: 'feature_ablation' | 'feature_patching';
  /** The SAE's input hook. */
  hook: string;
  shape: [number, number];
  axes: ['pos', 'rank'];
  positions: number[];
  /** [pos, k] feature index of each cell, -1 where a position has fewer than k candidates. */
  features: Int32Array;
  /** [pos, k] the feature's activation in the (clean) run. */
  acts: Float32Array;
  /** [pos, k] the metric with the cell's intervention; NaN for empty cells. */
  values: Float64Array;
  /** The metric of the unablated run (ablation), or of the clean and corrupted runs (patching). */
  clean: number;
  corrupt: number;
  stats: SweepStats;
}

/** The layer whose pass must recompute the SAE's input hook. */
function saeLayer(sae: Sae): number {
  const m = /^blocks\.(\d+)\./.exec(sae.hookName);
  if (!m) throw new Error(`feature sweeps need an SAE on a block's hook point, not ${sae.hookName}`);
  return Number(m[1]);
}

function checkOptions(sae: Sae, T: number, o: FeatureSweepOptions): { k: number; positions: number[]; use: SaeUse } {
  const k = o.k ?? 5;
  if (!Number.isInteger(k) || k < 1 || k > sae.config.d_sae) throw new Error(`k must be an integer in 1 .. ${sae.config.d_sae}, got ${k}`);
  const positions = o.positions ? [...o.positions] : [...Array(T).keys()];
  for (const p of positions) if (!Number.isInteger(p) || p < 0 || p >= T) throw new Error(`position ${p} is out of range 0 .. ${T - 1}`);
  return { k, positions, use: o.errorTerm === false ? sae : withErrorTerm(sae) };
}

/** Per position, the indices of the k largest `score`s that are > 0 (featureAttribution's cells too). */
const topK = topFeatures;

async function sweep(
  model: Model,
  sae: Sae,
  base: Awaited<ReturnType<typeof baseRun>>,
  features: Int32Array,
  positions: number[],
  k: number,
  hook: (f: number, p: number) => Variant['hooks'][number],
  metric: Metric,
  affine: { shift: number; scale: number },
  baseline: number,
  use: SaeUse,
  options: FeatureSweepOptions,
): Promise<{ values: Float64Array; stats: SweepStats }> {
  const layer = saeLayer(sae);
  const cells: number[] = [];
  const variants: Variant[] = [];
  features.forEach((f, i) => {
    if (f < 0) return;
    const p = positions[Math.floor(i / k)];
    cells.push(i);
    variants.push({ layer, pos: p, hooks: [hook(f, p)] });
  });
  const values = new Float64Array(features.length).fill(NaN);
  const { values: got, stats } = await runVariants(model, base, variants, metric, affine, baseline, { ...options, saes: [use] });
  cells.forEach((c, i) => (values[c] = got[i]));
  return { values, stats };
}

export async function featureAblationSweep(model: Model, sae: Sae, tokens: readonly number[], metric: Metric, options: FeatureSweepOptions = {}): Promise<FeatureGrid> {
  validateTokens([tokens], model.config);
  validateMetric(metric, tokens.length, model.config.d_vocab);
  const { k, positions, use } = checkOptions(sae, tokens.length, options);
  const acts = saeHook(sae, 'hook_sae_acts_post');
  const base = await baseRun(model, tokens, (n) => BASE_CACHE.test(n) || n === acts, metric, [use]);
  try {
    const a = await base.cache.read(acts); // [1, T, d_sae]
    const F = sae.config.d_sae;
    const features = topK((p, f) => a[p * F + f], positions, F, k);
    const { values, stats } = await sweep(model, sae, base, features, positions, k, (f, p) => zeroFeature(sae, f, { pos: p }), metric, { shift: 0, scale: 1 }, base.metric, use, options);
    return grid('feature_ablation', sae, positions, k, features, (p, f) => a[p * F + f], values, base.metric, base.metric, stats);
  } finally {
    base.release();
  }
}

export async function featurePatchingSweep(model: Model, sae: Sae, clean: readonly number[], corrupt: readonly number[], metric: Metric, options: FeatureSweepOptions = {}): Promise<FeatureGrid> {
  validateTokens([clean, corrupt], model.config);
  validateMetric(metric, clean.length, model.config.d_vocab);
  const { k, positions, use } = checkOptions(sae, clean.length, options);
  const acts = saeHook(sae, 'hook_sae_acts_post');
  const c = await baseRun(model, clean, (n) => n === acts, metric, [use]);
  try {
    const base = await baseRun(model, corrupt, (n) => BASE_CACHE.test(n) || n === acts, metric, [use]);
    try {
      const F = sae.config.d_sae;
      const [ca, xa] = [await c.cache.read(acts), await base.cache.read(acts)];
      const diff = (p: number, f: number) => Math.abs(ca[p * F + f] - xa[p * F + f]);
      const features = topK(diff, positions, F, k);
      const affine = options.normalize ? { shift: base.metric, scale: 1 / (c.metric - base.metric) } : { shift: 0, scale: 1 };
      const src = c.cache.get(acts);
      const { values, stats } = await sweep(
        model,
        sae,
        base,
        features,
        positions,
        k,
        (f, p) => patchFeature(sae, f, src, { pos: p }),
        metric,
        affine,
        (base.metric - affine.shift) * affine.scale,
        use,
        options,
      );
      return grid('feature_patching', sae, positions, k, features, (p, f) => ca[p * F + f], values, c.metric, base.metric, stats);
    } finally {
      base.release();
    }
  } finally {
    c.release();
  }
}

function grid(
  site: FeatureGrid['site'],
  sae: Sae,
  positions: number[],
  k: number,
  features: Int32Array,
  act: (p: number, f: number) => number,
  values: Float64Array,
  clean: number,
  corrupt: number,
  stats: SweepStats,
): FeatureGrid {
  const acts = Float32Array.from(features, (f, i) => (f < 0 ? 0 : act(positions[Math.floor(i / k)], f)));
  return { site, hook: asSplice(sae).sae.hookName, shape: [positions.length, k], axes: ['pos', 'rank'], positions, features, acts, values, clean, corrupt, stats };
}
