/**
 * The one-invocation-per-item kernels take their workgroup size from the host (the shaders'
 * `WG` override constant, `Gpu.workgroupSize`): with 48 invocations per workgroup (not a power
 * of two) and grids folded into two dimensions past 5 workgroups, a forward with every hook
 * point cached, an intervention, a head-ablation sweep (resumed passes over cached keys and
 * values) and a backward with weight gradients give the same bits as with the default 64. A
 * kernel that still assumed 64 anywhere, in its shader or its grid, would leave items unwritten
 * or write the wrong ones.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireGpu } from '../../src/gpu/device.ts';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { meanAblate } from '../../src/hooks/interventions.ts';
import { headAblationSweep } from '../../src/experiments/ablation.ts';
import { logitDiffMetric, lossMetric } from '../../src/model/metric.ts';
import { fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';

const bytes = (a: Float32Array | Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** Everything the run computes, by name. */
async function outputs(model: Model, prompts: number[][]): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const run = await model.runWithCache(prompts);
  out.set('logits', bytes(await run.logits.read()));
  for (const n of run.cache.names) out.set(n, bytes(await run.cache.read(n)));
  const ablated = await model.run(prompts, { hooks: [meanAblate('blocks.0.hook_mlp_out', run.cache, { pos: [1, 3] })] });
  out.set('mean-ablated logits', bytes(await ablated.logits.read()));
  ablated.release();
  run.release();
  const sweep = await headAblationSweep(model, prompts[0], logitDiffMetric(prompts[0].length - 1, 3, 7), { mode: 'mean' });
  out.set('head ablation sweep', bytes(sweep.values));
  const loss = prompts.map((p) => lossMetric(p, 0, p.length - 1));
  const g = await model.runWithGrad(prompts, loss, { weights: true, grads: ['hook_embed', 'blocks.0.attn.hook_q', 'blocks.1.mlp.hook_pre'] });
  for (const n of ['hook_embed', 'blocks.0.attn.hook_q', 'blocks.1.mlp.hook_pre']) out.set(`grad ${n}`, bytes(await g.grads.read(n)));
  for (const [n, t] of await g.weightGrads!.read()) out.set(`weight grad ${n}`, bytes(t.data));
  g.weightGrads!.release();
  g.release();
  return out;
}

describe.each(['tiny-gpt2-random', 'tiny-llama-random'])('%s with 48 invocations per workgroup', (name) => {
  const { prompts } = fixtureCases(name);
  let plain: Model;
  let odd: Model;
  beforeAll(async () => {
    plain = await loadModel(await testGpu(), await fixtureSource(name));
    odd = await loadModel(await testGpu({ workgroupSize: 48, maxWorkgroupsPerDimension: 5 }), await fixtureSource(name));
  });
  afterAll(() => {
    plain?.destroy();
    odd?.destroy();
  });

  it('gives the same bits as 64', async () => {
    expect(odd.gpu.workgroupSize).toBe(48);
    const want = await outputs(plain, prompts);
    const got = await outputs(odd, prompts);
    expect([...got.keys()]).toEqual([...want.keys()]);
    expect(want.size).toBeGreaterThan(40);
    for (const [n, b] of want) expect(got.get(n)!.equals(b), n).toBe(true);
  });
});

it('a workgroup size the device cannot run is refused before a device is made', async () => {
  await expect(acquireGpu({ workgroupSize: 0 })).rejects.toThrow(/workgroupSize 0: expected a whole number from 1 to \d+/);
  await expect(acquireGpu({ workgroupSize: 1e6 })).rejects.toThrow(/workgroupSize 1000000: expected a whole number from 1 to \d+/);
});
