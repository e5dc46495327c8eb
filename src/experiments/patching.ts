/**
 * Activation patching sweeps, as TransformerLens' `patching` module computes them: run the
 * corrupted prompt with one activation replaced by the clean run's, for every cell of a grid,
 * and record a metric. Here every cell is a batch row of a resumed pass (see `sweep.ts`).
 *
 *   site           grid axes                  patched
 *   resid_pre      [layer, pos]               blocks.L.hook_resid_pre[:, p]
 *   resid_mid      [layer, pos]               blocks.L.hook_resid_mid[:, p]
 *   resid_post     [layer, pos]               blocks.L.hook_resid_post[:, p]
 *   attn_out       [layer, pos]               blocks.L.hook_attn_out[:, p]
 *   mlp_out        [layer, pos]               blocks.L.hook_mlp_out[:, p]
 *   block_every    [component, layer, pos]    resid_pre, attn_out, mlp_out (TL's get_act_patch_block_every)
 *   z | q | k | v | pattern
 *                  [layer, head]              blocks.L.attn.hook_X[:, :, h] at every position
 *   z_by_pos | q_by_pos | k_by_pos | v_by_pos | pattern_by_pos
 *                  [layer, head, pos]         the same at one position (for pattern: the query position)
 */
import type { Model } from '../model/model.ts';
import { patchFrom } from '../hooks/interventions.ts';
import { submitSteps } from '../gpu/recorder.ts';
import { GpuMetric, validateMetric, type Metric } from './metric.ts';
import { BASE_CACHE, runVariants, type SweepOptions, type SweepStats, type Variant } from './sweep.ts';

const RESID_SITES = { resid_pre: 'hook_resid_pre', resid_mid: 'hook_resid_mid', resid_post: 'hook_resid_post', attn_out: 'hook_attn_out', mlp_out: 'hook_mlp_out' } as const;
const HEAD_SITES = { z: 'hook_z', q: 'hook_q', k: 'hook_k', v: 'hook_v', pattern: 'hook_pattern' } as const;

export type PatchSite =
  | keyof typeof RESID_SITES
  | 'block_every'
  | keyof typeof HEAD_SITES
  | `${keyof typeof HEAD_SITES}_by_pos`;

export const PATCH_SITES: readonly PatchSite[] = [
  ...(Object.keys(RESID_SITES) as PatchSite[]),
  'block_every',
  ...(Object.keys(HEAD_SITES) as PatchSite[]),
  ...(Object.keys(HEAD_SITES).map((s) => `${s}_by_pos`) as PatchSite[]),
];

export interface PatchingOptions extends SweepOptions {
  /** Report (m - m_corrupt) / (m_clean - m_corrupt) instead of m. */
  normalize?: boolean;
}

export interface Grid {
  site: PatchSite;
  shape: number[];
  axes: string[];
  /** Row-major over `shape`. */
  values: Float64Array;
  /** The metric on the clean and corrupted prompts, unpatched. */
  clean: number;
  corrupt: number;
  stats: SweepStats;
}

