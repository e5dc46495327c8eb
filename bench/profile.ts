/**
 * Where a forward, a patching sweep and a backward spend GPU time: `npm run profile -- [--layers N]
 * [--pos T] [--site SITE] [--grad keep|recompute] [--loss]`. A program, like the bench. Every
 * dispatch is timed with timestamp queries (the adapter needs `timestamp-query`) and the time is
 * summed per kernel label (layer numbers folded), largest first. Profiling puts each dispatch in
 * its own compute pass, so totals run a little above unprofiled times.
 *
 * `--grad MODE` profiles `runWithGrad` instead of the sweep: the forward of the plan it builds
 * (a logit difference's two vocabulary columns at the last position, or with `--loss` the
 * next-token loss over every position with weight gradients), then forward + backward,
 * alternating `--reps` times (default 3) so load from other work on a shared machine falls on
 * both; each label keeps its smallest time. The backward's rows are the difference per label (a
 * replayed layer's forward, with `recompute`, counts as backward time).
 */
import { acquireGpu } from '../src/gpu/device.ts';
import { Profiler, type ProfileRow } from '../src/gpu/profiler.ts';
import { modelFromWeights } from '../src/hooks/load.ts';
import { patchingSweep, type PatchSite } from '../src/experiments/patching.ts';
import { GpuMetric, logitDiffMetric, lossMetric, metricColumns, metricPositions } from '../src/model/metric.ts';
import { executePlan } from '../src/hooks/execute.ts';
import type { MemoryMode } from '../src/model/backward.ts';
import { gpt2SmallConfig, randomGpt2 } from './weights.ts';
import { benchOptions } from './options.ts';

const options = benchOptions('profile', { layers: {}, pos: {}, site: {}, grad: {}, loss: { boolean: true }, reps: {} });
const layers = options.int('layers', 4);
const T = options.int('pos', 15);
const site = (options.opt('site') ?? 'resid_pre') as PatchSite;
const gradMode = (options.opt('grad') ?? '') as MemoryMode | '';
const withLoss = options.flag('loss');
const reps = options.int('reps', 3);

const sum = (rows: ProfileRow[]) => rows.reduce((s, r) => s + r.ms, 0);
function table(title: string, wallMs: number | null, rows: ProfileRow[], top = 24): void {
  const total = sum(rows);
  console.log(`\n${title}: ${wallMs === null ? '' : `wall ${wallMs.toFixed(0)} ms, `}GPU ${total.toFixed(0)} ms in ${rows.reduce((s, r) => s + r.count, 0)} dispatches`);
  for (const r of rows.slice(0, top)) {
    console.log(`  ${r.label.padEnd(44)} ${r.ms.toFixed(1).padStart(9)} ms ${((100 * r.ms) / total).toFixed(1).padStart(5)}%  x${r.count}`);
  }
}

/** Per label, the smallest time over runs of the same steps. */
function minRows(runs: ProfileRow[][]): ProfileRow[] {
  const by = new Map<string, ProfileRow>();
  for (const run of runs) for (const r of run) if (!by.has(r.label) || by.get(r.label)!.ms > r.ms) by.set(r.label, r);
  return [...by.values()].sort((a, b) => b.ms - a.ms);
}

const gpu = await acquireGpu();
const cfg = gpt2SmallConfig(layers);
const model = await modelFromWeights(gpu, cfg, randomGpt2(cfg, 1));
const prompt = Array.from({ length: T }, (_, i) => (i * 7919 + 13) % cfg.d_vocab);
const corrupt = prompt.slice();
for (const p of [2, 5, 9].filter((p) => p < T)) corrupt[p] = (prompt[p] + 101) % cfg.d_vocab;
const metric = logitDiffMetric(T - 1, prompt[3], corrupt[Math.min(5, T - 1)]);

