/**
 * Interventions: what a run does to an activation at a hook point, as data.
 *
 * Each names a TransformerLens hook point and, optionally, which batch rows, positions and heads
 * it touches (all by default). Different rows may carry different interventions in one pass.
 * They live for one `run` only: nothing is attached to the model.
 *
 *   zero      x = 0                                  (zero-ablation)
 *   mean      x = mean of a reference cache          (mean-ablation; per position, or pooled)
 *   replace   x = the same hook in another run       (activation patching)
 *   scale     x = factor * x
 *   set       x = value                              (clamping, e.g. an SAE feature)
 *   add       x = x + coeff * vector                 (steering)
 *   callback  x = fn(x)                              (slow path: reads back, splits the pass)
 *
 * At a hook point, interventions apply in the order given, then the cache (if asked) stores the
 * result, as TransformerLens' `run_with_cache` inside `hooks(...)` does.
 */
import type { Tensor } from '../gpu/tensor.ts';
import type { ActivationCache } from './activation-cache.ts';
import type { SiteName, SiteNameLike } from '../model/hook-points.ts';

export interface Selection {
  /** Batch rows (default: all). */
  batch?: number | readonly number[];
  /** Positions (default: all). For hook_pattern / hook_attn_scores: query positions. */
  pos?: number | readonly number[];
  /**
   * Heads, on per-head hooks only (default: all). On an SAE's feature hooks
   * (`….hook_sae_acts_pre` / `_post`) this axis is the features (see `src/hooks/feature-interventions.ts`).
   */
  heads?: number | readonly number[];
  /** Key positions, on hook_pattern / hook_attn_scores only (default: all): patches single (query, key) entries. */
  keyPos?: number | readonly number[];
}

/**
 * A hook function for the slow path. Receives the activation (a CPU copy, full shape, batch
 * first) and returns a replacement of the same length, or nothing after editing it in place.
 */
export type HookFn = (activation: Float32Array, ctx: { hook: SiteName; shape: readonly number[] }) => Float32Array | void;

export type Intervention =
  | ({ hook: SiteNameLike; op: 'zero' } & Selection)
  | ({ hook: SiteNameLike; op: 'mean'; reference: ActivationCache; pooled?: boolean } & Selection)
  | ({ hook: SiteNameLike; op: 'replace'; source: ActivationCache | Tensor; sourceBatch?: number } & Selection)
  | ({ hook: SiteNameLike; op: 'scale'; factor: number } & Selection)
  | ({ hook: SiteNameLike; op: 'set'; value: number } & Selection)
  | ({ hook: SiteNameLike; op: 'add'; vector: ArrayLike<number>; coeff?: number } & Selection)
  | { hook: SiteNameLike; op: 'callback'; fn: HookFn };

/** Zero-ablate `hook` on the selection. */
export const zeroAblate = (hook: SiteNameLike, sel: Selection = {}): Intervention => ({ hook, op: 'zero', ...sel });

/**
 * Mean-ablate `hook` with its mean over the reference cache's batch, per position (the
 * reference must have this run's length) or, with `pooled`, over batch and positions.
 */
export const meanAblate = (hook: SiteNameLike, reference: ActivationCache, sel: Selection & { pooled?: boolean } = {}): Intervention => ({
  hook,
  op: 'mean',
  reference,
  ...sel,
});

/**
 * Patch `hook` from another run: the source cache's value of the same hook. Source rows follow
 * this run's rows when the batch sizes match, row 0 is broadcast when the source has one row,
 * and `sourceBatch` picks one row for all.
 */
export const patchFrom = (hook: SiteNameLike, source: ActivationCache | Tensor, sel: Selection & { sourceBatch?: number } = {}): Intervention => ({
  hook,
  op: 'replace',
  source,
  ...sel,
});

export const scaleBy = (hook: SiteNameLike, factor: number, sel: Selection = {}): Intervention => ({ hook, op: 'scale', factor, ...sel });

/** Set every selected element of `hook` to `value` (clamping). */
export const setTo = (hook: SiteNameLike, value: number, sel: Selection = {}): Intervention => ({ hook, op: 'set', value, ...sel });

/** Add `coeff * vector` (length d, or heads * d on per-head hooks) at every selected position. */
export const addVector = (hook: SiteNameLike, vector: ArrayLike<number>, coeff = 1, sel: Selection = {}): Intervention => ({
  hook,
  op: 'add',
  vector,
  coeff,
  ...sel,
});

/** A JavaScript hook function (slow: reads the activation back and splits the GPU pass). */
export const hookFn = (hook: SiteNameLike, fn: HookFn): Intervention => ({ hook, op: 'callback', fn });

/** Zero-ablate one attention head's output (`blocks.L.attn.hook_z`, head H), at every position. */
export const zeroHead = (layer: number, head: number, sel: Omit<Selection, 'heads'> = {}): Intervention => zeroAblate(`blocks.${layer}.attn.hook_z`, { ...sel, heads: [head] });

/** Mean-ablate one head's output with its mean over a reference cache. */
export const meanHead = (layer: number, head: number, reference: ActivationCache, sel: Omit<Selection, 'heads'> & { pooled?: boolean } = {}): Intervention =>
  meanAblate(`blocks.${layer}.attn.hook_z`, reference, { ...sel, heads: [head] });
