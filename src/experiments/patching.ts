/**
 * Activation patching sweeps, as TransformerLens' `patching` module computes them: run the
 * corrupted prompt with one activation replaced by the clean run's, for every cell of a grid,
 * and record a metric. Here every cell is a batch row of a resumed pass (see `sweep.ts`).
 * Grids have TransformerLens' shapes and axis order (its functions, under their own names, are
 * in `act-patch.ts`):
 *
 *   site                grid axes                          patched (TransformerLens' function)
 *   resid_pre           [layer, pos]                       blocks.L.hook_resid_pre[:, p]  (get_act_patch_resid_pre)
 *   resid_mid           [layer, pos]                       blocks.L.hook_resid_mid[:, p]  (get_act_patch_resid_mid)
 *   resid_post          [layer, pos]                       blocks.L.hook_resid_post[:, p] (Patchbay only)
 *   attn_out            [layer, pos]                       blocks.L.hook_attn_out[:, p]   (get_act_patch_attn_out)
 *   mlp_out             [layer, pos]                       blocks.L.hook_mlp_out[:, p]    (get_act_patch_mlp_out)
 *   block_every         [component, layer, pos]            resid_pre, attn_out, mlp_out   (get_act_patch_block_every)
 *   z | q | k | v       [layer, head]                      blocks.L.attn.hook_X[:, :, h]  (get_act_patch_attn_head_{out,q,k,v}_all_pos)
 *   pattern             [layer, head]                      blocks.L.attn.hook_pattern[:, h] (..._pattern_all_pos)
 *   z_by_pos | q_by_pos | k_by_pos | v_by_pos
 *                       [layer, pos, head]                 blocks.L.attn.hook_X[:, p, h]  (..._{out,q,k,v}_by_pos)
 *   pattern_by_pos      [layer, head, dest_pos]            blocks.L.attn.hook_pattern[:, h, p] (..._pattern_by_pos)
 *   pattern_dest_src    [layer, head, dest_pos, src_pos]   blocks.L.attn.hook_pattern[:, h, p, s] (..._pattern_dest_src_pos)
 *   head_all_pos_every  [component, layer, head]           z, q, k, v, pattern all_pos     (get_act_patch_attn_head_all_pos_every)
 *   head_by_pos_every   [component, layer, pos, head]      z, q, k, v, pattern by_pos      (get_act_patch_attn_head_by_pos_every)
 *
 * Keys and values have the key/value heads (fewer with grouped-query attention); in the two
 * `_every` grids their rows are padded to n_heads with 0, as TransformerLens pads them.
 *
 * Clean and corrupted may be single prompts or batches of N pairs: each pair is patched on its
 * own (clean row n into corrupted row n), and a cell's value is the metric reduced over the
 * pairs (the mean unless `reduce` says otherwise), as TransformerLens' patching reduces a
 * batch-mean metric. The rows of all pairs of all cells go through the same passes.
 */
import type { Model } from '../hooks/model.ts';
import { ActivationCache } from '../hooks/activation-cache.ts';
import { patchFrom, type Selection } from '../hooks/interventions.ts';
import { validateMetric, type Metric, type Metrics } from '../model/metric.ts';
import type { BlockHookSuffix, HookName, SiteNameLike } from '../model/hook-points.ts';
import { BASE_CACHE, baseRun, runVariants, type SweepOptions, type SweepStats, type Variant } from './sweep.ts';

const RESID_SITES = { resid_pre: 'hook_resid_pre', resid_mid: 'hook_resid_mid', resid_post: 'hook_resid_post', attn_out: 'hook_attn_out', mlp_out: 'hook_mlp_out' } as const;
const HEAD_SITES = { z: 'hook_z', q: 'hook_q', k: 'hook_k', v: 'hook_v', pattern: 'hook_pattern' } as const;
/** The five head activations of the `_every` grids, in TransformerLens' order. */
const EVERY_HEAD = ['z', 'q', 'k', 'v', 'pattern'] as const;

export type PatchSite = keyof typeof RESID_SITES | 'block_every' | keyof typeof HEAD_SITES | `${keyof typeof HEAD_SITES}_by_pos` | 'pattern_dest_src' | 'head_all_pos_every' | 'head_by_pos_every';

export const PATCH_SITES: readonly PatchSite[] = [
  ...(Object.keys(RESID_SITES) as PatchSite[]),
  'block_every',
  ...(Object.keys(HEAD_SITES) as PatchSite[]),
  ...(Object.keys(HEAD_SITES).map((s) => `${s}_by_pos`) as PatchSite[]),
  'pattern_dest_src',
  'head_all_pos_every',
  'head_by_pos_every',
];

/** One prompt (token ids) or a batch of equal-length prompts. */
export type Prompts = readonly number[] | readonly (readonly number[])[];

