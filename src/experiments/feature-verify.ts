/**
 * Checking feature attribution against exact feature patching: `verifyFeatureTopK` runs the
 * exact feature patching sweep over the attribution grid's cells (`featurePatchingSweep`: the
 * same cells by construction, each feature patched alone from the clean run into the corrupted
 * one, one batch row per cell) and reports the k cells AtP ranks largest beside their exact
 * effects, as `verifyTopK` does for activation grids. The whole exact grid comes back too
 * (figures draw it beside the estimates): at k features per position it costs k·T batch rows,
 * cheap next to the model's forward at SAE sizes.
 */
import type { Model } from '../hooks/model.ts';
import type { Sae } from '../features/sae.ts';
import type { Metric } from '../model/metric.ts';
import type { FeatureAttributionGrid } from './feature-attribution.ts';
import { featurePatchingSweep, type FeatureGrid, type FeatureSweepOptions } from './feature-sweeps.ts';
import type { Verification, VerifiedCell } from './attribution.ts';

export interface FeatureVerifiedCell extends VerifiedCell {
  /** The cell's token position and feature. */
  pos: number;
  feature: number;
}

export interface FeatureVerification extends Verification {
  cells: FeatureVerifiedCell[];
  /** The exact feature patching grid over every cell of the attribution grid (values are patched metrics). */
  exact: FeatureGrid;
}

export async function verifyFeatureTopK(
  model: Model,
  sae: Sae,
  clean: readonly number[],
  corrupt: readonly number[],
  grid: FeatureAttributionGrid,
  metric: Metric,
  k: number,
  options: Pick<FeatureSweepOptions, 'errorTerm' | 'signal' | 'onProgress'> = {},
): Promise<FeatureVerification> {
  if (!Number.isInteger(k) || k < 0) throw new Error(`k must be a non-negative integer, got ${k}`);
  const perPos = grid.shape[1];
  const exact = await featurePatchingSweep(model, sae, clean, corrupt, metric, { ...options, k: perPos, positions: grid.positions });
  // Both grids rank features by |clean - corrupt activation| from runs of the same spliced model.
  const same = exact.features.length === grid.features.length && exact.features.every((f, i) => f === grid.features[i]);
  if (!same) throw new Error('verifyFeatureTopK: the exact sweep chose other cells than the attribution grid (was the grid made with another SAE, error term or prompts?)');
  const live = [...grid.features.keys()].filter((i) => grid.features[i] >= 0);
  const top = live.sort((a, b) => Math.abs(grid.effects[b]) - Math.abs(grid.effects[a]) || a - b).slice(0, k);
  const cells = top.map((i) => ({
    index: i,
    coords: [Math.floor(i / perPos), i % perPos],
    pos: grid.positions[Math.floor(i / perPos)],
    feature: grid.features[i],
    estimate: grid.effects[i],
    exact: exact.values[i] - exact.corrupt,
  }));
  const maxError = cells.reduce((m, c) => Math.max(m, Math.abs(c.estimate - c.exact)), 0);
  return { cells, maxError, exact };
}
