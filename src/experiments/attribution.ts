/**
 * Attribution patching: every cell of a patching grid estimated at once from gradients.
 *
 *   AtP (Nanda 2022; TransformerLens' attribution patching): a cell that patches the clean
 *   activation a_clean into the corrupted run is estimated to move the metric by
 *       (a_clean - a_corrupt) . dm/da,
 *   the gradient taken on the corrupted run, summed over the elements the cell patches. One clean
 *   forward, one corrupted forward and one backward give every cell of every site.
 *
 *   AtP* (Kramár et al. 2024) adds two corrections:
 *   - the QK fix: a query or key cell changes attention scores, where a first-order estimate fails
 *     when the softmax saturates. The patched head's attention pattern is recomputed exactly
 *     (softmax of the patched scores; a single key changes one score per query row, so its row is
 *     rescaled in closed form, the paper's O(T^2) form), and only the pattern change is
 *     linearized: sum (pattern' - pattern) . dm/dpattern.
 *   - GradDrop: the direct and indirect effects of a node can cancel in its gradient. For each
 *     layer l the backward runs again with the gradient through layer l's attention and MLP
 *     outputs dropped, and the estimate is the mean of |estimate_l| over the L - 1 layers a node
 *     can be downstream of: (1 / (L - 1)) sum_l |AtP_l(n)|, an unsigned magnitude (the paper's
 *     c(n)). A node in layer l itself gets 0 from its own drop, as in the paper. Off with
 *     `gradDrop: false`, AtP* is AtP with the QK fix, signed.
 *
 * Grids have `patchingSweep`'s shapes, axes and cell order (the cells are patching's own,
 * `gridCells`, for every site it has, TransformerLens' axis orders included). `values`
 * are on the patched metric's scale (corrupted metric + estimate; AtP* with GradDrop: the
 * magnitude), `effects` the estimates themselves; `normalize` divides by (clean - corrupt).
 * `verifyTopK` re-runs the k cells with the largest estimated |effect| exactly, with the sweep
 * machinery, and reports how far the estimate was.
 */
import type { SiteName } from '../model/hook-points.ts';
import type { Model } from '../hooks/model.ts';
import type { ActivationCache } from '../hooks/activation-cache.ts';
import { patchFrom, zeroAblate, type Intervention, type Selection } from '../hooks/interventions.ts';
import { validateTokens } from '../model/tokens.ts';
import { attentionScale } from '../model/config.ts';
import { validateMetric, type Metric } from '../model/metric.ts';
import { gridCells, type Cell, type PatchSite } from './patching.ts';
import { BASE_CACHE, baseRun, runVariants, type SweepOptions, type Variant } from './sweep.ts';

export type AttributionMethod = 'atp' | 'atp*';

export interface AttributionOptions {
  method?: AttributionMethod;
  /** AtP* only: average |estimate| over layer-dropped gradients (default true). */
  gradDrop?: boolean;
  /** Report values as (m - m_corrupt) / (m_clean - m_corrupt) (a magnitude over |m_clean - m_corrupt|). */
  normalize?: boolean;
}

export interface AttributionGrid {
  site: PatchSite;
  method: AttributionMethod;
  shape: number[];
  axes: string[];
  /** Row-major over `shape`: the estimated patched metric (or, AtP* with GradDrop, the estimated |effect|). */
  values: Float64Array;
  /** The estimates of m_patched - m_corrupt (AtP* with GradDrop: of |m_patched - m_corrupt|). */
  effects: Float64Array;
  /** False when `effects` are magnitudes (AtP* with GradDrop). */
  signed: boolean;
  clean: number;
  corrupt: number;
  /** Forward and backward passes run (1 clean forward, then forward + backward per gradient). */
  passes: { forward: number; backward: number };
}

/** A cell that patches something (padding cells of the `_every` grids are constants). */
type PatchCell = Extract<Cell, { hook: string }>;

const range = (n: number) => [...Array(n).keys()];

const list = (x: number | readonly number[] | undefined, n: number): readonly number[] => (x === undefined ? range(n) : typeof x === 'number' ? [x] : x);

/**
 * sum over the cell's elements of (a - b) * g, float64. Tensors are one batch row:
 * [1, T, C], [1, T, heads, d] or (`pattern`) [1, H, Tq, Tk], where pos is the query position.
 */
