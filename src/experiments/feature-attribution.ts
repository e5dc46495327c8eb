/**
 * Attribution patching over an SAE's features (AtP, Syed et al. 2023; over SAE features as in
 * Marks et al. 2024): for every feature f at every position p,
 *
 *   estimate[p, f] = (acts_clean[p, f] - acts_corrupt[p, f]) * d metric / d acts[p, f]
 *
 * the gradient taken on the corrupted run with the SAE spliced (with its error term by default,
 * so the spliced model is the model and the error holds the rest). One clean forward and one
 * corrupted forward + backward give every feature's estimate; `featurePatchingSweep` patches the
 * same cells exactly (one batch row each), and `featureAttribution`'s grid has its cells: per
 * position, the k features whose activation differs most between the two runs.
 */
import type { Model } from '../hooks/model.ts';
import type { Sae } from '../features/sae.ts';
import { saeHook } from '../hooks/feature-interventions.ts';
import { withErrorTerm, type SaeUse } from '../hooks/splice.ts';
import { validateTokens } from '../model/tokens.ts';
import { validateMetric, type Metric } from '../model/metric.ts';
import { baseRun } from './sweep.ts';

export interface FeatureAttributionOptions {
  /** Features per position in the grid (default 5): the k whose activation differs most. */
  k?: number;
  /** Splice with the error term (default true). */
  errorTerm?: boolean;
  /** Positions in the grid (default: every position). */
  positions?: readonly number[];
  /** Values as (m - m_corrupt) / (m_clean - m_corrupt). */
  normalize?: boolean;
}

export interface FeatureAttributionGrid {
  site: 'feature_attribution';
  method: 'atp';
  /** The SAE's input hook. */
  hook: string;
  shape: [number, number];
  axes: ['pos', 'rank'];
  positions: number[];
  /** [pos, k] the feature of each cell (-1 where a position has fewer than k that differ). */
  features: Int32Array;
  /** [pos, k] the feature's activation in the clean run. */
  acts: Float32Array;
  /** [pos, k] the estimated patched metric (corrupt + estimate; normalized on request); NaN for empty cells. */
  values: Float64Array;
  /** [pos, k] the estimates of m_patched - m_corrupt. */
  effects: Float64Array;
  /** [T, d_sae] every feature's estimate at every position (not only the grid's cells). */
  allEffects: Float64Array;
  clean: number;
  corrupt: number;
  passes: { forward: number; backward: number };
}

/** Per position, the indices of the k largest `score`s that are > 0, descending (ties: lower index) — featurePatchingSweep's cells. */
export function topFeatures(score: (p: number, f: number) => number, positions: readonly number[], F: number, k: number): Int32Array {
  const out = new Int32Array(positions.length * k).fill(-1);
  positions.forEach((p, i) => {
    const ranked = [...Array(F).keys()].filter((f) => score(p, f) > 0).sort((a, b) => score(p, b) - score(p, a) || a - b);
    ranked.slice(0, k).forEach((f, r) => (out[i * k + r] = f));
  });
  return out;
}

export async function featureAttribution(
  model: Model,
  sae: Sae,
  clean: readonly number[],
  corrupt: readonly number[],
  metric: Metric,
  options: FeatureAttributionOptions = {},
): Promise<FeatureAttributionGrid> {
  validateTokens([clean, corrupt], model.config);
  if (clean.length !== corrupt.length) throw new Error(`the clean and corrupted prompts must have the same length (${clean.length} and ${corrupt.length} tokens)`);
  const T = clean.length;
  validateMetric(metric, T, model.config.d_vocab);
  const F = sae.config.d_sae;
  const k = options.k ?? 5;
  if (!Number.isInteger(k) || k < 1 || k > F) throw new Error(`k must be an integer in 1 .. ${F}, got ${k}`);
  const positions = options.positions ? [...options.positions] : [...Array(T).keys()];
  for (const p of positions) if (!Number.isInteger(p) || p < 0 || p >= T) throw new Error(`position ${p} is out of range 0 .. ${T - 1}`);
  const use: SaeUse = options.errorTerm === false ? sae : withErrorTerm(sae);
  const acts = saeHook(sae, 'hook_sae_acts_post');

  const c = await baseRun(model, clean, (n) => n === acts, metric, [use]);
  try {
    const r = await model.runWithGrad([corrupt], metric, { saes: [use], cache: [acts], grads: [acts] });
    try {
      const [ca, xa, g] = [await c.cache.read(acts), await r.cache.read(acts), await r.grads.read(acts)]; // [1, T, d_sae]
      const allEffects = new Float64Array(T * F);
      for (let i = 0; i < T * F; i++) allEffects[i] = (ca[i] - xa[i]) * g[i];
      const features = topFeatures((p, f) => Math.abs(ca[p * F + f] - xa[p * F + f]), positions, F, k);
      const mClean = c.metric;
      const mCorrupt = r.metric[0];
      const effects = new Float64Array(features.length).fill(NaN);
      features.forEach((f, i) => {
        if (f >= 0) effects[i] = allEffects[positions[Math.floor(i / k)] * F + f];
      });
      const values = effects.map((e) => (options.normalize ? e / (mClean - mCorrupt) : mCorrupt + e));
      const cellActs = Float32Array.from(features, (f, i) => (f < 0 ? 0 : ca[positions[Math.floor(i / k)] * F + f]));
      return {
        site: 'feature_attribution',
        method: 'atp',
        hook: sae.hookName,
        shape: [positions.length, k],
        axes: ['pos', 'rank'],
        positions,
        features,
        acts: cellActs,
        values,
        effects,
        allEffects,
        clean: mClean,
        corrupt: mCorrupt,
        passes: { forward: 2, backward: 1 },
      };
    } finally {
      r.release();
    }
  } finally {
    c.release();
  }
}
