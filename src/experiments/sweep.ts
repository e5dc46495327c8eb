/**
 * Running many variants of one prompt, one batch row each, in a few resumed GPU passes.
 *
 * Every variant changes the run at or after some (layer, position). Causality makes the run
 * before that point identical to the base run, so a pass starts at layer L0 and position p0:
 * its input is the base run's resid_pre of L0 (positions >= p0), and the keys and values of
 * positions < p0 come from the base run's cache. The pass unembeds only the positions the
 * metric reads and reduces the metric on the GPU: one number per row comes back.
 *
 * Variants are grouped by start layer. Within a pass, rows are ragged: each variant's row is
 * computed from its own start position (the plan's matmuls go through a table of live rows,
 * and positions before a row's start take the base run's keys and values). The last layer
 * computes only what the metric's positions need, and a logit-difference metric unembeds just
 * its two vocabulary columns. Groups are chunked to fit the device's memory budget and binding
 * limits.
 *
 * The base run may hold a batch of prompts (the corrupted halves of N prompt pairs): each
 * variant names the row it departs from, its pass row resumes from that row's residual stream
 * and cached keys and values, and its metric may be that row's own (each pair with its own
 * answer tokens). Rows of different prompts share a pass.
 */
import type { SiteName } from '../model/hook-points.ts';
import { OutOfMemoryError, formatBytes } from '../gpu/errors.ts';
import type { Step } from '../gpu/recorder.ts';
import { ActivationCache } from '../hooks/activation-cache.ts';
import { Tensor } from '../gpu/tensor.ts';
import { validateTokens } from '../model/tokens.ts';
import { hookFn, type Intervention } from '../hooks/interventions.ts';
import type { Model } from '../hooks/model.ts';
import { scratchSizes, type ForwardPlan, type PlanShape } from '../model/forward.ts';
import { executePlan } from '../hooks/execute.ts';
import { GpuMetric, metricColumns, metricPositions, validateMetric, type Affine, type Metric, type Metrics } from '../model/metric.ts';
import { saeScratchFloats, type SaeUse } from '../hooks/splice.ts';

export interface Variant {
  /** The first layer whose computation the variant changes. */
  layer: number;
  /** The first position it changes. */
  pos: number;
  /** Its interventions; the sweep points them at the variant's batch row. */
  hooks: Intervention[];
  /** The base run's batch row (prompt) it departs from; default 0. */
  row?: number;
}

export interface SweepOptions {
  /** Called after each pass with variants done and total. */
  onProgress?: (done: number, total: number) => void;
  /** Aborting rejects the sweep with an AbortError between passes; the model stays usable. */
  signal?: AbortSignal;
  /** At most this many rows per pass (default: as many as fit the device). */
  maxRows?: number;
  /**
   * SAEs spliced into every pass (and into the base run, which `baseRun` must be given too):
   * variants may then intervene on their features (see `feature-sweeps.ts`).
   */
  saes?: readonly SaeUse[];
}

/**
 * The run every variant departs from: its prompts (one per batch row, equal lengths), and a
 * cache of resid_pre, hook_k (hook_rot_k for rotary models) and hook_v of every layer.
 */
export interface BaseRun {
  tokens: readonly (readonly number[])[];
  cache: ActivationCache;
}

/** One metric for every row, or a list with one per base row. */
function metricOfRow(metric: Metrics, rows: number): (row: number) => Metric {
  if ('kind' in metric) return () => metric as Metric;
  const list = metric as readonly Metric[];
  if (list.length !== rows) throw new Error(`${list.length} metrics for a base run of ${rows} prompts; give one metric, or one per prompt`);
  return (r) => list[r];
}

/** The base-run hook points a sweep needs. */
export const BASE_CACHE = /^blocks\.\d+\.(hook_resid_pre|attn\.hook_k|attn\.hook_rot_k|attn\.hook_v)$/;

export interface SweepStats {
  passes: number;
  /** Rows x layers computed (each variant from its own start), against a full forward per variant. */
  work: number;
  naiveWork: number;
  /** Variants known to leave the run unchanged (their patch equals what it replaces), not run. */
  unchanged: number;
}

function abortError(): Error {
  const e = new Error('the sweep was aborted');
  e.name = 'AbortError';
  return e;
}

