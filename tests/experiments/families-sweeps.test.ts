/**
 * Interventions and sweeps run unchanged on GPT-NeoX, Llama-style, Gemma 3 and Qwen3 models: a resumed, batched
 * sweep equals the same patches on full forwards, including keys/values with grouped-query
 * attention (fewer key/value heads) and rotary keys taken from the cache.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { patchingSweep, type PatchSite } from '../../src/experiments/patching.ts';
import { logitDiffMetric, metricCpu } from '../../src/model/metric.ts';
import type { Intervention } from '../../src/hooks/interventions.ts';
import { referenceCells } from '../helpers/patch-cells.ts';
import { fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';

describe.each(['tiny-llama-random', 'tiny-neox-random', 'tiny-gemma3-random', 'tiny-qwen3-random'])('%s sweeps', (name) => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource(name));
  });
  afterAll(() => model?.destroy());

  it.each(['resid_pre', 'mlp_out', 'k', 'v_by_pos', 'z_by_pos'] as PatchSite[])('%s equals full-forward patches', async (site) => {
    const [clean, corrupt] = fixtureCases(name).prompts;
    const T = clean.length;
    const metric = logitDiffMetric(T - 1, 11, 22);
    const grid = await patchingSweep(model, clean, corrupt, site, metric);
    const cleanRun = await model.run([clean], { cache: () => true });
    const rows = referenceCells(model.config, site, T, cleanRun.cache) as Intervention[][]; // no padding on these sites
    expect(rows.every((c) => typeof c !== 'number')).toBe(true);
    expect(grid.values.length).toBe(rows.length);
    const r = await model.run(
      rows.map(() => corrupt),
      { hooks: rows.flatMap((ivs, b) => ivs.map((iv) => ({ ...iv, batch: b }) as Intervention)) },
    );
    const want = metricCpu(metric, await r.logits.read(), rows.length, model.config.d_vocab);
    want.forEach((w, i) => expect(Math.abs(grid.values[i] - w), `${site} cell ${i}`).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(w))));
    r.release();
    cleanRun.release();
  });
});
