/** Memory and lifetime: released caches return their buffers; 1,000 hooked runs leak nothing. */
import { describe, it, expect } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import { patchFrom, zeroHead } from '../../src/hooks/interventions.ts';
import { fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';

describe('lifetime', () => {
  it('1,000 consecutive hooked runs with caches released leave the live GPU buffers where they started', async () => {
    const gpu = await testGpu();
    const model = await loadModel(gpu, await fixtureSource('tiny-gpt2-random'));
    const [clean, corrupt] = fixtureCases('tiny-gpt2-random').prompts;
    const source = await model.run([clean], { cache: /hook_resid_pre$/ });
    // The warm-up run has the loop's interventions, so every buffer size the loop needs (the
    // intervention table's too) is in the pool before counting starts.
    const warm = await model.run([corrupt], { cache: /hook_pattern$/, hooks: [zeroHead(0, 1), patchFrom('blocks.1.hook_resid_pre', source.cache, { pos: 0 })] });
    warm.release();
    const start = { buffers: gpu.pool.liveBuffers, bytes: gpu.pool.liveBytes, inUse: gpu.pool.inUseCount };
    for (let i = 0; i < 1000; i++) {
      const r = await model.run([corrupt], {
        cache: /hook_pattern$/,
        hooks: [zeroHead(i % 2, i % 4), patchFrom('blocks.1.hook_resid_pre', source.cache, { pos: i % 12 })],
      });
      if (i % 100 === 0) await r.logits.read(); // wait on the GPU now and then
      r.release();
    }
    expect({ buffers: gpu.pool.liveBuffers, bytes: gpu.pool.liveBytes, inUse: gpu.pool.inUseCount }).toEqual(start);
    source.release();
    model.destroy();
  });

  it('a released cache cannot be read, and releasing twice is harmless', async () => {
    const gpu = await testGpu();
    const model = await loadModel(gpu, await fixtureSource('tiny-gpt2-random'));
    const r = await model.run([[1, 2, 3]], { cache: ['blocks.0.hook_resid_pre'] });
    const t = r.cache.get('blocks.0.hook_resid_pre');
    r.release();
    r.release();
    expect(() => r.cache.get('blocks.0.hook_resid_pre')).toThrow(/released/);
    await expect(t.read()).rejects.toThrow(/used after release/);
    model.destroy();
  });
});