/**
 * Values of `metric` (after `affine`) for every variant, in order. With a list of metrics, a
 * variant's is the one of its base row; `baseline` (one value, or one per base row) is the value
 * of a variant that cannot move its metric.
 */
export async function runVariants(
  model: Model,
  base: BaseRun,
  variants: readonly Variant[],
  metric: Metrics,
  affine: Affine,
  baseline: number | ArrayLike<number>,
  options: SweepOptions = {},
): Promise<{ values: Float64Array; stats: SweepStats }> {
  const cfg = model.config;
  if (options.maxRows !== undefined && !(Number.isSafeInteger(options.maxRows) && options.maxRows >= 1)) {
    throw new Error(`maxRows must be a positive integer (the most batch rows per pass), got ${options.maxRows}`);
  }
  const nBase = base.tokens.length;
  const T = base.tokens[0].length;
  const metricOf = metricOfRow(metric, nBase);
  for (let r = 0; r < nBase; r++) validateMetric(metricOf(r), T, cfg.d_vocab);
  const rowOf = (v: Variant) => {
    const r = v.row ?? 0;
    if (!Number.isInteger(r) || r < 0 || r >= nBase) throw new Error(`variant row ${r} is out of range: the base run has ${nBase} prompts`);
    return r;
  };
  const baselineOf = (r: number) => (typeof baseline === 'number' ? baseline : baseline[r]);
  const positions = metricPositions(metric);
  const columns = metricColumns(metric);
  const firstRead = positions[0];
  const lastRead = positions[positions.length - 1];
  const values = new Float64Array(variants.length);
  const stats: SweepStats = { passes: 0, work: 0, naiveWork: variants.length * cfg.n_layers * T, unchanged: 0 };

  // A change after the last position the metric reads cannot move it.
  const live: Array<{ index: number; L: number; p: number; row: number; v: Variant }> = [];
  variants.forEach((v, index) => {
    const row = rowOf(v);
    if (v.pos > lastRead) values[index] = baselineOf(row);
    else live.push({ index, L: v.layer, p: Math.min(v.pos, firstRead), row, v });
  });

  // One group per start layer. Rows are ragged: each computes only from its own start position
  // (matmuls go through a table of live rows), so positions need no bucketing.
  const groups: (typeof live)[] = [];
  for (let L = 0; L < cfg.n_layers; L++) {
    const atL = live.filter((x) => x.L === L).sort((a, b) => a.p - b.p);
    if (atL.length) groups.push(atL);
  }

  // One plan at a time, built for each chunk's row starts and freed before the next.
  let done = variants.length - live.length;
  options.onProgress?.(done, variants.length);
  for (const byLayer of groups) {
    const L0 = byLayer[0].L;
    // A JavaScript hook function sees its row's whole activation, as in a run of its own: a
    // pass with one computes every position of every row, and its last layer in full.
    const plain = !byLayer.some((x) => x.v.hooks.some((h) => h.op === 'callback'));
    const group = plain ? byLayer : byLayer.map((x) => ({ ...x, p: 0 }));
    const shape = (rows: typeof group): PlanShape => ({
      batch: rows.length,
      pos: T,
      fromLayer: L0,
      fromPos: rows[0].p, // sorted: the earliest start
      starts: plain ? rows.map((x) => x.p) : undefined,
      logitPositions: positions,
      logitTokens: columns ?? undefined,
      trimLastLayer: plain,
      pastRows: nBase > 1 ? rows.map((x) => x.row) : undefined,
    });
    const maxRows = fitRows(model, shape(group), options.maxRows, options.saes ?? []);
    const rows = Math.ceil(group.length / Math.ceil(group.length / maxRows)); // balanced chunks
    for (let start = 0; start < group.length; start += rows) {
      if (options.signal?.aborted) throw abortError();
      const chunk = group.slice(start, start + rows);
      const built = await model.buildPlan(shape(chunk));
      let plan = built;
      try {
        if (options.saes?.length)
          plan = model.splice(
            built,
            options.saes,
            chunk.flatMap((x) => x.v.hooks),
          ).plan;
        const out = await runPass(model, plan, base, chunk, metric, affine, columns);
        chunk.forEach((x, i) => (values[x.index] = out[i]));
      } finally {
        plan.destroy();
      }
      stats.passes++;
      stats.work += chunk.reduce((n, x) => n + (T - x.p), 0) * (cfg.n_layers - L0);
      done += chunk.length;
      options.onProgress?.(done, variants.length);
    }
  }
  return { values, stats };
}