/** The grid's cells as variants, with shape and axis names. */
function cells(model: Model, site: PatchSite, T: number): { shape: number[]; axes: string[]; hooks: string[]; variants: (clean: Parameters<typeof patchFrom>[1]) => Variant[] } {
  const { n_layers: L } = model.config;
  const layers = [...Array(L).keys()];
  const positions = [...Array(T).keys()];
  if (site in RESID_SITES) {
    const hook = RESID_SITES[site as keyof typeof RESID_SITES];
    return {
      shape: [L, T],
      axes: ['layer', 'pos'],
      hooks: layers.map((l) => `blocks.${l}.${hook}`),
      variants: (clean) => layers.flatMap((l) => positions.map((p) => ({ layer: l, pos: p, hooks: [patchFrom(`blocks.${l}.${hook}`, clean, { pos: p })] }))),
    };
  }
  if (site === 'block_every') {
    const parts = ['hook_resid_pre', 'hook_attn_out', 'hook_mlp_out'];
    return {
      shape: [3, L, T],
      axes: ['component', 'layer', 'pos'],
      hooks: parts.flatMap((h) => layers.map((l) => `blocks.${l}.${h}`)),
      variants: (clean) =>
        parts.flatMap((h) => layers.flatMap((l) => positions.map((p) => ({ layer: l, pos: p, hooks: [patchFrom(`blocks.${l}.${h}`, clean, { pos: p })] })))),
    };
  }
  const byPos = site.endsWith('_by_pos');
  const hook = HEAD_SITES[site.replace('_by_pos', '') as keyof typeof HEAD_SITES];
  if (!hook) throw new Error(`unknown patching site "${site}"; the sites are ${PATCH_SITES.join(', ')}`);
  const name = (l: number) => `blocks.${l}.attn.${hook}`;
  // Keys and values have the key/value heads (fewer with grouped-query attention).
  const H = hook === 'hook_k' || hook === 'hook_v' ? model.config.n_key_value_heads : model.config.n_heads;
  const heads = [...Array(H).keys()];
  if (!byPos) {
    return {
      shape: [L, H],
      axes: ['layer', 'head'],
      hooks: layers.map(name),
      variants: (clean) => layers.flatMap((l) => heads.map((h) => ({ layer: l, pos: 0, hooks: [patchFrom(name(l), clean, { heads: [h] })] }))),
    };
  }
  return {
    shape: [L, H, T],
    axes: ['layer', 'head', 'pos'],
    hooks: layers.map(name),
    variants: (clean) =>
      layers.flatMap((l) => heads.flatMap((h) => positions.map((p) => ({ layer: l, pos: p, hooks: [patchFrom(name(l), clean, { heads: [h], pos: p })] })))),
  };
}

/** Patches `site` of the clean run into the corrupted one over the whole grid. */
export async function patchingSweep(model: Model, clean: readonly number[], corrupt: readonly number[], site: PatchSite, metric: Metric, options: PatchingOptions = {}): Promise<Grid> {
  if (!PATCH_SITES.includes(site)) throw new Error(`unknown patching site "${site}"; the sites are ${PATCH_SITES.join(', ')}`);
  if (clean.length !== corrupt.length) {
    throw new Error(`the clean and corrupted prompts must have the same length (${clean.length} and ${corrupt.length} tokens)`);
  }
  const T = clean.length;
  validateMetric(metric, T, model.config.d_vocab);
  const grid = cells(model, site, T);
  const need = new Set(grid.hooks);
  const cleanRun = await model.run([clean], { cache: (n) => need.has(n) });
  const corruptRun = await model.run([corrupt], { cache: BASE_CACHE });
  try {
    const [mClean, mCorrupt] = await Promise.all([baselineMetric(model, cleanRun.logits.buffer, T, metric), baselineMetric(model, corruptRun.logits.buffer, T, metric)]);
    const affine = options.normalize ? { shift: mCorrupt, scale: 1 / (mClean - mCorrupt) } : { shift: 0, scale: 1 };
    const baseline = (mCorrupt - affine.shift) * affine.scale;
    const { values, stats } = await runVariants(model, { tokens: corrupt, cache: corruptRun.cache }, grid.variants(cleanRun.cache), metric, affine, baseline, options);
    return { site, shape: grid.shape, axes: grid.axes, values, clean: mClean, corrupt: mCorrupt, stats };
  } finally {
    cleanRun.release();
    corruptRun.release();
  }
}

/** The metric of one full run's logits [1, T, V], reduced on the GPU. */
export async function baselineMetric(model: Model, logits: GPUBuffer, T: number, metric: Metric): Promise<number> {
  const m = new GpuMetric(model.gpu, metric, logits, 1, [...Array(T).keys()], model.config.d_vocab);
  try {
    submitSteps(model.gpu, m.dispatches, 'baseline metric');
    return (await m.out.read())[0];
  } finally {
    m.release();
  }
}
