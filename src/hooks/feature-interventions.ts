/**
 * Feature-level interventions: rows of the same one-table intervention machinery as every other
 * hook (`src/hooks/interventions.ts`), on an SAE's `hook_sae_acts_post`, whose last axis is
 * features (one table "head" per feature, see `src/hooks/site-layout.ts`). They act only in a
 * run that splices the SAE (`run(tokens, { saes: [withErrorTerm(sae)], hooks: [zeroFeature(sae, 7)] })`).
 *
 *   zeroFeature(sae, f)               acts[f] = 0                  (ablation)
 *   scaleFeature(sae, f, k)           acts[f] = k * acts[f]
 *   clampFeature(sae, f, v)           acts[f] = v
 *   patchFeature(sae, f, otherCache)  acts[f] = the other run's acts[f]
 *   steerFeature(sae, f, coeff)       the SAE's output hook += coeff * W_dec[f]   (Neuronpedia-style steering)
 *
 * `f` is a feature index or a list of them; `sel` picks batch rows and positions as elsewhere.
 * Steering adds the decoder direction to the model's own hook, so it works with or without the
 * SAE spliced (with the error term the addition passes through the splice unchanged).
 */
import type { ActivationCache } from './activation-cache.ts';
import { addVector, patchFrom, scaleBy, setTo, zeroAblate, type Intervention, type Selection } from './interventions.ts';
import type { Tensor } from '../gpu/tensor.ts';
import type { Sae } from '../features/sae.ts';
import type { SaeHookName } from '../model/hook-points.ts';
import type { SaeSiteName } from '../features/sae-config.ts';

/** Positions and batch rows, but not heads: the features take the head axis. */
export type FeatureSelection = Omit<Selection, 'heads'>;

type Features = number | readonly number[];

/** The full name of one of an SAE's hook points, e.g. `blocks.3.hook_resid_post.hook_sae_acts_post`. */
export const saeHook = (sae: Sae, site: SaeSiteName): SaeHookName => `${sae.hookName}.${site}`;

function features(sae: Sae, f: Features): number[] {
  const list = typeof f === 'number' ? [f] : [...f];
  for (const i of list) {
    if (!Number.isInteger(i) || i < 0 || i >= sae.config.d_sae) throw new Error(`feature ${i} is out of range for ${sae.config.source} (d_sae ${sae.config.d_sae}: 0 .. ${sae.config.d_sae - 1})`);
  }
  return list;
}

const acts = (sae: Sae) => saeHook(sae, 'hook_sae_acts_post');

export const zeroFeature = (sae: Sae, f: Features, sel: FeatureSelection = {}): Intervention => zeroAblate(acts(sae), { ...sel, heads: features(sae, f) });

export const scaleFeature = (sae: Sae, f: Features, factor: number, sel: FeatureSelection = {}): Intervention => scaleBy(acts(sae), factor, { ...sel, heads: features(sae, f) });

export const clampFeature = (sae: Sae, f: Features, value: number, sel: FeatureSelection = {}): Intervention => setTo(acts(sae), value, { ...sel, heads: features(sae, f) });

/** Patch features from another run's cache of this SAE's `hook_sae_acts_post` (rows follow `patchFrom`'s rules). */
export const patchFeature = (sae: Sae, f: Features, source: ActivationCache | Tensor, sel: FeatureSelection & { sourceBatch?: number } = {}): Intervention =>
  patchFrom(acts(sae), source, { ...sel, heads: features(sae, f) });

/** Adds coeff * W_dec[f] at the SAE's output hook (reads the decoder row from the GPU once). */
export async function steerFeature(sae: Sae, f: number, coeff: number, sel: FeatureSelection = {}): Promise<Intervention> {
  const [i] = features(sae, f);
  return addVector(sae.hookNameOut, await sae.decoderRow(i), coeff, sel);
}
