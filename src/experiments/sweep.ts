/**
 * Running many variants of one prompt, one batch row each, in a few resumed GPU passes.
 *
 * Every variant changes the run at or after some (layer, position). Causality makes the run
 * before that point identical to the base run, so a pass starts at layer L0 and position p0:
 * its input is the base run's resid_pre of L0 (positions >= p0), and the keys and values of
 * positions < p0 come from the base run's cache. The pass unembeds only the positions the
 * metric reads and reduces the metric on the GPU: one number per row comes back.
 *
 * Variants are grouped by start layer; within a layer, by position buckets chosen to balance
 * the work saved against the cost of another pass; groups are chunked to fit the device's
 * memory budget and binding limits.
 */
import { OutOfMemoryError, formatBytes } from '../gpu/errors.ts';
import type { Step } from '../gpu/recorder.ts';
import type { ActivationCache } from '../hooks/activation-cache.ts';
import type { Intervention } from '../hooks/interventions.ts';
import type { Model } from '../model/model.ts';
import { scratchSizes, type ForwardPlan, type PlanShape } from '../model/forward.ts';
import { executePlan } from '../model/execute.ts';
import { GpuMetric, metricPositions, validateMetric, type Affine, type Metric } from './metric.ts';

export interface Variant {
  /** The first layer whose computation the variant changes. */
  layer: number;
  /** The first position it changes. */
  pos: number;
  /** Its interventions; the sweep points them at the variant's batch row. */
  hooks: Intervention[];
}

export interface SweepOptions {
  /** Called after each pass with variants done and total. */
  onProgress?: (done: number, total: number) => void;
  /** Aborting rejects the sweep with an AbortError between passes; the model stays usable. */
  signal?: AbortSignal;
  /** At most this many rows per pass (default: as many as fit the device). */
  maxRows?: number;
}

/** The run every variant departs from: its tokens, and a cache of resid_pre, hook_k (hook_rot_k for rotary models) and hook_v of every layer. */
export interface BaseRun {
  tokens: readonly number[];
  cache: ActivationCache;
}

/** The base-run hook points a sweep needs. */
export const BASE_CACHE = /^blocks\.\d+\.(hook_resid_pre|attn\.hook_k|attn\.hook_rot_k|attn\.hook_v)$/;

export interface SweepStats {
  passes: number;
  /** Rows x layers x positions computed, against a full forward per variant. */
  work: number;
  naiveWork: number;
}

/**
 * A pass costs about this many extra rows of work (dispatch and setup overhead), used when
 * deciding whether to split a layer's variants into position buckets.
 */
const PASS_OVERHEAD_ROWS = 4;

function abortError(): Error {
  const e = new Error('the sweep was aborted');
  e.name = 'AbortError';
  return e;
}

/** Splits variants sorted by start position into buckets minimizing rows*(T - p0) + overhead per bucket. */
function positionBuckets<V extends { p: number }>(sorted: V[], T: number): V[][] {
  const n = sorted.length;
  const best = new Array<number>(n + 1).fill(Infinity);
  const cut = new Array<number>(n + 1).fill(0);
  best[0] = 0;
  for (let j = 1; j <= n; j++) {
    for (let i = 0; i < j; i++) {
      const c = best[i] + (j - i) * (T - sorted[i].p) + PASS_OVERHEAD_ROWS * T;
      if (c < best[j]) {
        best[j] = c;
        cut[j] = i;
      }
    }
  }
  const out: V[][] = [];
  for (let j = n; j > 0; j = cut[j]) out.unshift(sorted.slice(cut[j], j));
  return out;
}

