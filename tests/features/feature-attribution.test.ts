/**
 * Attribution patching over SAE features (`featureAttribution`): every feature's estimate at
 * every position, (clean - corrupt activation) x d metric / d activation on the corrupted run,
 * against float64 PyTorch (sae_grad_ref.py's `gemma_err/atp_features`, Gemma Scope 2's SAE on
 * layer 1's attention input, error term) within 1e-4 of the largest; and its grid against the
 * exact feature patching sweep (`featurePatchingSweep`: the same cells, each patched alone): the
 * same features, and how well the estimates track the exact effects (reported; first-order
 * attribution can be wrong, as on the activation grids); `verifyFeatureTopK`'s exact feature
 * patching against float64 PyTorch (feature_patch_ref.py: every feature at every position patched
 * alone).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { loadSae } from '../../src/features/sae-load.ts';
import type { Sae } from '../../src/features/sae.ts';
import { featureAttribution } from '../../src/experiments/feature-attribution.ts';
import { featurePatchingSweep } from '../../src/experiments/feature-sweeps.ts';
import { verifyFeatureTopK } from '../../src/experiments/feature-verify.ts';
import { pearson } from '../../src/experiments/attribution.ts';
import { parseMetricSpec } from '../../src/experiments/metric-spec.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { maxAbs, maxAbsDiff } from '../helpers/compare.ts';
import { FIXTURES, fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { fixtureAtp } from '../helpers/grad-fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';
import { FEATURE_PATCHING, GEMMA_SAE, saeFolder } from './helpers.ts';

const REF = new SafetensorsFile(new Uint8Array(readFileSync(join(FIXTURES, 'saes', 'sae_grads.safetensors'))), 'sae_grads.safetensors');

describe('feature attribution on tiny-gemma3-random', () => {
  let model: Model;
  const saes: Sae[] = [];
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource('tiny-gemma3-random'));
  });
  afterAll(() => {
    for (const s of saes) s.destroy();
    model?.destroy();
  });
  const load = async (dir: string) => {
    const s = await loadSae(model.gpu, await saeFolder(dir));
    saes.push(s);
    return s;
  };

  it('every feature at every position matches PyTorch (float64)', async () => {
    const sae = await load(join(FIXTURES, 'saes', 'tiny-gemma3-random', 'attn_out_all', 'layer_1_width_80_l0_small'));
    const { prompts } = fixtureCases('tiny-gemma3-random');
    const metric = parseMetricSpec(fixtureAtp('tiny-gemma3-random').metric_spec, prompts[0]);
    const grid = await featureAttribution(model, sae, prompts[0], prompts[1], metric, { k: 3 });
    const ref = REF.float32('gemma_err/atp_features');
    expect(grid.allEffects.length).toBe(ref.length);
    const diff = maxAbsDiff(grid.allEffects, ref);
    expect(diff, `max |diff| ${diff.toExponential(2)}`).toBeLessThanOrEqual(1e-4 * maxAbs(ref));
    expect(grid.passes).toEqual({ forward: 2, backward: 1 });
    expect(Math.abs(grid.corrupt - fixtureAtp('tiny-gemma3-random').corrupt_metric)).toBeLessThan(1e-3);
  });

  it('verifyFeatureTopK: the exact feature patching of every cell matches float64 PyTorch; the k largest estimates beside it', async () => {
    const ref = FEATURE_PATCHING;
    const sae = await load(join(FIXTURES, ref.sae));
    const { prompts } = fixtureCases('tiny-gemma3-random');
    const metric = parseMetricSpec(ref.metric_spec, prompts[0]);
    const grid = await featureAttribution(model, sae, prompts[0], prompts[1], metric, { k: 4 });
    const v = await verifyFeatureTopK(model, sae, prompts[0], prompts[1], grid, metric, 6);
    const live = [...grid.features.keys()].filter((i) => grid.features[i] >= 0);
    const want = live.map((i) => ref.exact[grid.positions[Math.floor(i / 4)]][grid.features[i]]);
    const got = live.map((i) => v.exact.values[i] - v.exact.corrupt);
    const diff = maxAbsDiff(got, want);
    expect(diff, `exact grid: max |diff| ${diff.toExponential(2)} of max ${maxAbs(want).toExponential(2)}`).toBeLessThanOrEqual(1e-4 * maxAbs(want));
    expect(Math.abs(v.exact.corrupt - ref.corrupt_metric)).toBeLessThan(1e-4);
    expect(v.cells).toHaveLength(6);
    const mags = v.cells.map((c) => Math.abs(c.estimate));
    expect(mags).toEqual([...mags].sort((a, b) => b - a));
    const others = live.filter((i) => !v.cells.some((c) => c.index === i)).map((i) => Math.abs(grid.effects[i]));
    expect(Math.min(...mags)).toBeGreaterThanOrEqual(Math.max(...others));
    for (const c of v.cells) {
      expect(c.feature).toBe(grid.features[c.index]);
      expect(c.pos).toBe(grid.positions[c.coords[0]]);
      expect(Math.abs(c.exact - ref.exact[c.pos][c.feature])).toBeLessThanOrEqual(1e-4 * maxAbs(want));
    }
    expect(v.maxError).toBeCloseTo(Math.max(...v.cells.map((c) => Math.abs(c.estimate - c.exact))), 12);
  });

  it.each([
    ['Gemma Scope 2 attention SAE (layer 1)', join('saes', 'tiny-gemma3-random', 'attn_out_all', 'layer_1_width_80_l0_small')],
    ['the shipped JumpReLU SAE on resid_post 3', join('tiny-gemma3-random', 'sae-resid-post-3')],
  ])('the grid has featurePatchingSweep cells; AtP against exact (%s)', async (_, dir) => {
    const sae = await load(dir === join('tiny-gemma3-random', 'sae-resid-post-3') ? GEMMA_SAE : join(FIXTURES, dir));
    const { prompts } = fixtureCases('tiny-gemma3-random');
    const metric = parseMetricSpec(fixtureAtp('tiny-gemma3-random').metric_spec, prompts[0]);
    const k = 4;
    const atp = await featureAttribution(model, sae, prompts[0], prompts[1], metric, { k });
    const exact = await featurePatchingSweep(model, sae, prompts[0], prompts[1], metric, { k });
    expect([...atp.features]).toEqual([...exact.features]);
    expect(atp.clean).toBeCloseTo(exact.clean, 4);
    expect(atp.corrupt).toBeCloseTo(exact.corrupt, 4);
    const live = [...atp.features.keys()].filter((i) => atp.features[i] >= 0);
    expect(live.length).toBeGreaterThan(10);
    const est = live.map((i) => atp.effects[i]);
    const ex = live.map((i) => exact.values[i] - exact.corrupt);
    const r = pearson(est, ex);
    // Top-5 by |exact| found in AtP's top 5 (the hit rate verifyTopK users care about).
    const top = (xs: number[]) => new Set([...xs.keys()].sort((a, b) => Math.abs(xs[b]) - Math.abs(xs[a])).slice(0, 5));
    const [te, tx] = [top(est), top(ex)];
    const hits = [...tx].filter((i) => te.has(i)).length;
    console.log(`${dir}: ${live.length} feature cells, AtP vs exact r = ${r.toFixed(3)}, top-5 hit rate ${hits}/5, largest |exact| ${Math.max(...ex.map(Math.abs)).toFixed(4)}`);
    // Measured on lavapipe: r = 0.83 (attention SAE) and 0.93 (resid_post SAE); a sign or scale
    // error in the feature gradients would break this.
    expect(r).toBeGreaterThan(0.7);
  });
});
