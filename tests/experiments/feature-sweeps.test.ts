/**
 * Feature sweeps on tiny-gemma3-random with its SAE (`sae-resid-post-3`, error term on): every
 * cell of the resumed, batched sweep equals the same intervention in a full forward of its own
 * (metric from the logits on the CPU), to 1e-4 relative; the cells are the top-k features
 * (ablation: most active; patching: largest clean - corrupted difference) at each position.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadSae } from '../../src/features/sae-load.ts';
import type { Sae } from '../../src/features/sae.ts';
import { withErrorTerm } from '../../src/hooks/splice.ts';
import { patchFeature, saeHook, zeroFeature } from '../../src/hooks/feature-interventions.ts';
import { featureAblationSweep, featurePatchingSweep, type FeatureGrid } from '../../src/experiments/feature-sweeps.ts';
import { logitDiffMetric, metricCpu } from '../../src/model/metric.ts';
import type { Intervention } from '../../src/hooks/interventions.ts';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';
import { GEMMA_SAE, saeFolder } from '../features/helpers.ts';

describe('feature sweeps (tiny-gemma3-random, sae-resid-post-3)', () => {
  let model: Model;
  let sae: Sae;
  let clean: number[];
  let corrupt: number[];
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource('tiny-gemma3-random'));
    sae = await loadSae(model.gpu, await saeFolder(GEMMA_SAE));
    [clean, corrupt] = fixtureCases('tiny-gemma3-random').prompts;
  });
  afterAll(() => {
    sae?.destroy();
    model?.destroy();
  });

  /** Each cell's intervention on a full forward of its own (one batch row each). */
  async function naive(grid: FeatureGrid, tokens: number[], hook: (f: number, p: number) => Intervention, metric: ReturnType<typeof logitDiffMetric>) {
    const cells = [...grid.features.keys()].filter((i) => grid.features[i] >= 0);
    const hooks = cells.map((i, b) => ({ ...hook(grid.features[i], grid.positions[Math.floor(i / grid.shape[1])]), batch: b }) as Intervention);
    const r = await model.run(
      cells.map(() => tokens),
      { saes: [withErrorTerm(sae)], hooks },
    );
    const want = metricCpu(metric, await r.logits.read(), cells.length, model.config.d_vocab);
    r.release();
    return { cells, want };
  }

  it('ablation: the top 3 active features per position, each zeroed alone, equal naive runs', async () => {
    const T = clean.length;
    const metric = logitDiffMetric(T - 1, 11, 22);
    const grid = await featureAblationSweep(model, sae, clean, metric, { k: 3 });
    expect(grid.shape).toEqual([T, 3]);
    // The cells are the most active features of each position, in order.
    const base = await model.run([clean], { saes: [withErrorTerm(sae)], cache: [saeHook(sae, 'hook_sae_acts_post')] });
    const acts = await base.cache.read(saeHook(sae, 'hook_sae_acts_post'));
    base.release();
    for (let p = 0; p < T; p++) {
      const row = Array.from(acts.subarray(p * 256, (p + 1) * 256));
      const top = [...row.keys()]
        .filter((f) => row[f] > 0)
        .sort((a, b) => row[b] - row[a])
        .slice(0, 3);
      expect(
        Array.from(grid.features.subarray(p * 3, p * 3 + 3)).filter((f) => f >= 0),
        `position ${p}`,
      ).toEqual(top);
    }
    const { cells, want } = await naive(grid, clean, (f, p) => zeroFeature(sae, f, { pos: p }), metric);
    expect(cells.length).toBeGreaterThan(30);
    cells.forEach((c, i) => expect(Math.abs(grid.values[c] - want[i]), `cell ${c}`).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(want[i]))));
    // Ablating features moves the metric somewhere (the sweep measures something).
    expect(Math.max(...cells.map((c) => Math.abs(grid.values[c] - grid.clean)))).toBeGreaterThan(1e-3);
    console.log(`feature ablation: ${cells.length} cells in ${grid.stats.passes} passes, work ${grid.stats.work} of ${grid.stats.naiveWork} naive row-layers`);
  });

  it('patching: the 2 most changed features per position, patched clean -> corrupted, equal naive runs (normalized)', async () => {
    const T = clean.length;
    const metric = logitDiffMetric(T - 1, 11, 22);
    const grid = await featurePatchingSweep(model, sae, clean, corrupt, metric, { k: 2, normalize: true });
    const src = await model.run([clean], { saes: [withErrorTerm(sae)], cache: [saeHook(sae, 'hook_sae_acts_post')] });
    const { cells, want } = await naive(grid, corrupt, (f, p) => patchFeature(sae, f, src.cache, { pos: p }), metric);
    src.release();
    const norm = want.map((m) => (m - grid.corrupt) / (grid.clean - grid.corrupt));
    cells.forEach((c, i) => expect(Math.abs(grid.values[c] - norm[i]), `cell ${c}`).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(norm[i]))));
    expect(cells.length).toBeGreaterThan(20);
  });
});
