/**
 * Runs with an SAE spliced in, as the feature figures show them: the page's head ablations
 * (zero or mean, as `runHeadAblation` does them) and the reader's feature ablations and steering.
 * The reader's state (which features, how hard) lives in the figures' `FeatureSession`; this
 * file asks it only for the splice and the interventions.
 */
import type { Intervention } from '../hooks/interventions.ts';
import { saeHook } from '../hooks/feature-interventions.ts';
import type { CacheFilter, Model, RunResult } from '../hooks/model.ts';
import type { SaeUse } from '../hooks/splice.ts';
import type { Sae } from '../features/sae.ts';
import { runHeadAblation, type AblationMode, type HeadRef } from './ablation.ts';

/** A feature experiment: an SAE, how it enters a run, and the interventions the reader asked for. */
export interface FeatureExperiment {
  sae: Sae | null;
  splice(): SaeUse;
  hooks(what: { ablate: boolean; steer: boolean }): Promise<Intervention[]>;
}

/**
 * The prompt through the model with the SAE spliced, `heads` ablated and, as asked, the
 * experiment's feature ablations and steering.
 */
export async function runWithFeatures(
  model: Model,
  fx: FeatureExperiment,
  ids: readonly number[],
  heads: readonly HeadRef[],
  mode: AblationMode,
  what: { ablate: boolean; steer: boolean; cache?: CacheFilter },
): Promise<RunResult> {
  const hooks = await fx.hooks(what);
  const { ablated } = await runHeadAblation(model, [ids], heads, { mode, hooks, saes: [fx.splice()], ...(what.cache ? { cache: what.cache } : {}) });
  return ablated;
}

/** The SAE's feature activations [pos, d_sae] on the prompt (no feature interventions). */
export async function featureActivations(model: Model, fx: FeatureExperiment, ids: readonly number[], heads: readonly HeadRef[], mode: AblationMode): Promise<Float32Array> {
  if (!fx.sae) throw new Error('featureActivations: no SAE is loaded');
  const name = saeHook(fx.sae, 'hook_sae_acts_post');
  const run = await runWithFeatures(model, fx, ids, heads, mode, { ablate: false, steer: false, cache: [name] });
  try {
    return await run.cache.read(name);
  } finally {
    run.release();
  }
}