/** Values of `metric` (after `affine`) for every variant, in order. */
export async function runVariants(
  model: Model,
  base: BaseRun,
  variants: readonly Variant[],
  metric: Metric,
  affine: Affine,
  baseline: number,
  options: SweepOptions = {},
): Promise<{ values: Float64Array; stats: SweepStats }> {
  const cfg = model.config;
  const T = base.tokens.length;
  validateMetric(metric, T, cfg.d_vocab);
  const positions = metricPositions(metric);
  const firstRead = positions[0];
  const lastRead = positions[positions.length - 1];
  const values = new Float64Array(variants.length);
  const stats: SweepStats = { passes: 0, work: 0, naiveWork: variants.length * cfg.n_layers * T };

  // A change after the last position the metric reads cannot move it.
  const live: Array<{ index: number; L: number; p: number; v: Variant }> = [];
  variants.forEach((v, index) => {
    if (v.pos > lastRead) values[index] = baseline;
    else live.push({ index, L: v.layer, p: Math.min(v.pos, firstRead), v });
  });

  const groups: (typeof live)[] = [];
  for (let L = 0; L < cfg.n_layers; L++) {
    const atL = live.filter((x) => x.L === L).sort((a, b) => a.p - b.p);
    if (atL.length) groups.push(...positionBuckets(atL, T));
  }

  // One plan at a time: a group's passes share it (the last chunk is padded to the same rows),
  // and it is freed before the next group's plan is built, so the budget holds one pass.
  let plan: ForwardPlan | null = null;
  let done = variants.length - live.length;
  options.onProgress?.(done, variants.length);
  try {
    for (const group of groups) {
      const L0 = group[0].L;
      const p0 = group[0].p; // sorted: the earliest start in the group
      plan?.destroy();
      plan = null;
      const shape = (batch: number): PlanShape => ({ batch, pos: T, fromLayer: L0, fromPos: p0, logitPositions: positions });
      const maxRows = fitRows(model, shape(group.length), options.maxRows);
      const rows = Math.ceil(group.length / Math.ceil(group.length / maxRows)); // balanced chunks
      for (let start = 0; start < group.length; start += rows) {
        if (options.signal?.aborted) throw abortError();
        const chunk = group.slice(start, start + rows);
        plan ??= await model.buildPlan(shape(rows));
        // Rows past the chunk's variants run the base prompt unchanged; their values are unused.
        const padded: Array<Variant | null> = [...chunk.map((x) => x.v), ...Array<null>(rows - chunk.length).fill(null)];
        const out = await runPass(model, plan, base, padded, metric, affine);
        chunk.forEach((x, i) => (values[x.index] = out[i]));
        stats.passes++;
        stats.work += rows * (cfg.n_layers - L0) * (T - p0);
        done += chunk.length;
        options.onProgress?.(done, variants.length);
      }
    }
  } finally {
    plan?.destroy();
  }
  return { values, stats };
}

/** Most rows of this pass shape that fit the memory budget and every binding. */
function fitRows(model: Model, shape: PlanShape, cap = Infinity): number {
  const gpu = model.gpu;
  const limit = Math.min(gpu.maxBinding, gpu.limits.maxBufferSize);
  const P = shape.logitPositions?.length ?? shape.pos;
  const fits = (rows: number) => {
    const sizes = Object.values(scratchSizes(model.config, { ...shape, batch: rows })).map((f) => f * 4);
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
    const bytes = Object.values(scratchSizes(model.config, { ...shape, batch: 1 })).reduce((n, f) => n + f * 4, 0);
    throw new OutOfMemoryError(
      `one row of this sweep needs ${formatBytes(bytes)} of GPU memory but ${formatBytes(Math.max(0, gpu.pool.availableBytes))} is available`,
    );
  }
  return lo;
}

/** One resumed pass: rows = variants, each with its own interventions. Returns the metric per row. */
async function runPass(model: Model, plan: ForwardPlan, base: BaseRun, rows: Array<Variant | null>, metric: Metric, affine: Affine): Promise<Float32Array> {
  const { d_model: C, n_key_value_heads: Hkv, d_head: dh, n_layers } = model.config;
  const T = plan.pos;
  const Tn = T - plan.fromPos;
  const before: Step[] = [];
  if (plan.input) {
    const resid = base.cache.get(`blocks.${plan.fromLayer}.hook_resid_pre`);
    for (let b = 0; b < rows.length; b++) {
      before.push({ kind: 'copy', src: resid.buffer, srcOffset: plan.fromPos * C * 4, dst: plan.input, dstOffset: b * Tn * C * 4, size: Tn * C * 4 });
    }
  } else {
    // Starting at layer 0, position 0 is a fresh pass: every row runs the base tokens.
    const ids = new Uint32Array(rows.length * T);
    for (let b = 0; b < rows.length; b++) ids.set(base.tokens, b * T);
    model.gpu.device.queue.writeBuffer(plan.ids!, 0, ids);
  }
  for (let l = plan.fromLayer; plan.fromPos > 0 && l < n_layers; l++) {
    const past = plan.past.get(l)!;
    const size = plan.fromPos * Hkv * dh * 4;
    before.push({ kind: 'copy', src: base.cache.get(`blocks.${l}.${plan.pastHooks.k}`).buffer, srcOffset: 0, dst: past.k, dstOffset: 0, size });
    before.push({ kind: 'copy', src: base.cache.get(`blocks.${l}.${plan.pastHooks.v}`).buffer, srcOffset: 0, dst: past.v, dstOffset: 0, size });
  }
  const hooks = rows.flatMap((v, b) => (v ? v.hooks.map((h) => ({ ...h, batch: b }) as Intervention) : []));
  const compiled = await model.compileHooks(plan, hooks);
  const m = new GpuMetric(model.gpu, metric, plan.logits, rows.length, plan.logitPositions, model.config.d_vocab, affine);
  try {
    await executePlan(model.gpu, plan, { hooks: compiled, before, after: m.dispatches, label: `sweep pass from ${plan.fromLayer}.${plan.fromPos}` });
    return await m.out.read();
  } finally {
    compiled.release();
    m.release();
  }
}
