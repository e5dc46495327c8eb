/** The forward's sites are exactly the TransformerLens hook points, with TransformerLens shapes. */
import { describe, it, expect } from 'vitest';
import { buildForward } from '../../src/model/forward.ts';
import { hookShapes } from '../../src/model/hook-points.ts';
import { loadModel } from '../../src/hooks/load.ts';
import { GPT2_FIXTURES, fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';

describe.each(GPT2_FIXTURES)('%s hook points', (name) => {
  it('every hook the Hugging Face fixture recorded exists with the same shape', async () => {
    const { hook_shapes, prompts } = fixtureCases(name);
    const gpu = await testGpu();
    const model = await loadModel(gpu, await fixtureSource(name));
    const shapes = hookShapes(model.config, prompts.length, prompts[0].length);
    for (const [hook, shape] of Object.entries(hook_shapes)) {
      if (hook === 'logits') continue;
      expect(shapes.get(hook), hook).toEqual(shape);
    }
    model.destroy();
  });

  it('the forward places a site at each hook point, in order, with the planned shape', async () => {
    const gpu = await testGpu();
    const model = await loadModel(gpu, await fixtureSource(name));
    // Reach the weights through a plan the model builds for itself.
    const weights = (model as unknown as { weights: Parameters<typeof buildForward>[2] }).weights;
    const shapes = hookShapes(model.config, 2, 5);
    // With per-head results: every hook point.
    const full = buildForward(gpu, model.config, weights, { batch: 2, pos: 5, withResult: true });
    expect([...full.sites.keys()]).toEqual([...shapes.keys()]);
    for (const [n, s] of full.sites) expect(s.shape, n).toEqual(shapes.get(n));
    full.destroy();
    // Without: all but hook_result, which costs H x attn_out and is computed only when asked.
    const plain = buildForward(gpu, model.config, weights, { batch: 2, pos: 5 });
    expect([...plain.sites.keys()]).toEqual([...shapes.keys()].filter((n) => !n.endsWith('hook_result')));
    plain.destroy();
    // Runs from a residual and runs that stop: the hook points of the layers they compute.
    const L = model.config.n_layers;
    for (const [start, stop] of [
      [undefined, 0],
      [undefined, 1],
      [0, undefined],
      [1, L],
      [L, undefined],
      [1, 1],
    ] as const) {
      const plan = buildForward(gpu, model.config, weights, {
        batch: 2,
        pos: 5,
        ...(start !== undefined ? { fromLayer: start, fromResidual: true } : {}),
        ...(stop !== undefined ? { toLayer: stop } : {}),
      });
      const want = hookShapes(model.config, 2, 5, { startAtLayer: start, stopAtLayer: stop });
      expect([...plan.sites.keys()], `start ${start} stop ${stop}`).toEqual([...want.keys()].filter((n) => !n.endsWith('hook_result')));
      expect(plan.logits === null, `start ${start} stop ${stop}: logits`).toBe(stop !== undefined);
      plan.destroy();
    }
    model.destroy();
  });
});
