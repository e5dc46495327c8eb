/**
 * The bench's sweep section: the 12 x 15 resid_pre grid (on a pair differing at three positions,
 * and on one differing at every position, where no cell can be skipped), the same patched runs
 * done naively (one full forward each, logits read back; `naive` of them timed and the total
 * extrapolated), and the head-output (z) grid. Each phase's pool peak is recorded.
 */
import type { Gpu } from '../src/gpu/device.ts';
import type { Model } from '../src/hooks/model.ts';
import { patchFrom } from '../src/hooks/interventions.ts';
import { patchingSweep, type Grid, type PatchSite } from '../src/experiments/patching.ts';
import { logitDiffMetric } from '../src/model/metric.ts';
import { log, prompt, round, summary, timed } from './timing.ts';

/** A sweep timed `reps` times after a warm-up sweep on a 3-token prompt (pipelines, hook kernels). */
async function timeSweep(model: Model, site: PatchSite, clean: number[], corrupt: number[], a: number, b: number, T: number, reps: number) {
  const V = model.config.d_vocab;
  await patchingSweep(model, prompt(3, V, 1), prompt(3, V, 2), site, logitDiffMetric(2, a, b));
  const times: number[] = [];
  let grid: Grid | null = null;
  for (let r = 0; r < reps; r++) {
    const t = await timed(() => patchingSweep(model, clean, corrupt, site, logitDiffMetric(T - 1, a, b)));
    times.push(t.ms);
    grid = t.value;
  }
  return { times, grid: grid! };
}

const stats = (g: Grid) => ({ passes: g.stats.passes, unchanged_cells: g.stats.unchanged, work_over_naive_work: round(g.stats.work / g.stats.naiveWork, 3) });

export interface SweepBench {
  resid_pre_sweep: Record<string, unknown>;
  head_sweep: Record<string, unknown>;
  /** The pool's peak bytes in each phase. */
  peaks: { resid_pre_sweep: number; naive_runs: number; head_sweep: number };
}

/** `T`: the prompts' length; `naiveN`: how many of the L x T naive runs to time; `reps`: timings of each sweep. */
export async function benchSweeps(gpu: Gpu, model: Model, T: number, naiveN: number, reps: number): Promise<SweepBench> {
  const { d_vocab: V, n_layers: L, n_heads: H } = model.config;
  const clean = prompt(T, V);
  const corrupt = clean.slice();
  for (const p of [2, 5, 9]) corrupt[p] = (clean[p] + 101) % V;
  const good = clean[3] % V;
  const bad = corrupt[5] % V;

  log(`resid_pre sweep ${L} x ${T}`);
  gpu.pool.peakBytes = gpu.pool.liveBytes;
  const resid = await timeSweep(model, 'resid_pre', clean, corrupt, good, bad, T, reps);
  // The same grid on a pair that differs at every position: no cell can be skipped as unchanged.
  const corruptAll = clean.map((t) => (t + 7) % V);
  log(`resid_pre sweep ${L} x ${T}, every position different`);
  const residAll = await timeSweep(model, 'resid_pre', clean, corruptAll, good, bad, T, reps);
  const residPeak = gpu.pool.peakBytes;
  gpu.pool.peakBytes = gpu.pool.liveBytes;

  // The same patched runs, naively: one full forward each, logits read back.
  const cells = L * T;
  log(`naive patched runs: ${naiveN} of ${cells}`);
  const cleanRun = await model.run([clean], { cache: /^blocks\.\d+\.hook_resid_pre$/ });
  const order = Array.from({ length: naiveN }, (_, i) => Math.floor(((i + 0.5) * cells) / naiveN)); // spread over the grid
  const naiveTimes: number[] = [];
  let naiveErr = 0;
  try {
    const patched = async (cell: number) => {
      const l = Math.floor(cell / T);
      const p = cell % T;
      const out = await model.runWithHooks([corrupt], [patchFrom(`blocks.${l}.hook_resid_pre`, cleanRun.cache, { pos: p })]);
      try {
        return await out.logits.read();
      } finally {
        out.release();
      }
    };
    await patched(0); // warm-up: the intervention kernel
    for (const cell of order) {
      const t = await timed(() => patched(cell));
      naiveTimes.push(t.ms);
      const at = (T - 1) * V;
      naiveErr = Math.max(naiveErr, Math.abs(t.value[at + good] - t.value[at + bad] - resid.grid.values[cell]));
    }
  } finally {
    cleanRun.release();
  }
  const naivePeak = gpu.pool.peakBytes;
  const naiveTotal = naiveTimes.reduce((a, b) => a + b, 0);
  const naiveMs = naiveN === cells ? naiveTotal : (naiveTotal / naiveN) * cells;
  const residMs = summary(resid.times);

  log(`head output (z) sweep ${L} x ${H}`);
  gpu.pool.peakBytes = gpu.pool.liveBytes;
  const heads = await timeSweep(model, 'z', clean, corrupt, good, bad, T, reps);
  const headPeak = gpu.pool.peakBytes;

  return {
    resid_pre_sweep: {
      grid: [L, T],
      runs: cells,
      ...residMs,
      ...stats(resid.grid),
      naive: {
        runs_timed: naiveN,
        ms: round(naiveMs, 0),
        extrapolated: naiveN < cells,
        per_run_median_ms: summary(naiveTimes).median_ms,
        max_abs_diff_vs_sweep: +naiveErr.toExponential(2),
      },
      naive_over_sweep: round(naiveMs / residMs.median_ms, 2),
      every_position_differs: {
        ...summary(residAll.times),
        ...stats(residAll.grid),
        naive_over_sweep: round(naiveMs / summary(residAll.times).median_ms, 2),
      },
    },
    head_sweep: { site: 'z', grid: [L, H], runs: L * H, ...summary(heads.times), ...stats(heads.grid) },
    peaks: { resid_pre_sweep: residPeak, naive_runs: naivePeak, head_sweep: headPeak },
  };
}
