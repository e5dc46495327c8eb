/**
 * The bench's gradient section (bench/README.md, "gradients"): in the same run as the forwards,
 *   - a backward against a forward: `runWithGrad` (forward + backward, one submit) minus the
 *     forward of the same plan (the positions and vocabulary columns the metric reads, its
 *     value read back), at the forward lengths, for AtP's metric (a logit difference) with the
 *     backward keeping every layer and recomputing each layer, and for the training objective
 *     (the next-token loss over the whole prompt, weight gradients included);
 *   - AtP over every patching site at once (`attributionSweeps`: one clean forward, one corrupted
 *     forward + backward) against a forward and against the exact sweeps of the same sites;
 *   - bytes: the plans' memory (forward scratch, what the backward saves, gradient scratch) for
 *     this shape and for GPT-2-small at 128 positions, against a plain forward's scratch, and the
 *     pool's measured peak.
 */
import type { Gpu } from '../src/gpu/device.ts';
import type { Model } from '../src/hooks/model.ts';
import type { ModelConfig } from '../src/model/config.ts';
import { gpt2LikeConfig } from '../src/model/config.ts';
import { scratchBytes } from '../src/model/forward.ts';
import { gradPlanBytes } from '../src/hooks/grad-run.ts';
import type { MemoryMode } from '../src/model/backward.ts';
import { attributionSweeps } from '../src/experiments/attribution.ts';
import { PATCH_SITES, patchingSweep } from '../src/experiments/patching.ts';
import { GpuMetric, logitDiffMetric, lossMetric, metricColumns, metricPositions, type Metric } from '../src/model/metric.ts';
import { executePlan } from '../src/hooks/execute.ts';

const round = (x: number, d = 2) => +x.toFixed(d);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
async function time(fn: () => Promise<unknown>, reps: number): Promise<number> {
  await fn(); // warm-up: pipelines, plans
  const t: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await fn();
    t.push(performance.now() - t0);
  }
  return median(t);
}

const MB = (b: number) => round(b / 2 ** 20, 1);

/** Plan bytes of a gradient run against a plain forward's scratch (all logits), same shape. */
function memoryOf(cfg: ModelConfig, T: number, metric: 'logit-diff' | 'loss') {
  const positions = metric === 'loss' ? [...Array(T - 1).keys()] : [T - 1];
  const forward = scratchBytes(cfg, { batch: 1, pos: T });
  const row = (mode: MemoryMode) => {
    const b = gradPlanBytes(cfg, 1, T, positions, mode);
    const total = b.forward + b.saved + b.scratch;
    return { forward_scratch_mb: MB(b.forward), saved_mb: MB(b.saved), grad_scratch_mb: MB(b.scratch), total_mb: MB(total), total_over_forward: round(total / forward, 2) };
  };
  return { plain_forward_scratch_mb: MB(forward), keep: row('keep'), recompute: row('recompute') };
}

