/**
 * Attribution patching against the float64 references in atp.json (every fixture family): the
 * AtP grids of resid_pre, attn_out, mlp_out ([layer, pos]) and z ([layer, head]) within 1e-4 of
 * each grid's largest magnitude; the grids have patchingSweep's shapes and axes. AtP*: the QK fix
 * on query and key cells against a direct recomputation (the patched head's pattern from the
 * caches, by the definition), GradDrop's average of |estimate| over dropped layers, and
 * verifyTopK's exact values against patchingSweep's.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { attributionSweep, attributionSweeps, verifyTopK } from '../../src/experiments/attribution.ts';
import { PATCH_SITES, patchingSweep } from '../../src/experiments/patching.ts';
import { parseMetricSpec } from '../../src/experiments/metric-spec.ts';
import { maxAbs, maxAbsDiff } from '../helpers/compare.ts';
import { fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { ATP_STAR_FIXTURES, GRAD_FIXTURES, fixtureAtp, fixtureAtpStar } from '../helpers/grad-fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';

describe.each(GRAD_FIXTURES)('%s: AtP reproduces atp.json', (name) => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource(name));
  });
  afterAll(() => model?.destroy());

  it.each(['resid_pre', 'attn_out', 'mlp_out', 'z'] as const)('%s', async (site) => {
    const atp = fixtureAtp(name);
    const { prompts } = fixtureCases(name);
    const grid = await attributionSweep(model, prompts[0], prompts[1], site, parseMetricSpec(atp.metric_spec, prompts[0]));
    const ref = atp.sites[site].atp.flat();
    expect(grid.shape).toEqual([atp.sites[site].atp.length, atp.sites[site].atp[0].length]);
    expect(grid.axes).toEqual(atp.sites[site].axes);
    const diff = maxAbsDiff(grid.effects, ref);
    expect(diff, `${site}: max |diff| ${diff.toExponential(2)}`).toBeLessThanOrEqual(1e-4 * maxAbs(ref));
    expect(Math.abs(grid.corrupt - atp.corrupt_metric)).toBeLessThan(1e-3);
    expect(Math.abs(grid.clean - atp.clean_metric)).toBeLessThan(1e-3);
    // values are the estimated patched metric: corrupted + estimate.
    grid.values.forEach((v, i) => expect(v).toBeCloseTo(grid.corrupt + grid.effects[i], 9));
  });
});

const flat = (x: number[][] | number[][][]): number[] => (x as unknown[]).flat(2) as number[];

describe.each(ATP_STAR_FIXTURES)('%s: AtP* matches its float64 definition (atp_star.json)', (name) => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource(name));
  });
  afterAll(() => model?.destroy());

  it.each(['q', 'k', 'q_by_pos', 'k_by_pos'] as const)('QK fix (no GradDrop) on %s cells', async (site) => {
    const ref = fixtureAtpStar(name);
    const { prompts } = fixtureCases(name);
    const grid = await attributionSweep(model, prompts[0], prompts[1], site, parseMetricSpec(ref.metric_spec, prompts[0]), { method: 'atp*', gradDrop: false });
    expect(grid.signed).toBe(true);
    // The reference is [layer][head][pos]; by-position grids are [layer, pos, head] (TransformerLens' order).
    const r = ref.qk[site];
    const want = site.endsWith('_by_pos') ? (r as number[][][]).flatMap((byHead) => byHead[0].map((_, p) => byHead.map((row) => row[p]))).flat() : flat(r);
    expect(grid.axes).toEqual(site.endsWith('_by_pos') ? ['layer', 'pos', 'head'] : ['layer', 'head']);
    const diff = maxAbsDiff(grid.effects, want);
    expect(diff, `${site}: max |diff| ${diff.toExponential(2)} of max ${maxAbs(want).toExponential(2)}`).toBeLessThanOrEqual(1e-4 * maxAbs(want));
  });

  it.each(['resid_pre', 'attn_out', 'mlp_out', 'z', 'q', 'k'] as const)('GradDrop (with the QK fix) on %s', async (site) => {
    const ref = fixtureAtpStar(name);
    const { prompts } = fixtureCases(name);
    const grid = await attributionSweep(model, prompts[0], prompts[1], site, parseMetricSpec(ref.metric_spec, prompts[0]), { method: 'atp*' });
    expect(grid.signed).toBe(false);
    expect(grid.passes).toEqual({ forward: 1 + model.config.n_layers, backward: model.config.n_layers });
    const want = flat(ref.graddrop[site]);
    const diff = maxAbsDiff(grid.effects, want);
    expect(diff, `${site}: max |diff| ${diff.toExponential(2)} of max ${maxAbs(want).toExponential(2)}`).toBeLessThanOrEqual(1e-4 * maxAbs(want));
  });
});

describe('verifyTopK', () => {
  it('re-runs the k largest cells exactly: the values patchingSweep gives them', async () => {
    const name = 'induction-2l';
    const model = await loadModel(await testGpu(), await fixtureSource(name));
    try {
      const atp = fixtureAtp(name);
      const { prompts } = fixtureCases(name);
      const metric = parseMetricSpec(atp.metric_spec, prompts[0]);
      const grid = await attributionSweep(model, prompts[0], prompts[1], 'resid_pre', metric);
      const v = await verifyTopK(model, prompts[0], prompts[1], grid, metric, 5);
      expect(v.cells).toHaveLength(5);
      const mags = v.cells.map((c) => Math.abs(c.estimate));
      expect(mags).toEqual([...mags].sort((a, b) => b - a));
      expect(Math.min(...mags)).toBeGreaterThanOrEqual(Math.max(...[...grid.effects].filter((_, i) => !v.cells.some((c) => c.index === i)).map(Math.abs)));
      const exact = await patchingSweep(model, prompts[0], prompts[1], 'resid_pre', metric);
      for (const c of v.cells) {
        expect(c.coords).toEqual([Math.floor(c.index / grid.shape[1]), c.index % grid.shape[1]]);
        expect(Math.abs(c.exact - (exact.values[c.index] - exact.corrupt))).toBeLessThan(1e-4);
        // And the float64 reference's exact patching.
        expect(Math.abs(c.exact + atp.corrupt_metric - atp.sites.resid_pre.exact[c.coords[0]][c.coords[1]])).toBeLessThan(1e-3);
      }
      expect(v.maxError).toBeCloseTo(Math.max(...v.cells.map((c) => Math.abs(c.estimate - c.exact))), 12);
    } finally {
      model.destroy();
    }
  });
});

describe('attributionSweeps', () => {
  it('every site from one corrupted backward: each grid equals its own sweep', async () => {
    const name = 'tiny-llama-random';
    const model = await loadModel(await testGpu(), await fixtureSource(name));
    try {
      const atp = fixtureAtp(name);
      const { prompts } = fixtureCases(name);
      const metric = parseMetricSpec(atp.metric_spec, prompts[0]);
      const all = await attributionSweeps(model, prompts[0], prompts[1], PATCH_SITES, metric);
      expect([...all.keys()]).toEqual([...PATCH_SITES]);
      for (const site of ['resid_pre', 'z', 'k_by_pos', 'pattern'] as const) {
        const one = await attributionSweep(model, prompts[0], prompts[1], site, metric);
        expect([...all.get(site)!.effects]).toEqual([...one.effects]);
        const exact = await patchingSweep(model, prompts[0], prompts[1], site, metric);
        expect(all.get(site)!.shape).toEqual(exact.shape);
        expect(all.get(site)!.axes).toEqual(exact.axes);
      }
      expect(all.get('z')!.passes).toEqual({ forward: 2, backward: 1 });
    } finally {
      model.destroy();
    }
  });
});