/** How a cell's values over the pairs of a batch become one number. */
export type Reduction = 'mean' | 'sum' | ((perPair: Float64Array) => number);

export interface PatchingOptions extends SweepOptions {
  /** Report (m - m_corrupt) / (m_clean - m_corrupt) instead of m (after reducing over the pairs). */
  normalize?: boolean;
  /** Over a batch of pairs: 'mean' (default), 'sum', or a function of the N per-pair values. */
  reduce?: Reduction;
}

export interface Grid {
  site: PatchSite;
  shape: number[];
  axes: string[];
  /** Row-major over `shape`. */
  values: Float64Array;
  /** The metric on the clean and corrupted prompts, unpatched (reduced over the pairs). */
  clean: number;
  corrupt: number;
  stats: SweepStats;
}

/** A cell of a grid: one patch (a hook, its selection, the first layer and position it changes), or a fixed value (padding). */
export type Cell = { hook: HookName; layer: number; pos: number; sel: Selection } | { constant: number };

export interface Cells {
  shape: number[];
  axes: string[];
  /** Every hook point a cell patches. */
  hooks: HookName[];
  /** Row-major over `shape`. */
  cells: Cell[];
}

const range = (n: number) => [...Array(n).keys()];

/** The grid of `site`: its shape, axis names and cells in row-major order. */
export function gridCells(model: Model, site: PatchSite, T: number): Cells {
  const { n_layers: L, n_heads: H, n_key_value_heads: Hkv } = model.config;
  const layers = range(L);
  const positions = range(T);
  const headName = (l: number, s: keyof typeof HEAD_SITES): HookName => `blocks.${l}.attn.${HEAD_SITES[s]}`;
  // Keys and values have the key/value heads.
  const headsOf = (s: keyof typeof HEAD_SITES) => (s === 'k' || s === 'v' ? Hkv : H);
  const residCells = (hook: BlockHookSuffix): Cell[] => layers.flatMap((l) => positions.map((p) => ({ hook: `blocks.${l}.${hook}`, layer: l, pos: p, sel: { pos: p } })));
  /** [layer, head] over all positions, padded to `width` heads with 0. */
  const allPos = (s: keyof typeof HEAD_SITES, width = headsOf(s)): Cell[] =>
    layers.flatMap((l) => range(width).map((h): Cell => (h < headsOf(s) ? { hook: headName(l, s), layer: l, pos: 0, sel: { heads: [h] } } : { constant: 0 })));
  /** [layer, pos, head] at one position (the query position for patterns), padded likewise. */
  const byPos = (s: keyof typeof HEAD_SITES, width = headsOf(s)): Cell[] =>
    layers.flatMap((l) => positions.flatMap((p) => range(width).map((h): Cell => (h < headsOf(s) ? { hook: headName(l, s), layer: l, pos: p, sel: { heads: [h], pos: p } } : { constant: 0 }))));

  if (site in RESID_SITES) {
    const hook = RESID_SITES[site as keyof typeof RESID_SITES];
    return { shape: [L, T], axes: ['layer', 'pos'], hooks: layers.map((l): HookName => `blocks.${l}.${hook}`), cells: residCells(hook) };
  }
  if (site === 'block_every') {
    const parts = ['hook_resid_pre', 'hook_attn_out', 'hook_mlp_out'] as const;
    return { shape: [3, L, T], axes: ['component', 'layer', 'pos'], hooks: parts.flatMap((h) => layers.map((l): HookName => `blocks.${l}.${h}`)), cells: parts.flatMap(residCells) };
  }
  const everyHooks = EVERY_HEAD.flatMap((s) => layers.map((l) => headName(l, s)));
  if (site === 'head_all_pos_every') {
    return { shape: [5, L, H], axes: ['component', 'layer', 'head'], hooks: everyHooks, cells: EVERY_HEAD.flatMap((s) => allPos(s, H)) };
  }
  if (site === 'head_by_pos_every') {
    return { shape: [5, L, T, H], axes: ['component', 'layer', 'pos', 'head'], hooks: everyHooks, cells: EVERY_HEAD.flatMap((s) => byPos(s, H)) };
  }
  if (site === 'pattern_dest_src') {
    const cells = layers.flatMap((l) =>
      range(H).flatMap((h) => positions.flatMap((d) => positions.map((s): Cell => ({ hook: headName(l, 'pattern'), layer: l, pos: d, sel: { heads: [h], pos: d, keyPos: s } })))),
    );
    return { shape: [L, H, T, T], axes: ['layer', 'head', 'dest_pos', 'src_pos'], hooks: layers.map((l) => headName(l, 'pattern')), cells };
  }
  const base = site.replace(/_by_pos$/, '') as keyof typeof HEAD_SITES;
  const hooks = layers.map((l) => headName(l, base));
  if (!site.endsWith('_by_pos')) return { shape: [L, headsOf(base)], axes: ['layer', 'head'], hooks, cells: allPos(base) };
  if (base === 'pattern') {
    // TransformerLens orders this one [layer, head, dest_pos].
    const cells = layers.flatMap((l) => range(H).flatMap((h) => positions.map((p): Cell => ({ hook: headName(l, 'pattern'), layer: l, pos: p, sel: { heads: [h], pos: p } }))));
    return { shape: [L, H, T], axes: ['layer', 'head', 'dest_pos'], hooks, cells };
  }
  return { shape: [L, T, headsOf(base)], axes: ['layer', 'pos', 'head'], hooks, cells: byPos(base) };
}

