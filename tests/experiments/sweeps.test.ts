/**
 * Patching and ablation sweeps: resumed, batched passes must equal the same interventions run
 * on full forwards, the fixture's own experiments, and themselves when chunked.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { PATCH_SITES, patchingSweep } from '../../src/experiments/patching.ts';
import { headAblationSweep } from '../../src/experiments/ablation.ts';
import { BASE_CACHE, baseRun, runVariants, type Variant } from '../../src/experiments/sweep.ts';
import { logitDiffMetric, lossMetric, logProbMetric, metricCpu, probMetric, type Metric } from '../../src/model/metric.ts';
import { hookFn, patchFrom, type Intervention } from '../../src/hooks/interventions.ts';
import { GPT2_FIXTURES, fixtureCases, fixtureSource, type Cases } from '../helpers/fixtures.ts';
import { referenceCells, type RefCell } from '../helpers/patch-cells.ts';
import { testGpu } from '../helpers/gpu.ts';

const metricOf = (c: Cases) => logitDiffMetric(c.metric.position, c.metric.good_token, c.metric.bad_token);

/**
 * The metric of `cells` (each a list of interventions on the corrupted prompt, or a constant),
 * on full forwards, 64 rows at a time.
 */
async function fullForwardMetrics(model: Model, tokens: number[], cells: RefCell[], metric: Metric): Promise<Float64Array> {
  const out = Float64Array.from(cells, (c) => (typeof c === 'number' ? c : NaN));
  const idx = cells.flatMap((c, i) => (typeof c === 'number' ? [] : [i]));
  const rows = idx.map((i) => cells[i] as Intervention[]);
  const ran = new Float64Array(rows.length);
  for (let s = 0; s < rows.length; s += 64) {
    const chunk = rows.slice(s, s + 64);
    const r = await model.run(
      chunk.map(() => tokens),
      { hooks: chunk.flatMap((ivs, b) => ivs.map((iv) => ({ ...iv, batch: b }) as Intervention)) },
    );
    ran.set(metricCpu(metric, await r.logits.read(), chunk.length, model.config.d_vocab), s);
    r.release();
  }
  idx.forEach((i, j) => (out[i] = ran[j]));
  return out;
}

describe.each(GPT2_FIXTURES)('%s sweeps', (name) => {
  let model: Model;
  let cases: Cases;
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource(name));
    cases = fixtureCases(name);
  });
  afterAll(() => model?.destroy());

  it('resid_pre equals the fixture and skips work by causality', async () => {
    const [clean, corrupt] = cases.prompts;
    const grid = await patchingSweep(model, clean, corrupt, 'resid_pre', metricOf(cases));
    expect(grid.shape).toEqual([model.config.n_layers, clean.length]);
    cases.resid_pre_patch_corrupt_from_clean.flat().forEach((want, i) => expect(Math.abs(grid.values[i] - want)).toBeLessThanOrEqual(1e-3));
    expect(Math.abs(grid.clean - cases.clean_logit_diff)).toBeLessThan(1e-3);
    expect(Math.abs(grid.corrupt - cases.corrupt_logit_diff)).toBeLessThan(1e-3);
    expect(grid.stats.work).toBeLessThan(grid.stats.naiveWork * 0.75);
    // Cells whose patch writes the values already there are not run: every position before the
    // first differing token (any layer), and at layer 0 (embeddings) every position whose token
    // is the same in both prompts.
    const first = clean.findIndex((t, i) => t !== corrupt[i]);
    const sameLater = clean.filter((t, i) => i > first && t === corrupt[i]).length;
    expect(grid.stats.unchanged).toBe(model.config.n_layers * first + sameLater);
  });

  // pattern_dest_src on induction-2l (2,312 cells, ~15 s here) is left to tl-patching.test.ts,
  // which checks every cell against TransformerLens; tiny-gpt2-random covers it here.
  const sites = name === 'induction-2l' ? PATCH_SITES.filter((s) => s !== 'pattern_dest_src') : PATCH_SITES;
  it.each(sites)('%s equals the same patches on full forwards (<= 1e-4)', async (site) => {
    const [clean, corrupt] = cases.prompts;
    const T = clean.length;
    const metric = metricOf(cases);
    const grid = await patchingSweep(model, clean, corrupt, site, metric);
    // The same cells as interventions on full forwards, in TransformerLens' row-major order.
    const cleanRun = await model.run([clean], { cache: () => true });
    const rows = referenceCells(model.config, site, T, cleanRun.cache);
    expect(grid.values.length).toBe(rows.length);
    // Grids of thousands of cells (pattern_dest_src, head_by_pos_every) are checked on every
    // stride-th cell, a stride prime to every axis length so each index of each axis is met;
    // tests/experiments/tl-patching.test.ts checks every cell against TransformerLens.
    const stride = rows.length > 400 ? 7 : 1;
    const picked = rows.map((_, i) => i).filter((i) => i % stride === 0);
    const want = await fullForwardMetrics(
      model,
      corrupt,
      picked.map((i) => rows[i]),
      metric,
    );
    let worst = 0;
    want.forEach((w, j) => (worst = Math.max(worst, Math.abs(grid.values[picked[j]] - w))));
    expect(worst, `${site}: max |sweep - full forwards|`).toBeLessThanOrEqual(1e-4);
    // A few cells literally one at a time, with a fresh run each.
    for (let i = 0; i < rows.length; i += Math.max(1, Math.floor(rows.length / 5))) {
      const cell = rows[i];
      if (typeof cell === 'number') continue;
      const r = await model.runWithHooks([corrupt], cell);
      expect(Math.abs(metricCpu(metric, await r.logits.read(), 1, model.config.d_vocab)[0] - grid.values[i])).toBeLessThanOrEqual(1e-4);
      r.release();
    }
    cleanRun.release();
  });

  it('zero head-ablation sweep equals the fixture', async () => {
    const grid = await headAblationSweep(model, cases.prompts[0], metricOf(cases));
    for (const c of cases.head_zero_ablation_on_clean) {
      expect(Math.abs(grid.values[c.layer * model.config.n_heads + c.head] - c.logit_diff)).toBeLessThanOrEqual(1e-3);
    }
  });
});

