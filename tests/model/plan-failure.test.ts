/**
 * A plan that fails while it is being built (here: a binding window over the device's limit,
 * found after the activation scratch was taken from the pool) gives every buffer back, so
 * retrying leaks nothing, the retry fails the same way (not with an OutOfMemoryError under a
 * budget), and `model.destroy()` leaves the pool as it was before the model.
 */
import { describe, it, expect } from 'vitest';
import { acquireGpu } from '../../src/gpu/device.ts';
import { loadModel } from '../../src/hooks/load.ts';
import { fixtureSource } from '../helpers/fixtures.ts';

describe('a plan that fails while being built', () => {
  it('returns its scratch to the pool; the same request fails the same way; destroy() frees everything', async () => {
    // 1 MiB bindings: induction-2l's weights fit, but the attention scores of 256 rows x 17
    // positions ([256, 4, 17, 17] fp32 = 1.13 MiB) do not, and that window is bound only after
    // the plan has taken its scratch. The 120 MiB budget fits the run's 78 MiB once, not twice.
    const gpu = await acquireGpu({ maxBindingBytes: 1 << 20, memoryBudgetBytes: 120 << 20 });
    try {
      const before = { live: gpu.pool.liveBytes, inUse: gpu.pool.inUseBytes, weights: gpu.pool.weightBytes };
      const model = await loadModel(gpu, await fixtureSource('induction-2l'));
      const tokens = Array.from({ length: 256 }, (_, b) => Array.from({ length: 17 }, (_, p) => (b * 17 + p) % 512));
      const inUse = gpu.pool.inUseBytes;
      for (let i = 0; i < 3; i++) {
        await expect(model.run(tokens)).rejects.toThrow(/exceeds the device's binding limit/);
        expect(gpu.pool.inUseBytes, `bytes in use after failure ${i + 1}`).toBe(inUse);
      }
      // The model still runs a shape that fits.
      const ok = await model.run([tokens[0]]);
      expect((await ok.logits.read()).length).toBe(17 * 512);
      ok.release();
      model.destroy();
      expect({ live: gpu.pool.liveBytes, inUse: gpu.pool.inUseBytes, weights: gpu.pool.weightBytes }).toEqual(before);
    } finally {
      gpu.destroy();
    }
  });
});
