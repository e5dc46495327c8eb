/**
 * `model.destroy()` while runs are in flight: every run that has not finished rejects with an
 * error that says the model was destroyed, never a result computed on freed weights (which read
 * back as all zeros), and nothing stays allocated.
 */
import { describe, it, expect } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import { hookFn } from '../../src/hooks/interventions.ts';
import { logitDiffMetric } from '../../src/model/metric.ts';
import { patchingSweep } from '../../src/experiments/patching.ts';
import { BASE_CACHE, baseRun, runVariants } from '../../src/experiments/sweep.ts';
import { fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';

const NAME = 'tiny-gpt2-random';

describe('destroy() racing a run', () => {
  it('a hook function that destroys the model makes its run reject (no all-zero logits)', async () => {
    const gpu = await testGpu();
    const model = await loadModel(gpu, await fixtureSource(NAME));
    const [clean] = fixtureCases(NAME).prompts;
    const run = model.run([clean], { cache: ['blocks.1.hook_resid_post'], hooks: [hookFn('blocks.0.hook_resid_mid', () => model.destroy())] });
    await expect(run).rejects.toThrow(/model was destroyed during this run/);
    expect(gpu.pool.inUseCount).toBe(0);
  });

  it('runs queued behind the destroy, and one waiting on its plan, reject', async () => {
    const gpu = await testGpu();
    const model = await loadModel(gpu, await fixtureSource(NAME));
    const [clean] = fixtureCases(NAME).prompts;
    const first = model.run([clean]); // starts at once: awaits its plan's error scopes
    const second = model.run([clean, clean]);
    model.destroy();
    await expect(first).rejects.toThrow(/destroyed/);
    await expect(second).rejects.toThrow(/destroyed/);
    expect(gpu.pool.inUseCount).toBe(0);
  });

  it('a sweep started just before destroy() rejects', async () => {
    const gpu = await testGpu();
    const model = await loadModel(gpu, await fixtureSource(NAME));
    const [clean, corrupt] = fixtureCases(NAME).prompts;
    const sweep = patchingSweep(model, clean, corrupt, 'resid_pre', logitDiffMetric(clean.length - 1, 1, 2));
    model.destroy();
    await expect(sweep).rejects.toThrow(/destroyed/);
  });

  it('a sweep pass whose hook function destroys the model rejects (no values from freed weights)', async () => {
    const gpu = await testGpu();
    const model = await loadModel(gpu, await fixtureSource(NAME));
    const [clean] = fixtureCases(NAME).prompts;
    const metric = logitDiffMetric(clean.length - 1, 1, 2);
    const base = await baseRun(model, clean, (n) => BASE_CACHE.test(n), metric);
    const variants = [{ layer: 1, pos: 0, hooks: [hookFn('blocks.1.hook_resid_mid', () => model.destroy())] }];
    await expect(runVariants(model, base, variants, metric, { shift: 0, scale: 1 }, base.metric)).rejects.toThrow(/destroyed during this run/);
    base.release();
    expect(gpu.pool.inUseCount).toBe(0);
  });
});