if (gradMode) {
  // The backward: forward + backward minus the same plan's forward, per label.
  const m = withLoss ? lossMetric(prompt, 0, T - 1) : metric;
  const columns = metricColumns(m);
  const plan = await model.buildPlan({ batch: 1, pos: T, logitPositions: metricPositions(m), logitTokens: columns ?? undefined });
  const gm = new GpuMetric(gpu, m, plan.logits!, 1, plan.logitPositions, cfg.d_vocab, undefined, columns);
  const forward = async () => {
    gpu.device.queue.writeBuffer(plan.ids!, 0, new Uint32Array(prompt));
    await executePlan(gpu, plan, { after: gm.dispatches, label: 'profile forward' });
    await gm.out.read();
  };
  const grad = async () => (await model.runWithGrad([prompt], m, { grads: [], memory: gradMode, weights: withLoss })).release();
  await forward(); // warm-up: pipelines
  const t0 = performance.now();
  await grad();
  console.log(`first forward + backward (pipelines compiled): ${(performance.now() - t0).toFixed(0)} ms`);
  // Forward and forward + backward alternate, `reps` times, so load from other work on a shared
  // machine falls on both alike; each label keeps its least-disturbed (smallest) time, and the
  // ratio is also given as the median of each adjacent pair's.
  gpu.profiler = new Profiler(gpu);
  const fRuns: ProfileRow[][] = [];
  const gRuns: ProfileRow[][] = [];
  const pairRatios: number[] = [];
  for (let r = 0; r < reps; r++) {
    await forward();
    fRuns.push(await gpu.profiler.collect());
    await grad();
    gRuns.push(await gpu.profiler.collect());
    pairRatios.push(sum(gRuns[r]) / sum(fRuns[r]) - 1);
  }
  gpu.profiler = null;
  const fRows = minRows(fRuns);
  const gRows = minRows(gRuns);
  const what = withLoss ? `next-token loss over ${T} positions, weight gradients` : `logit difference at position ${T - 1}`;
  table(`forward (the plan runWithGrad builds), ${what}, ${T} positions, ${layers} layers, least of ${reps}`, null, fRows, 14);
  const fwdBy = new Map(fRows.map((r) => [r.label, r]));
  const back: ProfileRow[] = gRows
    .map((r) => ({ label: r.label, ms: r.ms - (fwdBy.get(r.label)?.ms ?? 0), count: r.count - (fwdBy.get(r.label)?.count ?? 0) }))
    .filter((r) => r.count > 0)
    .sort((a, b) => b.ms - a.ms);
  table(`forward + backward (${gradMode}), one run's steps, least of ${reps}`, null, gRows, 16);
  table(`backward (${gradMode}), forward + backward minus the forward, per label`, null, back, 40);
  const sorted = [...pairRatios].sort((a, b) => a - b);
  console.log(
    `\nbackward / forward (GPU time): ${(sum(gRows) / sum(fRows) - 1).toFixed(2)} from the least times (forward ${sum(fRows).toFixed(0)} ms, forward + backward ${sum(gRows).toFixed(0)} ms); ` +
      `median of the ${reps} pairs ${sorted[Math.floor(reps / 2)].toFixed(2)} (${sorted.map((x) => x.toFixed(2)).join(', ')})`,
  );
  gm.release();
  plan.destroy();
  process.exit(0);
}

await (await model.run([prompt])).logits.read(); // warm-up
await patchingSweep(model, prompt, corrupt, site, metric); // warm-up: pipelines
gpu.profiler = new Profiler(gpu);

let t0 = performance.now();
const run = await model.run([prompt]);
await run.logits.read();
table(`forward, batch 1, ${T} positions, ${layers} layers`, performance.now() - t0, await gpu.profiler.collect());
run.release();

t0 = performance.now();
const grid = await patchingSweep(model, prompt, corrupt, site, metric);
table(`${site} sweep ${layers} x ${T} (${grid.stats.passes} passes, work ${(grid.stats.work / grid.stats.naiveWork).toFixed(3)})`, performance.now() - t0, await gpu.profiler.collect());
gpu.profiler = null;
process.exit(0);
