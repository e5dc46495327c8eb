/**
 * Patching a batch of prompt pairs, against TransformerLens run on the same batch
 * (`tl/batch_patching.json`, tests/fixtures/make/tl_refs.py: 4 pairs, each with its own answer
 * tokens, the metric the mean over pairs of each pair's logit difference, as TransformerLens' IOI
 * demo patches), and the mechanics: rows of every pair share the one-pass-per-start-layer
 * passes, reductions, normalization, a clean ActivationCache as the clean argument, and clear
 * errors for pairs patching cannot change.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { patching } from '../../src/experiments/act-patch.ts';
import { patchingSweep } from '../../src/experiments/patching.ts';
import { logitDiffMetric, type Metric } from '../../src/model/metric.ts';
import { parseMetricSyntax, specToMetric } from '../../src/experiments/metric-spec.ts';
import { expectClose } from '../helpers/compare.ts';
import { fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';
import { tlJson, type TlGrid } from '../helpers/tl.ts';

interface BatchRef {
  clean: number[][];
  corrupt: number[][];
  metrics: string[];
  clean_metric: number;
  corrupt_metric: number;
  [fn: string]: unknown;
}

const camel = (fn: string) => fn.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()) as keyof typeof patching;

describe.each(['induction-2l', 'tiny-llama-random'])('%s: a batch of 4 prompt pairs', (name) => {
  let model: Model;
  const ref = tlJson<BatchRef>(name, 'batch_patching.json');
  const metrics: Metric[] = ref.metrics.map((m, n) => specToMetric(parseMetricSyntax(m), ref.clean[n]));
  const functions = Object.keys(ref).filter((k) => k.startsWith('get_act_patch_'));
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource(name), { processing: 'transformer-lens' });
  });
  afterAll(() => model?.destroy());

  it.each(functions)('%s equals TransformerLens on the batch (metric: mean over pairs)', async (fn) => {
    const want = ref[fn] as TlGrid;
    const grid = await patching[camel(fn)](model, ref.corrupt, ref.clean, metrics);
    expect(grid.shape).toEqual(want.shape);
    expectClose(`${name} batch ${fn}`, grid.values, want.values);
    expect(Math.abs(grid.clean - ref.clean_metric)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(ref.clean_metric)));
    expect(Math.abs(grid.corrupt - ref.corrupt_metric)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(ref.corrupt_metric)));
  });

  it('rows = cells x pairs go through one pass per start layer; a clean ActivationCache works as the clean argument', async () => {
    const grid = await patchingSweep(model, ref.clean, ref.corrupt, 'resid_pre', metrics);
    expect(grid.stats.passes).toBeLessThanOrEqual(model.config.n_layers);
    const run = await model.runWithCache(ref.clean);
    try {
      const viaCache = await patching.getActPatchResidPre(model, ref.corrupt, run.cache, metrics);
      expect(Array.from(viaCache.values)).toEqual(Array.from(grid.values));
    } finally {
      run.release();
    }
  });

  it('reductions: the mean is the mean of per-pair sweeps, sum is 4 x mean, a function gets the 4 values; normalize comes after reducing', async () => {
    const site = 'z';
    const perPair = await Promise.all(ref.clean.map((c, n) => patchingSweep(model, c, ref.corrupt[n], site, metrics[n])));
    const mean = await patchingSweep(model, ref.clean, ref.corrupt, site, metrics);
    const sum = await patchingSweep(model, ref.clean, ref.corrupt, site, metrics, { reduce: 'sum' });
    const max = await patchingSweep(model, ref.clean, ref.corrupt, site, metrics, { reduce: (v) => Math.max(...v) });
    const norm = await patchingSweep(model, ref.clean, ref.corrupt, site, metrics, { normalize: true });
    const cells = mean.values.length;
    const at = (i: number) => perPair.map((g) => g.values[i]);
    expectClose(
      'mean of per-pair sweeps',
      mean.values,
      Float64Array.from({ length: cells }, (_, i) => at(i).reduce((a, b) => a + b) / 4),
    );
    expectClose(
      'sum = 4 x mean',
      sum.values,
      mean.values.map((v) => 4 * v),
    );
    expectClose(
      'max of per-pair sweeps',
      max.values,
      Float64Array.from({ length: cells }, (_, i) => Math.max(...at(i))),
    );
    expectClose(
      'normalized',
      norm.values,
      mean.values.map((v) => (v - mean.corrupt) / (mean.clean - mean.corrupt)),
    );
    expect(sum.clean).toBeCloseTo(4 * mean.clean, 4);
  });
});

describe('prompt pairs patching cannot change', () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource('induction-2l'));
  });
  afterAll(() => model?.destroy());

  it('an identical pair is an error, normalized or not, alone or in a batch (naming the pair)', async () => {
    const [clean, corrupt] = fixtureCases('induction-2l').prompts;
    const metric = logitDiffMetric(16, 247, 72);
    for (const normalize of [false, true]) {
      await expect(patchingSweep(model, clean, clean, 'resid_pre', metric, { normalize })).rejects.toThrow(
        /the clean and corrupted prompts are identical, so patching one into the other cannot change anything/,
      );
      await expect(patchingSweep(model, [clean, corrupt, clean], [corrupt, clean, clean], 'z', metric, { normalize })).rejects.toThrow(/prompts of pair 2 are identical/);
    }
  });

  it('equal clean and corrupted metrics: a grid of the baseline unnormalized, an error (not NaN) normalized', async () => {
    const [clean, corrupt] = fixtureCases('induction-2l').prompts;
    // Position 0 precedes the first differing token: nothing a patch does reaches it.
    const metric = logitDiffMetric(0, 247, 72);
    const grid = await patchingSweep(model, clean, corrupt, 'resid_pre', metric);
    expect(grid.clean).toBe(grid.corrupt);
    expect(grid.values.every((v) => v === grid.corrupt)).toBe(true);
    await expect(patchingSweep(model, clean, corrupt, 'resid_pre', metric, { normalize: true })).rejects.toThrow(/undefined when they are equal/);
  });

  it('batches of unequal sizes or lengths, and a metric list of the wrong length, are refused', async () => {
    const [clean, corrupt] = fixtureCases('induction-2l').prompts;
    const metric = logitDiffMetric(16, 247, 72);
    await expect(patchingSweep(model, [clean, clean], [corrupt], 'resid_pre', metric)).rejects.toThrow(/2 clean prompts and 1 corrupted ones/);
    await expect(patchingSweep(model, [clean, clean.slice(1)], [corrupt, corrupt.slice(1)], 'resid_pre', metric)).rejects.toThrow(/same length/);
    await expect(patchingSweep(model, [clean, corrupt], [corrupt, clean], 'resid_pre', [metric, metric, metric])).rejects.toThrow(/3 metrics for 2 prompt pairs/);
  });
});