export function cellDot(shape: readonly number[], sel: Selection, a: Float32Array, b: Float32Array, g: Float32Array, pattern = false): number {
  let s = 0;
  const span = (o: number, n: number) => {
    for (let i = o; i < o + n; i++) s += (a[i] - b[i]) * g[i];
  };
  if (shape.length === 3) {
    const [, T, C] = shape;
    for (const p of list(sel.pos, T)) span(p * C, C);
  } else if (pattern) {
    const [, H, Tq, Tk] = shape;
    for (const h of list(sel.heads, H))
      for (const p of list(sel.pos, Tq)) {
        if (sel.keyPos === undefined) span((h * Tq + p) * Tk, Tk);
        else for (const k of list(sel.keyPos, Tk)) span((h * Tq + p) * Tk + k, 1);
      }
  } else {
    const [, T, Hh, d] = shape;
    for (const p of list(sel.pos, T)) for (const h of list(sel.heads, Hh)) span((p * Hh + h) * d, d);
  }
  return s;
}

/** The hooks a grid's estimate reads (activations and gradients), plus the QK fix's. */
function neededHooks(model: Model, cells: readonly Cell[], qkFix: boolean): { acts: string[]; grads: string[] } {
  const hooks = [...new Set(cells.flatMap((c) => ('hook' in c ? [c.hook] : [])))];
  const acts = new Set<string>(hooks);
  const grads = new Set<string>(hooks);
  if (qkFix) {
    const rot = model.config.positional === 'rotary';
    for (const h of hooks) {
      const m = /^blocks\.(\d+)\.attn\.hook_(q|k)$/.exec(h);
      if (!m) continue;
      const L = `blocks.${m[1]}.attn`;
      for (const x of rot ? ['hook_rot_q', 'hook_rot_k'] : ['hook_q', 'hook_k']) acts.add(`${L}.${x}`);
      acts.add(`${L}.hook_pattern`);
      grads.add(`${L}.hook_pattern`);
    }
  }
  return { acts: [...acts], grads: [...grads] };
}

/** Reads a cache's tensors once. */
function reader(cache: ActivationCache): (name: SiteName) => Promise<Float32Array> {
  const memo = new Map<string, Promise<Float32Array>>();
  return (name) => {
    let p = memo.get(name);
    if (!p) {
      p = cache.get(name).read();
      memo.set(name, p);
    }
    return p;
  };
}

/**
 * The QK fix for a query or key cell: sum over the patched head's changed pattern rows of
 * (pattern' - pattern) . dm/dpattern, with pattern' the exact softmax of the patched scores.
 */
async function qkFixed(
  model: Model,
  cell: PatchCell,
  kind: 'q' | 'k',
  clean: (n: SiteName) => Promise<Float32Array>,
  corrupt: (n: SiteName) => Promise<Float32Array>,
  grad: (n: SiteName) => Promise<Float32Array>,
  T: number,
): Promise<number> {
  const { n_heads: H, n_key_value_heads: Hkv, d_head: dh } = model.config;
  const rot = model.config.positional === 'rotary';
  const L = `blocks.${cell.layer}.attn` as const;
  const qName = `${L}.${rot ? 'hook_rot_q' : 'hook_q'}` as const;
  const kName = `${L}.${rot ? 'hook_rot_k' : 'hook_k'}` as const;
  const [qc, kc, qx, kx, pat, gp] = await Promise.all([clean(qName), clean(kName), corrupt(qName), corrupt(kName), corrupt(`${L}.hook_pattern`), grad(`${L}.hook_pattern`)]);
  // The layer's own scale and mask, as its forward: query_pre_attn_scalar (Gemma 3), GPT-2's
  // inverse-layer scaling; a sliding-window layer's query i sees keys i - window < j <= i.
  const scale = attentionScale(model.config, cell.layer);
  const window = model.config.attn_types?.[cell.layer] === 'local' ? model.config.window_size! : T;
  const first = (i: number) => Math.max(0, i - window + 1);
  const per = H / Hkv;
  const dot = (q: Float32Array, i: number, h: number, k: Float32Array, j: number, g: number) => {
    let s = 0;
    const qo = (i * H + h) * dh;
    const ko = (j * Hkv + g) * dh;
    for (let d = 0; d < dh; d++) s += q[qo + d] * k[ko + d];
    return s * scale;
  };
  const heads = list(cell.sel.heads, kind === 'q' ? H : Hkv);
  const positions = cell.sel.pos === undefined ? null : list(cell.sel.pos, T);
  let total = 0;
  // Row i of head h with its scores recomputed from query set Q and key set K.
  const exactRow = (h: number, i: number, Q: Float32Array, K: Float32Array) => {
    const g = Math.floor(h / per);
    const j0 = first(i);
    const s = range(i + 1 - j0).map((j) => dot(Q, i, h, K, j0 + j, g));
    const mx = Math.max(...s);
    const e = s.map((v) => Math.exp(v - mx));
    const z = e.reduce((a, b) => a + b, 0);
    const base = (h * T + i) * T;
    let r = 0;
    for (let j = j0; j <= i; j++) r += (e[j - j0] / z - pat[base + j]) * gp[base + j];
    return r;
  };
  if (kind === 'q') {
    // A query changes only its own row.
    for (const h of heads) for (const i of positions ?? range(T)) total += exactRow(h, i, qc, kx);
    return total;
  }
  for (const g of heads) {
    for (let h = g * per; h < (g + 1) * per; h++) {
      if (!positions) {
        for (let i = 0; i < T; i++) total += exactRow(h, i, qx, kc);
        continue;
      }
      // One key j: each row i >= j has one score moved by delta; the row rescales in closed form:
      // p'_j = p_j e^delta / D, p'_k = p_k / D (k != j), D = 1 + p_j (e^delta - 1).
      for (const j of positions) {
        for (let i = j; i < Math.min(T, j + window); i++) {
          const base = (h * T + i) * T;
          const delta = dot(qx, i, h, kc, j, g) - dot(qx, i, h, kx, j, g);
          const pj = pat[base + j];
          const D = 1 + pj * Math.expm1(delta);
          let S = 0; // sum_k p_k g_k over the keys row i sees
          for (let k = first(i); k <= i; k++) S += pat[base + k] * gp[base + k];
          const pjNew = (pj * Math.exp(delta)) / D;
          total += (pjNew - pj) * gp[base + j] + (1 / D - 1) * (S - pj * gp[base + j]);
        }
      }
    }
  }
  return total;
}

