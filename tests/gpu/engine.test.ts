/**
 * The GPU layer's promises: one submit per forward, pipelines compiled once, buffers reused,
 * nothing read back unasked, and clear errors for a lost device, an exhausted budget and bad input.
 */
import { describe, it, expect } from 'vitest';
import { acquireGpu } from '../../src/gpu/device.ts';
import { DeviceLostError, OutOfMemoryError } from '../../src/gpu/errors.ts';
import { sizeClass } from '../../src/gpu/pool.ts';
import { loadModel } from '../../src/hooks/load.ts';
import { fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';

const NAME = 'tiny-gpt2-random';

describe('recording and reuse', () => {
  it('a forward is one queue submit, compiles pipelines only the first time, and reuses its buffers', async () => {
    const gpu = await testGpu();
    const model = await loadModel(gpu, await fixtureSource(NAME));
    const { prompts } = fixtureCases(NAME);
    (await model.run(prompts)).release();
    const pipelines = gpu.pipelines.size;
    const buffers = gpu.pool.liveBuffers;

    const queue = gpu.device.queue;
    const submit = queue.submit.bind(queue);
    let submits = 0;
    let readbacks = 0;
    const createBuffer = gpu.device.createBuffer.bind(gpu.device);
    queue.submit = (cbs: Iterable<GPUCommandBuffer>) => {
      submits++;
      submit(cbs);
    };
    gpu.device.createBuffer = (d: GPUBufferDescriptor) => {
      if (d.usage & GPUBufferUsage.MAP_READ) readbacks++;
      return createBuffer(d);
    };
    try {
      for (let i = 0; i < 3; i++) {
        const r = await model.run(prompts, { cache: ['blocks.0.attn.hook_pattern'] });
        expect(submits).toBe(i + 1);
        r.release();
      }
      expect(readbacks).toBe(0);
    } finally {
      queue.submit = submit;
      gpu.device.createBuffer = createBuffer;
    }
    expect(gpu.pipelines.size).toBe(pipelines);
    // Outputs came back to the pool and were reused: no new buffers after the first run.
    expect(gpu.pool.liveBuffers).toBe(buffers + 1); // + the one pattern buffer, now free in the pool
    expect(gpu.pool.inUseCount).toBeGreaterThan(0); // the plan's scratch
    model.destroy();
  });

  it('size classes round up by at most a quarter octave', () => {
    for (const n of [1, 255, 256, 1000, 65536, 65537, 100_000, 154_389_504]) {
      const c = sizeClass(n);
      expect(c).toBeGreaterThanOrEqual(n);
      expect(c).toBeLessThanOrEqual(Math.max(256, n * 1.25 + 256));
    }
  });
});

describe('errors', () => {
  it('a lost device is a DeviceLostError on the next run', async () => {
    const gpu = await acquireGpu();
    const model = await loadModel(gpu, await fixtureSource(NAME));
    gpu.device.destroy();
    await gpu.device.lost;
    await expect(model.run([[1, 2, 3]])).rejects.toThrow(DeviceLostError);
    await expect(model.run([[1, 2, 3]])).rejects.toThrow(/GPU device lost/);
  });

  it('a run whose outputs exceed the GPU budget fails before allocating, naming the bytes', async () => {
    const gpu = await testGpu();
    const model = await loadModel(gpu, await fixtureSource(NAME));
    const before = gpu.pool.liveBytes;
    gpu.pool.budgetBytes = gpu.pool.liveBytes + 1024;
    try {
      await expect(model.run([[1, 2, 3]], { cache: /./ })).rejects.toThrow(OutOfMemoryError);
      await expect(model.run([[1, 2, 3]], { cache: /./ })).rejects.toThrow(/needs .* but .* is available/);
    } finally {
      gpu.pool.budgetBytes = Infinity;
    }
    expect(gpu.pool.liveBytes).toBe(before);
    model.destroy();
  });

  it('memoryBudgetBytes sets the budget a run is checked against', async () => {
    // The weights (657 KiB) fit; the outputs of caching every hook point do not.
    const gpu = await acquireGpu({ memoryBudgetBytes: 900 * 1024 });
    const model = await loadModel(gpu, await fixtureSource(NAME));
    await expect(model.run(fixtureCases(NAME).prompts, { cache: /./ })).rejects.toThrow(/needs .* of GPU memory .* but .* is available; cache fewer hook points/);
    expect(gpu.pool.inUseCount).toBe(0);
    model.destroy();
    expect(gpu.pool.weightBytes).toBe(0);
    gpu.destroy();
  });

  it('weights larger than the budget fail to load and leave nothing allocated', async () => {
    const gpu = await acquireGpu();
    gpu.pool.budgetBytes = 10_000;
    await expect(loadModel(gpu, await fixtureSource(NAME))).rejects.toThrow(/weights need .* but .* of the .* budget is available/);
    expect(gpu.pool.liveBytes).toBe(0);
    gpu.destroy();
  });

  it('an allocation the driver refuses is an error naming what was being allocated', async () => {
    const gpu = await testGpu();
    const huge = gpu.limits.maxBufferSize + 256;
    await expect(gpu.guard('allocating a test buffer', huge, () => gpu.device.createBuffer({ size: huge, usage: GPUBufferUsage.STORAGE }))).rejects.toThrow(/allocating a test buffer/);
  });

  it('bad token input names the problem', async () => {
    const gpu = await testGpu();
    const model = await loadModel(gpu, await fixtureSource(NAME));
    await expect(model.run([[1, 1000]])).rejects.toThrow(/token id 1000 at \[0, 1\] is not in the vocabulary \(ids are integers 0 \.\. 999\)/);
    await expect(model.run([Array(65).fill(1)])).rejects.toThrow(/65 tokens is more than the model's context of 64/);
    await expect(model.run([[1, 2], [3]])).rejects.toThrow(/different lengths \(2, 1\)/);
    await expect(model.run([])).rejects.toThrow(/no token rows/);
    await expect(model.run([[1, 2]], { cache: ['blocks.0.attn.hook_patern'] })).rejects.toThrow(/unknown hook point "blocks.0.attn.hook_patern"; did you mean blocks.0.attn.hook_pattern/);
    model.destroy();
  });
});
