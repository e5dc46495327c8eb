/**
 * Residual `add` against `addCpu`.
 *
 * Tolerance: zero. Both sides round the exact sum of two fp32 values once to fp32 (the float64
 * sum of two fp32 values whose exponents differ by less than 29 is exact, so the reference's
 * store to Float32Array is that one rounding; WebGPU requires a correctly rounded f32 add).
 * The data keeps exponents within that range and avoids denormals (which a GPU may flush).
 */
import { describe, it } from 'vitest';
import { add } from '../../src/gpu/kernels/elementwise.ts';
import { addCpu } from '../../src/gpu/kernels/elementwise.cpu.ts';
import { submitSteps } from '../../src/gpu/recorder.ts';
import { expectNear } from './check.ts';
import { kernelHarness } from './harness.ts';
import { mulberry32, normal } from './random.ts';

const kh = kernelHarness();
const { params, upload, empty } = kh;

async function check(name: string, a: Float32Array, b: Float32Array): Promise<void> {
  const n = a.length;
  const out = empty(n, 'out');
  submitSteps(kh.gpu, [add(kh.gpu, { out: out.buffer, a: upload(a, 'a').buffer, b: upload(b, 'b').buffer, n, label: name }, params)], name);
  const ref = new Float32Array(n);
  addCpu(ref, a, b, n);
  expectNear(name, await out.read(), ref, { abs: 0, rel: 0 });
}

describe('add', () => {
  it('3 x 7 x 53 values (a residual stream of B=3, T=7, C=53), distinct per element', async () => {
    const rng = mulberry32(9);
    const n = 3 * 7 * 53;
    // Row r of a gets offset r, so a value read from the wrong element is visibly off.
    const a = normal(rng, n);
    for (let i = 0; i < n; i++) a[i] += Math.floor(i / 53);
    await check('add resid', a, normal(rng, n));
  });

  it('n = 1', async () => {
    await check('add n=1', new Float32Array([1.5]), new Float32Array([-0.25]));
  });

  it('large magnitudes (+-1e4, +-100) and cancellation', async () => {
    const rng = mulberry32(10);
    const a = normal(rng, 130, 0, 1e4);
    const b = new Float32Array(a.length);
    for (let i = 0; i < a.length; i++) b[i] = i % 2 ? -a[i]! : normal(rng, 1, 0, 100)[0]!; // exact cancellation on odd i
    await check('add large', a, b);
  });
});
