/**
 * Where a forward and a patching sweep spend GPU time: `npm run profile -- [--layers N] [--pos T]
 * [--site SITE]`. A program, like the bench. Every dispatch is timed with timestamp queries
 * (the adapter needs `timestamp-query`) and the time is summed per kernel label (layer numbers
 * folded), largest first. Profiling puts each dispatch in its own compute pass, so totals run a
 * little above unprofiled times.
 */
import { acquireGpu } from '../src/gpu/device.ts';
import { Profiler, type ProfileRow } from '../src/gpu/profiler.ts';
import { modelFromWeights } from '../src/hooks/load.ts';
import { patchingSweep, type PatchSite } from '../src/experiments/patching.ts';
import { logitDiffMetric } from '../src/model/metric.ts';
import { gpt2SmallConfig, randomGpt2 } from './weights.ts';
import { benchOptions } from './options.ts';

const options = benchOptions('profile', { layers: {}, pos: {}, site: {} });
const layers = options.int('layers', 4);
const T = options.int('pos', 15);
const site = (options.opt('site') ?? 'resid_pre') as PatchSite;

function table(title: string, wallMs: number, rows: ProfileRow[]): void {
  const total = rows.reduce((s, r) => s + r.ms, 0);
  console.log(`\n${title}: wall ${wallMs.toFixed(0)} ms, GPU ${total.toFixed(0)} ms in ${rows.reduce((s, r) => s + r.count, 0)} dispatches`);
  for (const r of rows.slice(0, 24)) {
    console.log(`  ${r.label.padEnd(36)} ${r.ms.toFixed(1).padStart(9)} ms ${((100 * r.ms) / total).toFixed(1).padStart(5)}%  x${r.count}`);
  }
}

const gpu = await acquireGpu();
const cfg = gpt2SmallConfig(layers);
const model = await modelFromWeights(gpu, cfg, randomGpt2(cfg, 1));
const prompt = Array.from({ length: T }, (_, i) => (i * 7919 + 13) % cfg.d_vocab);
const corrupt = prompt.slice();
for (const p of [2, 5, 9].filter((p) => p < T)) corrupt[p] = (prompt[p] + 101) % cfg.d_vocab;
const metric = logitDiffMetric(T - 1, prompt[3], corrupt[Math.min(5, T - 1)]);

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