/** One clean forward, one corrupted forward + backward (or one per dropped layer), and the estimate of every cell. */
export async function attributionSweep(
  model: Model,
  clean: readonly number[],
  corrupt: readonly number[],
  site: PatchSite,
  metric: Metric,
  options: AttributionOptions = {},
): Promise<AttributionGrid> {
  return (await attributionSweeps(model, clean, corrupt, [site], metric, options)).get(site)!;
}

/**
 * Several sites' grids from the same passes: one clean forward and one corrupted forward +
 * backward (AtP* with GradDrop: one per layer) for every site at once.
 */
export async function attributionSweeps(
  model: Model,
  clean: readonly number[],
  corrupt: readonly number[],
  sites: readonly PatchSite[],
  metric: Metric,
  options: AttributionOptions = {},
): Promise<Map<PatchSite, AttributionGrid>> {
  const method = options.method ?? 'atp';
  if (method !== 'atp' && method !== 'atp*') throw new Error(`unknown attribution method "${String(method)}"; use atp or atp*`);
  if (clean.length !== corrupt.length) throw new Error(`the clean and corrupted prompts must have the same length (${clean.length} and ${corrupt.length} tokens)`);
  const T = clean.length;
  validateTokens([clean, corrupt], model.config);
  validateMetric(metric, T, model.config.d_vocab);
  const grids = sites.map((site) => ({ site, ...gridCells(model, site, T) }));
  const qkFix = method === 'atp*';
  const gradDrop = method === 'atp*' && (options.gradDrop ?? true) && model.config.n_layers > 1;
  const need = neededHooks(
    model,
    grids.flatMap((g) => g.cells),
    qkFix,
  );

  const cleanRun = await baseRun(model, clean, (n) => need.acts.includes(n), metric);
  const L = model.config.n_layers;
  const runs: Array<{ grads: ActivationCache; cache: ActivationCache; release(): void }> = [];
  try {
    // The corrupted run and its gradients; with GradDrop, once more per dropped layer.
    const drops = gradDrop ? range(L) : [null];
    let mCorrupt = 0;
    for (const l of drops) {
      const gradHooks: Intervention[] = l === null ? [] : [zeroAblate(`blocks.${l}.hook_attn_out`), zeroAblate(`blocks.${l}.hook_mlp_out`)];
      const r = await model.runWithGrad([corrupt], metric, { cache: runs.length === 0 ? need.acts : [], grads: need.grads, gradHooks });
      mCorrupt = r.metric[0];
      runs.push(r);
    }
    const cleanRead = reader(cleanRun.cache);
    const corruptRead = reader(runs[0].cache);
    const gradReads = runs.map((r) => reader(r.grads));
    const mClean = cleanRun.metric;
    const out = new Map<PatchSite, AttributionGrid>();
    for (const grid of grids) {
      const estimates = runs.map(() => new Float64Array(grid.cells.length));
      for (const [ri, r] of runs.entries()) {
        for (const [ci, cell] of grid.cells.entries()) {
          if (!('hook' in cell)) {
            estimates[ri][ci] = cell.constant; // padding (the _every grids' missing key/value heads)
            continue;
          }
          const dropped = drops[ri];
          // GradDrop: a layer's own outputs get nothing from its drop (their gradient is reported
          // before the drop acts, so zero them here).
          if (dropped !== null && cell.layer === dropped && /\.hook_(attn_out|mlp_out)$/.test(cell.hook)) continue;
          const qk = /\.attn\.hook_(q|k)$/.exec(cell.hook);
          if (qkFix && qk) {
            estimates[ri][ci] = await qkFixed(model, cell, qk[1] as 'q' | 'k', cleanRead, corruptRead, gradReads[ri], T);
            continue;
          }
          const [a, b, g] = await Promise.all([cleanRead(cell.hook), corruptRead(cell.hook), gradReads[ri](cell.hook)]);
          estimates[ri][ci] = cellDot(r.grads.get(cell.hook).shape, cell.sel, a, b, g, cell.hook.endsWith('.hook_pattern'));
        }
      }
      let effects: Float64Array;
      if (gradDrop) {
        effects = new Float64Array(grid.cells.length);
        for (const e of estimates) e.forEach((v, i) => (effects[i] += Math.abs(v) / (L - 1)));
      } else effects = estimates[0];
      const signed = !gradDrop;
      const denom = options.normalize ? (signed ? mClean - mCorrupt : Math.abs(mClean - mCorrupt)) : 1;
      const values = effects.map((e) => (signed && !options.normalize ? mCorrupt + e : e / denom));
      out.set(grid.site, {
        site: grid.site,
        method,
        shape: grid.shape,
        axes: grid.axes,
        values,
        effects,
        signed,
        clean: mClean,
        corrupt: mCorrupt,
        passes: { forward: 1 + runs.length, backward: runs.length },
      });
    }
    return out;
  } finally {
    for (const r of runs) r.release();
    cleanRun.release();
  }
}