/** Most rows of this pass shape that fit the memory budget and every binding. */
function fitRows(model: Model, shape: PlanShape, cap = Infinity, saes: readonly SaeUse[] = []): number {
  const gpu = model.gpu;
  const limit = Math.min(gpu.maxBinding, gpu.limits.maxBufferSize);
  const P = shape.logitPositions?.length ?? shape.pos;
  // A chunk of the first `rows` rows: they start earliest, so they have the most live rows, a
  // bound for any chunk; its past holds every prompt any chunk may read.
  const chunk = (rows: number): PlanShape => ({
    ...shape,
    batch: rows,
    starts: shape.starts?.slice(0, rows),
    pastRows: shape.pastRows && [...shape.pastRows.slice(0, rows - 1), Math.max(...shape.pastRows)],
  });
  const fits = (rows: number) => {
    const sizes = Object.values(scratchSizes(model.config, chunk(rows))).map((f) => f * 4);
    sizes.push(...saeScratchFloats(saes, rows * (shape.pos - (shape.fromPos ?? 0))).map((f) => f * 4));
    // Per pass besides the plan: the metric's log-sum-exp and output, the intervention table
    // (one 32-byte entry per row for a patch) and small uniforms.
    const extra = [rows * P * 4, rows * 4, rows * 32 * 4, 4096];
    return sizes.every((b) => b <= limit) && gpu.pool.bytesFor([...sizes, ...extra]) <= gpu.pool.availableBytes;
  };
  let lo = 0;
  let hi = Math.min(shape.batch, cap);
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  if (lo === 0) {
    const bytes = Object.values(scratchSizes(model.config, chunk(1))).reduce((n, f) => n + f * 4, 0);
    throw new OutOfMemoryError(`one row of this sweep needs ${formatBytes(bytes)} of GPU memory but ${formatBytes(Math.max(0, gpu.pool.availableBytes))} is available`);
  }
  return lo;
}

/**
 * The copies that start a resumed pass from a base run: each batch row's input (resid_pre of
 * the start layer, from the pass's first position, of the base prompt `rowOf[b]`, default 0)
 * and the keys and values of positions before the rows' starts at every later layer, for every
 * base prompt the pass reads. A pass from layer 0, position 0 gets the base tokens instead.
 */
export function resumeSteps(model: Model, plan: ForwardPlan, base: BaseRun, rows: number, rowOf: readonly number[] = Array<number>(rows).fill(0)): Step[] {
  const { d_model: C, n_key_value_heads: Hkv, d_head: dh, n_layers } = model.config;
  const T = plan.pos;
  const Tn = T - plan.fromPos;
  const before: Step[] = [];
  if (plan.input) {
    const resid = base.cache.get(`blocks.${plan.fromLayer}.hook_resid_pre`); // [base rows, T, C]
    for (let b = 0; b < rows; b++) {
      before.push({ kind: 'copy', src: resid.buffer, srcOffset: (rowOf[b] * T + plan.fromPos) * C * 4, dst: plan.input, dstOffset: b * Tn * C * 4, size: Tn * C * 4 });
    }
  } else {
    const ids = new Uint32Array(rows * T);
    for (let b = 0; b < rows; b++) ids.set(base.tokens[rowOf[b]], b * T);
    model.gpu.device.queue.writeBuffer(plan.ids!, 0, ids);
  }
  for (let l = plan.fromLayer; plan.pastLen > 0 && l < n_layers; l++) {
    const past = plan.past.get(l)!;
    const size = plan.pastLen * Hkv * dh * 4;
    const k = base.cache.get(`blocks.${l}.${plan.pastHooks.k}`).buffer; // [base rows, T, Hkv, dh]
    const v = base.cache.get(`blocks.${l}.${plan.pastHooks.v}`).buffer;
    for (let r = 0; r < plan.pastBatch; r++) {
      const srcOffset = r * T * Hkv * dh * 4;
      before.push({ kind: 'copy', src: k, srcOffset, dst: past.k, dstOffset: r * size, size });
      before.push({ kind: 'copy', src: v, srcOffset, dst: past.v, dstOffset: r * size, size });
    }
  }
  return before;
}

