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
import type { ActivationCache } from '../hooks/activation-cache.ts';
import { patchFrom } from '../hooks/interventions.ts';
import { validateMetric, type Metric } from './metric.ts';
import { BASE_CACHE, baseRun, runVariants, type SweepOptions, type SweepStats, type Variant } from './sweep.ts';

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
  const cleanRun = await baseRun(model, clean, (n) => need.has(n), metric);
  try {
    // The corrupted run also keeps the grid's hook points, to find cells whose patch changes nothing.
    const corruptRun = await baseRun(model, corrupt, (n) => BASE_CACHE.test(n) || need.has(n), metric);
    try {
      const mClean = cleanRun.metric;
      const mCorrupt = corruptRun.metric;
      const affine = options.normalize ? { shift: mCorrupt, scale: 1 / (mClean - mCorrupt) } : { shift: 0, scale: 1 };
      const baseline = (mCorrupt - affine.shift) * affine.scale;
      // A cell starts where its patch first changes a value; one that changes none is not run.
      const variants = grid.variants(cleanRun.cache);
      const firstChange = await firstChanges(variants, cleanRun.cache, corruptRun.cache);
      const same = firstChange.map((p) => p === Infinity);
      const run = variants.flatMap((v, i) => (same[i] ? [] : [{ ...v, pos: Math.max(v.pos, firstChange[i]) }]));
      const skipped = variants.length - run.length;
      const onProgress = options.onProgress && ((done: number, total: number) => options.onProgress!(done + skipped, total + skipped));
      const { values: ran, stats } = await runVariants(model, corruptRun, run, metric, affine, baseline, { ...options, onProgress });
      const values = new Float64Array(variants.length).fill(baseline);
      let j = 0;
      variants.forEach((_, i) => {
        if (!same[i]) values[i] = ran[j++];
      });
      stats.unchanged = skipped;
      stats.naiveWork = variants.length * model.config.n_layers * T;
      return { site, shape: grid.shape, axes: grid.axes, values, clean: mClean, corrupt: mCorrupt, stats };
    } finally {
      corruptRun.release();
    }
  } finally {
    cleanRun.release();
  }
}

/**
 * Per variant, the first position at which its patch writes a value different from the one
 * already there (Infinity: none). Before it the patched run is the corrupted run bit for bit, so
 * the variant may start there; a variant that changes nothing has the corrupted baseline as its
 * value and is not run (in a prompt pair that shares a prefix: every cell before the first
 * differing token, and a head's cells start at that token). Only single patches from the clean
 * cache are examined; any other variant keeps its own start.
 */
async function firstChanges(variants: readonly Variant[], clean: ActivationCache, corrupt: ActivationCache): Promise<number[]> {
  const words = new Map<string, [Uint32Array, Uint32Array]>();
  const read = async (hook: string) => {
    let w = words.get(hook);
    if (!w) {
      const [a, b] = await Promise.all([clean.get(hook).read(), corrupt.get(hook).read()]);
      w = [new Uint32Array(a.buffer, a.byteOffset, a.length), new Uint32Array(b.buffer, b.byteOffset, b.length)];
      words.set(hook, w);
    }
    return w;
  };
  const out: number[] = [];
  for (const v of variants) {
    const [h] = v.hooks;
    if (v.hooks.length !== 1 || h.op !== 'replace' || h.source !== clean || h.batch !== undefined || h.sourceBatch !== undefined) {
      out.push(v.pos);
      continue;
    }
    const [a, b] = await read(h.hook);
    out.push(firstDifference(a, b, clean.get(h.hook).shape, h.hook, h.pos, h.heads));
  }
  return out;
}

const list = (x: number | readonly number[] | undefined, n: number): readonly number[] => (x === undefined ? [...Array(n).keys()] : typeof x === 'number' ? [x] : x);

/** The first selected position (query position for attention maps) where a one-row activation's two versions differ in any bit. */
function firstDifference(a: Uint32Array, b: Uint32Array, shape: readonly number[], hook: string, pos?: number | readonly number[], heads?: number | readonly number[]): number {
  const same = (start: number, n: number) => {
    for (let i = start; i < start + n; i++) if (a[i] !== b[i]) return false;
    return true;
  };
  let differs: (p: number) => boolean;
  let T: number;
  if (/hook_(pattern|attn_scores)$/.test(hook)) {
    const [, H, Tq, Tk] = shape; // [1, head, query pos, key pos]
    T = Tq;
    differs = (q) => !list(heads, H).every((h) => same((h * Tq + q) * Tk, Tk));
  } else if (shape.length === 4) {
    const [, Tp, H, d] = shape; // [1, pos, head, d_head]
    T = Tp;
    differs = (p) => !list(heads, H).every((h) => same((p * H + h) * d, d));
  } else {
    T = shape[1];
    const width = a.length / T; // [1, pos, ...]
    differs = (p) => !same(p * width, width);
  }
  const first = [...list(pos, T)].sort((x, y) => x - y).find(differs);
  return first ?? Infinity;
}