export interface VerifiedCell {
  /** Row-major index into the grid. */
  index: number;
  /** The cell's coordinates along the grid's axes. */
  coords: number[];
  estimate: number;
  /** m_patched - m_corrupt, exactly. */
  exact: number;
}

export interface Verification {
  cells: VerifiedCell[];
  /** Largest |estimate - exact| over the verified cells (for a magnitude estimate: |estimate - |exact||). */
  maxError: number;
}

/**
 * Re-runs the k cells with the largest estimated |effect| exactly (activation patching of just
 * those cells, with the sweep machinery: batched, resumed passes), and reports each cell's
 * estimate beside its exact effect.
 */
export async function verifyTopK(
  model: Model,
  clean: readonly number[],
  corrupt: readonly number[],
  grid: AttributionGrid,
  metric: Metric,
  k: number,
  options: SweepOptions = {},
): Promise<Verification> {
  const T = clean.length;
  const { cells, shape } = gridCells(model, grid.site, T);
  const live = range(cells.length).filter((i) => 'hook' in cells[i]);
  const order = live.sort((a, b) => Math.abs(grid.effects[b]) - Math.abs(grid.effects[a]) || a - b);
  const top = order.slice(0, Math.max(0, Math.min(k, order.length)));
  const patchCell = (i: number) => cells[i] as PatchCell;
  const hooks = new Set<string>(top.map((i) => patchCell(i).hook));
  const cleanRun = await baseRun(model, clean, (n) => hooks.has(n), metric);
  try {
    const corruptRun = await baseRun(model, corrupt, (n) => BASE_CACHE.test(n), metric);
    try {
      const variants: Variant[] = top.map((i) => ({ layer: patchCell(i).layer, pos: patchCell(i).pos, hooks: [patchFrom(patchCell(i).hook, cleanRun.cache, patchCell(i).sel)] }));
      const { values } = await runVariants(model, corruptRun, variants, metric, { shift: 0, scale: 1 }, corruptRun.metric, options);
      const coords = (i: number) => shape.map((_, d) => Math.floor(i / shape.slice(d + 1).reduce((a, b) => a * b, 1)) % shape[d]);
      const out = top.map((i, j) => ({ index: i, coords: coords(i), estimate: grid.effects[i], exact: values[j] - corruptRun.metric }));
      const maxError = out.reduce((m, c) => Math.max(m, Math.abs(c.estimate - (grid.signed ? c.exact : Math.abs(c.exact)))), 0);
      return { cells: out, maxError };
    } finally {
      corruptRun.release();
    }
  } finally {
    cleanRun.release();
  }
}

/** Pearson's correlation of two equal-length series (NaN when either is constant). */
export function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i] / n;
    mb += b[i] / n;
  }
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  }
  return saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : Number.NaN;
}