describe('sweep mechanics', () => {
  let model: Model;
  let cases: Cases;
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource('induction-2l'));
    cases = fixtureCases('induction-2l');
  });
  afterAll(() => model?.destroy());

  it('log-prob, prob, loss-over-a-span and normalized metrics equal their CPU versions on full forwards', async () => {
    const [clean, corrupt] = cases.prompts;
    const T = clean.length;
    const metrics: Metric[] = [logProbMetric(16, 247), probMetric(15, 417), lossMetric(corrupt, 11, 16)];
    for (const metric of metrics) {
      const grid = await patchingSweep(model, clean, corrupt, 'attn_out', metric);
      const cleanRun = await model.run([clean], { cache: /hook_attn_out$/ });
      const rows: RefCell[] = [];
      for (let l = 0; l < 2; l++) for (let p = 0; p < T; p++) rows.push([patchFrom(`blocks.${l}.hook_attn_out`, cleanRun.cache, { pos: p })]);
      const want = await fullForwardMetrics(model, corrupt, rows, metric);
      want.forEach((w, i) => expect(Math.abs(grid.values[i] - w), `${metric.kind} cell ${i}`).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(w))));
      cleanRun.release();
    }
    const norm = await patchingSweep(model, clean, corrupt, 'resid_pre', metricOf(cases), { normalize: true });
    const raw = await patchingSweep(model, clean, corrupt, 'resid_pre', metricOf(cases));
    raw.values.forEach((m, i) => expect(Math.abs(norm.values[i] - (m - raw.corrupt) / (raw.clean - raw.corrupt))).toBeLessThan(1e-5));
    // Layer 1, last position restores nearly all of the clean run (the fixture: 10.128 of 10.128).
    expect(Math.abs(norm.values[1 * T + T - 1] - 1)).toBeLessThan(1e-3);
  });

  it('a sweep chunked into passes of 3 rows equals the unchunked one', async () => {
    const [clean, corrupt] = cases.prompts;
    const whole = await patchingSweep(model, clean, corrupt, 'z_by_pos', metricOf(cases));
    const chunked = await patchingSweep(model, clean, corrupt, 'z_by_pos', metricOf(cases), { maxRows: 3 });
    expect(chunked.stats.passes).toBeGreaterThan(whole.stats.passes);
    whole.values.forEach((v, i) => expect(chunked.values[i]).toBeCloseTo(v, 6));
  });

  it('progress is reported between passes, and aborting rejects promptly and leaves the model usable', async () => {
    const [clean, corrupt] = cases.prompts;
    const seen: number[] = [];
    const ctl = new AbortController();
    const t0 = performance.now();
    const sweep = patchingSweep(model, clean, corrupt, 'z_by_pos', metricOf(cases), {
      maxRows: 2,
      signal: ctl.signal,
      onProgress: (done, total) => {
        seen.push(done);
        expect(total).toBe(2 * 4 * 17);
        if (seen.length === 3) ctl.abort();
      },
    });
    await expect(sweep).rejects.toThrow(/aborted/);
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(seen.length).toBe(3);
    expect(seen[1]).toBeGreaterThan(seen[0]);
    const inUse = model.gpu.pool.inUseCount;
    const grid = await patchingSweep(model, clean, corrupt, 'resid_pre', metricOf(cases));
    cases.resid_pre_patch_corrupt_from_clean.flat().forEach((want, i) => expect(Math.abs(grid.values[i] - want)).toBeLessThanOrEqual(1e-3));
    expect(model.gpu.pool.inUseCount).toBe(inUse);
  });

  it('a variant with a hook function sees only its own row, whole, as in a run of its own', async () => {
    const [clean, corrupt] = cases.prompts;
    const T = clean.length;
    const C = model.config.d_model;
    const metric = metricOf(cases);
    const base = await baseRun(model, corrupt, (n) => BASE_CACHE.test(n), metric);
    const cleanRun = await model.run([clean], { cache: /hook_resid_pre$/ });
    const shapes: string[] = [];
    // Negate resid_pre at one position: a JavaScript function that also records what it was given.
    const negate = (l: number, p: number) =>
      hookFn(`blocks.${l}.hook_resid_pre`, (x, ctx) => {
        shapes.push(ctx.shape.join('x'));
        for (let c = 0; c < C; c++) x[p * C + c] = -x[p * C + c];
      });
    const variants: Variant[] = [];
    for (let l = 0; l < 2; l++) {
      for (const p of [3, 10, T - 1]) variants.push({ layer: l, pos: p, hooks: [negate(l, p)] });
      // A plain patch in the same pass as the hook functions.
      variants.push({ layer: l, pos: 5, hooks: [patchFrom(`blocks.${l}.hook_resid_pre`, cleanRun.cache, { pos: 5 })] });
    }
    try {
      const { values } = await runVariants(model, base, variants, metric, { shift: 0, scale: 1 }, base.metric);
      expect(shapes.length).toBe(6);
      expect(new Set(shapes)).toEqual(new Set([`1x${T}x${C}`]));
      shapes.length = 0;
      for (let i = 0; i < variants.length; i++) {
        const r = await model.runWithHooks([corrupt], variants[i].hooks);
        const want = metricCpu(metric, await r.logits.read(), 1, model.config.d_vocab)[0];
        r.release();
        expect(Math.abs(values[i] - want), `variant ${i}`).toBeLessThanOrEqual(1e-4);
      }
      // Negating moves the metric (the corrupted run's is near 0; the moves are 50x the
      // tolerance): the comparison above is not between unchanged runs.
      expect(Math.abs(values[0] - base.metric)).toBeGreaterThan(5e-3);
      expect(Math.abs(values[6] - base.metric)).toBeGreaterThan(5e-3);
    } finally {
      cleanRun.release();
      base.release();
    }
  });

  it('bad requests name the problem', async () => {
    const [clean, corrupt] = cases.prompts;
    await expect(patchingSweep(model, clean, corrupt.slice(1), 'resid_pre', metricOf(cases))).rejects.toThrow(/same length as every other prompt \(17 and 16 tokens\)/);
    await expect(patchingSweep(model, clean, corrupt, 'resid' as never, metricOf(cases))).rejects.toThrow(/unknown patching site "resid"; the sites are resid_pre/);
    await expect(patchingSweep(model, clean, corrupt, 'resid_pre', logitDiffMetric(17, 1, 2))).rejects.toThrow(/metric position 17 is out of range 0 .. 16/);
    await expect(patchingSweep(model, clean, corrupt, 'resid_pre', lossMetric(corrupt, 10, 17))).rejects.toThrow(/loss span/);
  });
});