/** One resumed pass: rows = variants, each with its own interventions. Returns the metric per row. */
async function runPass(
  model: Model,
  plan: ForwardPlan,
  base: BaseRun,
  rows: ReadonlyArray<{ v: Variant; row: number }>,
  metric: Metrics,
  affine: Affine,
  columns: number[] | null,
): Promise<Float32Array> {
  const rowOf = rows.map((x) => x.row);
  const before = resumeSteps(model, plan, base, rows.length, rowOf);
  const hooks = rows.flatMap((x, b) => x.v.hooks.map((h) => atRow(h, b)));
  const compiled = await model.compileHooks(plan, hooks);
  const m = new GpuMetric(model.gpu, metric, plan.logits!, rows.length, plan.logitPositions, model.config.d_vocab, affine, columns, 'kind' in metric ? undefined : rowOf);
  try {
    await executePlan(model.gpu, plan, {
      hooks: compiled,
      before,
      after: m.dispatches,
      label: `sweep pass from ${plan.fromLayer}.${plan.fromPos}`,
      assertLive: () => model.assertLive(),
    });
    const out = await m.out.read();
    model.assertLive(); // destroyed while the pass ran: its values were computed on freed weights
    return out;
  } finally {
    compiled.release();
    m.release();
  }
}

/**
 * `iv` pointed at batch row `b` of a pass. A hook function is given only that row, shaped
 * [1, ...], so it sees what it would see in a run of the variant alone.
 */
function atRow(iv: Intervention, b: number): Intervention {
  if (iv.op !== 'callback') return { ...iv, batch: b };
  const fn = iv.fn;
  return hookFn(iv.hook, (x, ctx) => {
    const n = x.length / ctx.shape[0]; // elements per batch row
    const row = x.slice(b * n, (b + 1) * n);
    const out = fn(row, { hook: ctx.hook, shape: [1, ...ctx.shape.slice(1)] }) ?? row;
    if (out.length !== n) throw new Error(`hook function at ${ctx.hook} returned ${out.length} values; its activation has ${n}`);
    x.set(out, b * n);
  });
}

/**
 * A sweep's unpatched run of one prompt, or of a batch of equal-length prompts: the cache a
 * sweep needs (`keep`) and the metric of each row (a list of metrics: row b's own), with the
 * unembedding limited to what the metric reads (its positions; for a logit difference, its
 * vocabulary columns). Every hook point kept holds all positions, as in `model.run`.
 */
export async function baseRun(
  model: Model,
  prompts: readonly number[] | readonly (readonly number[])[],
  keep: (name: SiteName) => boolean,
  metric: Metrics,
  saes: readonly SaeUse[] = [],
): Promise<BaseRun & { metric: number; metrics: Float64Array; release(): void }> {
  const tokens = (typeof prompts[0] === 'number' ? [prompts] : prompts) as readonly (readonly number[])[];
  const { batch: B, pos: T } = validateTokens(tokens, model.config);
  const metricOf = metricOfRow(metric, B);
  for (let b = 0; b < B; b++) validateMetric(metricOf(b), T, model.config.d_vocab);
  const columns = metricColumns(metric);
  const built = await model.buildPlan({ batch: B, pos: T, logitPositions: metricPositions(metric), logitTokens: columns ?? undefined });
  let plan = built;
  const tensors = new Map<string, Tensor>();
  let m: GpuMetric | null = null;
  try {
    if (saes.length) plan = model.splice(built, saes).plan;
    for (const site of plan.sites.values()) if (keep(site.name)) tensors.set(site.name, Tensor.empty(model.gpu, site.shape, site.name));
    model.gpu.device.queue.writeBuffer(plan.ids!, 0, new Uint32Array(tokens.flat()));
    m = new GpuMetric(model.gpu, metric, plan.logits!, B, plan.logitPositions, model.config.d_vocab, { shift: 0, scale: 1 }, columns);
    await executePlan(model.gpu, plan, { keep: tensors, after: m.dispatches, label: 'sweep base run' });
    const metrics = Float64Array.from(await m.out.read());
    const cache = new ActivationCache(tensors, { tokens, model });
    return { tokens, cache, metric: metrics[0], metrics, release: () => cache.release() };
  } catch (e) {
    for (const t of tensors.values()) t.release();
    throw e;
  } finally {
    m?.release();
    plan.destroy();
  }
}