export async function benchGradients(
  gpu: Gpu,
  model: Model,
  opts: { positions: number[]; sweepT: number; reps: number; log: (m: string) => void; prompt: (T: number, V: number, salt?: number) => number[]; exact?: boolean },
) {
  const cfg = model.config;
  const V = cfg.d_vocab;
  const rows: Record<string, unknown>[] = [];
  for (const T of opts.positions) {
    const ids = opts.prompt(T, V);
    /** The forward runWithGrad runs for `metric`: its plan, built once, and the metric read back. */
    const sameForward = async (metric: Metric) => {
      const columns = metricColumns(metric);
      const plan = await model.buildPlan({ batch: 1, pos: T, logitPositions: metricPositions(metric), logitTokens: columns ?? undefined });
      const m = new GpuMetric(gpu, metric, plan.logits!, 1, plan.logitPositions, V, undefined, columns);
      try {
        return await time(async () => {
          gpu.device.queue.writeBuffer(plan.ids!, 0, new Uint32Array(ids));
          await executePlan(gpu, plan, { after: m.dispatches, label: 'bench forward' });
          await m.out.read();
        }, opts.reps);
      } finally {
        m.release();
        plan.destroy();
      }
    };
    const grad = (metric: Metric | Metric[], o: Parameters<Model['runWithGrad']>[2]) => async () => {
      const r = await model.runWithGrad([ids], metric, { grads: [], ...o });
      planMb = MB(r.memory.forwardBytes + r.memory.savedBytes + r.memory.gradScratchBytes);
      r.release();
    };
    let planMb = 0;
    const diff = logitDiffMetric(T - 1, ids[1], ids[2]);
    const loss = lossMetric(ids, 0, T - 1);
    opts.log(`gradients at ${T} positions: forwards, forward + backward (keep, recompute, loss with weight gradients)`);
    const fDiff = await sameForward(diff);
    const fLoss = await sameForward(loss);
    const keepMs = await time(grad(diff, { memory: 'keep' }), opts.reps);
    const keepMb = planMb;
    const recMs = await time(grad(diff, { memory: 'recompute' }), opts.reps);
    const recMb = planMb;
    const lossMs = await time(grad(loss, { weights: true, memory: 'recompute' }), opts.reps);
    const lossMb = planMb;
    const weightMb = MB(model.weightGrads?.bytes ?? 0);
    model.weightGrads?.release();
    const ratio = (fb: number, f: number) => round((fb - f) / f, 2);
    rows.push({
      pos: T,
      logit_diff: {
        forward_ms: round(fDiff, 1),
        keep: { forward_backward_ms: round(keepMs, 1), backward_over_forward: ratio(keepMs, fDiff), plan_mb: keepMb },
        recompute: { forward_backward_ms: round(recMs, 1), backward_over_forward: ratio(recMs, fDiff), plan_mb: recMb },
      },
      loss_with_weight_grads_recompute: { forward_ms: round(fLoss, 1), forward_backward_ms: round(lossMs, 1), backward_over_forward: ratio(lossMs, fLoss), plan_mb: lossMb, weight_grads_mb: weightMb },
    });
  }

  // AtP over every site against the exact sweeps, on the sweeps' prompt pair.
  const T = opts.sweepT;
  const clean = opts.prompt(T, V);
  const corrupt = clean.slice();
  for (const p of [2, 5, 9].filter((p) => p < T)) corrupt[p] = (clean[p] + 101) % V;
  const metric = logitDiffMetric(T - 1, clean[3] % V, corrupt[5] % V);
  // The exact side skips the grids that repeat others (the _every unions) and pattern_dest_src
  // (layers x heads x positions^2 patched runs: minutes on a software adapter).
  const sites = PATCH_SITES.filter((s) => !/_every$|^pattern_dest_src$/.test(s));
  opts.log(`AtP over ${sites.length} sites (and all ${PATCH_SITES.length}) at ${T} positions${opts.exact === false ? '' : ", and each site's exact sweep"}`);
  const fwd = await time(async () => {
    const r = await model.run([clean]);
    await r.logits.read();
    r.release();
  }, opts.reps);
  const atpMs = await time(() => attributionSweeps(model, clean, corrupt, sites, metric), opts.reps);
  const atpAllMs = await time(() => attributionSweeps(model, clean, corrupt, PATCH_SITES, metric), opts.reps);
  const exact: Record<string, number> = {};
  for (const site of opts.exact === false ? [] : sites) {
    const t0 = performance.now();
    await patchingSweep(model, clean, corrupt, site, metric);
    exact[site] = round(performance.now() - t0, 0);
  }
  const exactTotal = Object.values(exact).reduce((a, b) => a + b, 0);
  return {
    backward_vs_forward: rows,
    atp_all_sites: {
      pos: T,
      sites,
      forward_ms: round(fwd, 1),
      atp_ms: round(atpMs, 1),
      atp_every_site_ms: round(atpAllMs, 1),
      every_site: PATCH_SITES.length,
      atp_over_forward: round(atpMs / fwd, 2),
      ...(opts.exact === false ? { exact_sweeps: 'not run (--no-exact)' } : { exact_sweeps_ms: exactTotal, exact_over_atp: round(exactTotal / atpMs, 1), exact_sweep_ms_by_site: exact }),
    },
    memory: {
      this_shape_at_128: cfg.n_ctx >= 128 ? { logit_diff: memoryOf(cfg, 128, 'logit-diff'), loss: memoryOf(cfg, 128, 'loss') } : null,
      gpt2_small_at_128: { logit_diff: memoryOf(gpt2LikeConfig({}), 128, 'logit-diff'), loss: memoryOf(gpt2LikeConfig({}), 128, 'loss') },
    },
  };
}
