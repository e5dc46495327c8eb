/**
 * Half-precision weights on the GPU (shader-f16): matrices stored as f16, widened to f32 as the
 * kernels read them, every product and sum in fp32.
 */
import { describe, it, expect } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import { maxAbs, maxAbsDiff } from '../helpers/compare.ts';
import { checkpointSource, llamaCheckpoint } from '../helpers/checkpoints.ts';
import { fixtureActivations, fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';

const tokens = [[5, 17, 99, 3, 42, 7, 150, 8, 61]];

describe('f16 weights', async () => {
  const gpu = await testGpu();
  const hasF16 = gpu.features.has('shader-f16');

  it('the test device has shader-f16 (lavapipe does)', () => {
    expect(hasF16).toBe(true);
  });

  it('an F16 checkpoint stays F16 on the GPU: half the weight memory, the same logits as widened to fp32', async () => {
    const source = checkpointSource(llamaCheckpoint({}, 'LlamaForCausalLM', 9), 'F16');
    const half = await loadModel(gpu, source); // 'auto'
    const full = await loadModel(gpu, source, { f16: false });
    expect(half.weightsF16).toBe(true);
    expect(full.weightsF16).toBe(false);
    // Norm weights and the rotary tables stay fp32, so a little more than half.
    expect(half.weightBytes / full.weightBytes).toBeGreaterThan(0.5);
    expect(half.weightBytes / full.weightBytes).toBeLessThan(0.56);
    const ra = await half.run(tokens);
    const rb = await full.run(tokens);
    const a = await ra.logits.read();
    const b = await rb.logits.read();
    ra.release();
    rb.release();
    // The f16 values are exactly the widened ones: only rounding of identical fp32 sums differs.
    expect(maxAbsDiff(a, b)).toBeLessThanOrEqual(1e-6 * Math.max(1, maxAbs(b)));
    half.destroy();
    full.destroy();
  });

  it('an fp32 checkpoint forced to f16 stays within the stated tolerance of Hugging Face', async () => {
    // Rounding each weight to f16 perturbs it by at most 2^-11 (4.9e-4) relative; through two
    // layers this moved the logits by 3.2e-4 of their largest magnitude here. Stated tolerance:
    // 2e-3 x max |logits| (about four f16 roundings' worth), so a kernel that read the halves
    // wrongly (garbage, not rounding) still fails.
    const name = 'induction-2l';
    const model = await loadModel(gpu, await fixtureSource(name), { f16: true });
    expect(model.weightsF16).toBe(true);
    const ref = fixtureActivations(name).float32('logits');
    const r = await model.run(fixtureCases(name).prompts);
    const err = maxAbsDiff(await r.logits.read(), ref);
    console.log(`induction-2l with f16 weights: max |logit error| ${err.toExponential(2)} (max |logit| ${maxAbs(ref).toFixed(1)})`);
    expect(err).toBeLessThanOrEqual(2e-3 * maxAbs(ref));
    expect(err).toBeGreaterThan(0); // the weights really were rounded
    r.release();
    model.destroy();
  });
});