/** `p` as a list of rows. */
function rowsOf(p: Prompts): readonly (readonly number[])[] {
  return (p.length > 0 && typeof p[0] === 'number' ? [p] : p) as readonly (readonly number[])[];
}

/** The reduction over pairs as a function. */
function reducer(r: Reduction = 'mean'): (v: Float64Array) => number {
  if (r === 'mean') return (v) => v.reduce((s, x) => s + x, 0) / v.length;
  if (r === 'sum') return (v) => v.reduce((s, x) => s + x, 0);
  if (typeof r === 'function') return r;
  throw new Error(`unknown reduction "${String(r)}"; use mean, sum or a function of the per-pair values`);
}

const same = (a: readonly number[], b: readonly number[]) => a.every((t, i) => t === b[i]);

/**
 * Patches `site` of the clean run into the corrupted one over the whole grid. `clean` is the
 * clean prompt(s), or (as TransformerLens' functions take it) the ActivationCache of a run on
 * them (`model.runWithCache(clean)`), whose activations are then the ones patched in.
 * `metric`: one for every pair, or one per pair (each pair with its own answer tokens).
 */
export async function patchingSweep(model: Model, clean: Prompts | ActivationCache, corrupt: Prompts, site: PatchSite, metric: Metrics, options: PatchingOptions = {}): Promise<Grid> {
  if (!PATCH_SITES.includes(site)) throw new Error(`unknown patching site "${site}"; the sites are ${PATCH_SITES.join(', ')}`);
  const given = clean instanceof ActivationCache ? clean : null;
  if (given && !given.tokens) throw new Error('this ActivationCache does not record the prompts it was run on; pass the clean token ids instead');
  const cleanRows = given ? given.tokens! : rowsOf(clean as Prompts);
  const corruptRows = rowsOf(corrupt);
  const N = corruptRows.length;
  if (N === 0) throw new Error('no corrupted prompt given');
  if (cleanRows.length !== N) throw new Error(`${cleanRows.length} clean prompts and ${N} corrupted ones: patching needs one clean prompt per corrupted prompt`);
  const T = cleanRows[0].length;
  for (let n = 0; n < N; n++) {
    const pair = N > 1 ? ` of pair ${n}` : '';
    if (cleanRows[n].length !== corruptRows[n].length || cleanRows[n].length !== T) {
      throw new Error(
        `the clean and corrupted prompts${pair} must have the same length as every other prompt (${cleanRows[n].length} and ${corruptRows[n].length} tokens${N > 1 ? `; the first clean prompt has ${T}` : ''})`,
      );
    }
    if (same(cleanRows[n], corruptRows[n])) {
      throw new Error(`the clean and corrupted prompts${pair} are identical, so patching one into the other cannot change anything; give a corrupted prompt that differs`);
    }
  }
  const metrics: readonly Metric[] = 'kind' in metric ? Array<Metric>(N).fill(metric as Metric) : (metric as readonly Metric[]);
  if (metrics.length !== N) throw new Error(`${metrics.length} metrics for ${N} prompt pairs; give one metric, or one per pair`);
  for (const m of metrics) validateMetric(m, T, model.config.d_vocab);
  const reduce = reducer(options.reduce);
  const grid = gridCells(model, site, T);
  const shapes = new Set(model.hookNames());
  for (const h of grid.hooks) if (!shapes.has(h)) throw new Error(`site ${site} patches ${h}, which this model (${model.config.architecture}) does not have`);
  const need = new Set<string>(grid.hooks);
  if (given) {
    for (const h of need) if (!given.has(h)) throw new Error(`the clean ActivationCache has no ${h}, which site ${site} patches; cache it (runWithCache caches every hook point)`);
    if (given.get(grid.hooks[0]).shape[0] !== N) throw new Error(`the clean ActivationCache holds ${given.get(grid.hooks[0]).shape[0]} prompts, not ${N}`);
  }

  const cleanRun = await baseRun(model, cleanRows, (n) => !given && need.has(n), metric);
  try {
    // The corrupted run also keeps the grid's hook points, to find cells whose patch changes nothing.
    const corruptRun = await baseRun(model, corruptRows, (n) => BASE_CACHE.test(n) || need.has(n), metric);
    try {
      const source = given ?? cleanRun.cache;
      const mClean = reduce(cleanRun.metrics);
      const mCorrupt = reduce(corruptRun.metrics);
      if (options.normalize && !(mClean !== mCorrupt && Number.isFinite(mClean) && Number.isFinite(mCorrupt))) {
        throw new Error(`normalize: the clean and corrupted metrics are ${mClean} and ${mCorrupt}; ` + '(m - m_corrupt) / (m_clean - m_corrupt) is undefined when they are equal (or not finite)');
      }
      // Every cell once per pair: rows = cells x pairs, pair n patched from clean row n into corrupted row n.
      const patches = grid.cells.flatMap((c, cell) => ('constant' in c ? [] : range(N).map((n) => ({ cell, n, c }))));
      const variants: Variant[] = patches.map(({ n, c }) => ({ layer: c.layer, pos: c.pos, row: n, hooks: [patchFrom(c.hook, source, { ...c.sel, sourceBatch: n })] }));
      // A cell starts where its patch first changes a value; one that changes none is not run.
      const firstChange = await firstChanges(variants, source, corruptRun.cache);
      const unchanged = firstChange.map((p) => p === Infinity);
      const run = variants.flatMap((v, i) => (unchanged[i] ? [] : [{ ...v, pos: Math.max(v.pos, firstChange[i]) }]));
      const skipped = variants.length - run.length;
      const onProgress = options.onProgress && ((done: number, total: number) => options.onProgress!(done + skipped, total + skipped));
      const { values: ran, stats } = await runVariants(model, corruptRun, run, metric, { shift: 0, scale: 1 }, corruptRun.metrics, { ...options, onProgress });
      // Per pair: the patched run's metric, or the corrupted run's where the patch changed nothing.
      const perPair = grid.cells.map(() => new Float64Array(N));
      let j = 0;
      patches.forEach(({ cell, n }, i) => (perPair[cell][n] = unchanged[i] ? corruptRun.metrics[n] : ran[j++]));
      const norm = (m: number) => (options.normalize ? (m - mCorrupt) / (mClean - mCorrupt) : m);
      const values = Float64Array.from(grid.cells, (c, i) => ('constant' in c ? c.constant : norm(reduce(perPair[i]))));
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
  const read = async (hook: SiteNameLike) => {
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
    if (v.hooks.length !== 1 || h.op !== 'replace' || h.source !== clean || h.batch !== undefined) {
      out.push(v.pos);
      continue;
    }
    const [a, b] = await read(h.hook);
    const shape = clean.get(h.hook).shape;
    const perRow = a.length / shape[0];
    const rowA = a.subarray((h.sourceBatch ?? 0) * perRow, ((h.sourceBatch ?? 0) + 1) * perRow);
    const rowB = b.subarray((v.row ?? 0) * perRow, ((v.row ?? 0) + 1) * perRow);
    out.push(firstDifference(rowA, rowB, shape, h.hook, h));
  }
  return out;
}

const list = (x: number | readonly number[] | undefined, n: number): readonly number[] => (x === undefined ? [...Array(n).keys()] : typeof x === 'number' ? [x] : x);

/** The first selected position (query position for attention maps) where one row of an activation's two versions differ in any bit. */
function firstDifference(a: Uint32Array, b: Uint32Array, shape: readonly number[], hook: string, sel: Selection): number {
  const same = (start: number, n: number) => {
    for (let i = start; i < start + n; i++) if (a[i] !== b[i]) return false;
    return true;
  };
  let differs: (p: number) => boolean;
  let T: number;
  if (/hook_(pattern|attn_scores)$/.test(hook)) {
    const [, H, Tq, Tk] = shape; // [batch, head, query pos, key pos]
    T = Tq;
    const keys = list(sel.keyPos, Tk);
    differs = (q) => !list(sel.heads, H).every((h) => keys.every((k) => same((h * Tq + q) * Tk + k, 1)));
  } else if (shape.length === 4) {
    const [, Tp, H, d] = shape; // [batch, pos, head, d_head]
    T = Tp;
    differs = (p) => !list(sel.heads, H).every((h) => same((p * H + h) * d, d));
  } else {
    T = shape[1];
    const width = a.length / T; // [pos, ...] of one row
    differs = (p) => !same(p * width, width);
  }
  const first = [...list(sel.pos, T)].sort((x, y) => x - y).find(differs);
  return first ?? Infinity;
}
