/**
 * Grids as JSON: the nested arrays and fields that `patchbay run`, `patchbay attribute --json` and
 * the other experiment commands print, written once so the command line and a spec's result agree.
 */
import type { AttributionGrid, AttributionMethod, Verification } from './attribution.ts';
import type { FeatureAttributionGrid } from './feature-attribution.ts';

/** Row-major `values` as nested arrays following `shape`. */
export function nest(values: ArrayLike<number>, shape: readonly number[]): unknown[] {
  const flat = Array.from(values);
  const build = (offset: number, dim: number): unknown[] => {
    const n = shape[dim];
    if (dim === shape.length - 1) return flat.slice(offset, offset + n);
    const stride = shape.slice(dim + 1).reduce((a, b) => a * b, 1);
    return Array.from({ length: n }, (_, i) => build(offset + i * stride, dim + 1));
  };
  return build(0, 0);
}

/** An attribution grid's fields: the estimated patched metric (`values`) and the estimates (`effects`). */
export function attributionFields(site: string, method: AttributionMethod, grid: AttributionGrid) {
  return {
    site,
    method,
    shape: grid.shape,
    axes: grid.axes,
    values: nest(grid.values, grid.shape),
    effects: nest(grid.effects, grid.shape),
    signed: grid.signed,
    clean: grid.clean,
    corrupt: grid.corrupt,
  };
}

/** A feature attribution grid's fields, over [pos, rank]; NaN (null in JSON) in empty cells. */
export function featureAttributionFields(grid: FeatureAttributionGrid) {
  return {
    site: 'features',
    method: 'atp',
    hook: grid.hook,
    shape: grid.shape,
    axes: grid.axes,
    positions: grid.positions,
    features: nest(grid.features, grid.shape),
    acts: nest(grid.acts, grid.shape),
    values: nest(grid.values, grid.shape),
    effects: nest(grid.effects, grid.shape),
    signed: true,
    clean: grid.clean,
    corrupt: grid.corrupt,
  };
}

/** The exactly verified cells and the largest distance from their estimates, when verified. */
export function verifiedFields(v: Verification | null) {
  return v ? { verified: v.cells, max_error: v.maxError } : {};
}
