/**
 * gelu_new (GPT-2's tanh GELU) against `geluNewCpu`, the exact float64 function with no clamp.
 *
 * Tolerance: y = 0.5 x (1 + tanh(a)), so an error d in tanh costs 0.5 |x| d. The shader's tanh
 * (a few ulp of 1), the rounding of its argument (which moves tanh by |a| (1 - tanh^2 a) * 3u
 * <= 1.5u) and its clamp at |a| = 10 (1 - tanh(10) = 4e-9 < u/8) give d <= 8u (u = 2^-24), so
 * abs = 0.5 max|x| 8u, and rel = 4u for the products. Large inputs are checked one by one,
 * since a max|ref| of 1e4 would make any tolerance relative to it meaningless for small values.
 */
import { describe, it, expect } from 'vitest';
import { geluNew, softcap } from '../../src/gpu/kernels/elementwise.ts';
import { geluNewCpu, softcapCpu } from '../../src/gpu/kernels/elementwise.cpu.ts';
import { submitSteps } from '../../src/gpu/recorder.ts';
import { maxAbs } from '../helpers/compare.ts';
import { expectNear, firstNaN, U } from './check.ts';
import { kernelHarness } from './harness.ts';
import { mulberry32, normal } from './random.ts';

const kh = kernelHarness();
const { params, upload, empty } = kh;

async function gpuGelu(x: Float32Array): Promise<Float32Array> {
  const xT = upload(x, 'x');
  const yT = empty(x.length, 'y');
  submitSteps(kh.gpu, [geluNew(kh.gpu, { y: yT.buffer, x: xT.buffer, n: x.length, label: 'gelu' }, params)], 'gelu');
  return yT.read();
}

function cpuGelu(x: Float32Array): Float32Array {
  const y = new Float32Array(x.length);
  geluNewCpu(y, x, x.length);
  return y;
}

describe('gelu_new', () => {
  it('1001 values ~ N(0, 3^2) (not a multiple of the 64-wide workgroup)', async () => {
    const x = normal(mulberry32(5), 1001, 0, 3);
    const y = await gpuGelu(x);
    expect(firstNaN(y)).toBe(-1);
    expectNear('gelu N(0,9)', y, cpuGelu(x), { abs: 0.5 * maxAbs(x) * 8 * U, rel: 4 * U });
  });

  it('a single value (n = 1)', async () => {
    const x = new Float32Array([0.5]);
    expectNear('gelu n=1', await gpuGelu(x), cpuGelu(x), { abs: 0.5 * 0.5 * 8 * U, rel: 4 * U });
  });

  it('large magnitudes: +-100, +-1e4 and around the tanh clamp give no NaN and match', async () => {
    const big = [100, -100, 1e4, -1e4, 1e6, -1e6, 3e12, -3e12, 3.4e38, -3.4e38];
    const nearClamp = [5.2, 5.4, 5.45, 5.5, 5.7, -5.2, -5.4, -5.45, -5.5, -5.7, 10, -10, 30, -30];
    const x = new Float32Array([...big, ...nearClamp]);
    const y = await gpuGelu(x);
    const ref = cpuGelu(x);
    expect(firstNaN(y)).toBe(-1);
    for (let i = 0; i < x.length; i++) {
      const xi = x[i]!;
      // The same per-element bound as above, with this element's |x|.
      const tol = 0.5 * Math.abs(xi) * 8 * U + 4 * U * Math.abs(ref[i]!);
      expect(Math.abs(y[i]! - ref[i]!), `gelu_new(${xi}) = ${y[i]}, reference ${ref[i]}`).toBeLessThanOrEqual(tol);
    }
    // Exactly the identity / zero far out, as the exact function is in fp32.
    expect(y[0]).toBe(100);
    expect(y[1] === 0).toBe(true); // 0 or -0
    expect(y[2]).toBe(1e4);
    expect(y[3] === 0).toBe(true);
    // Past x^3 overflowing fp32 (3e12^3, 3.4e38^3) the clamp still gives x and 0, never NaN.
    expect(y[6]).toBe(Math.fround(3e12));
    expect(y[7] === 0).toBe(true);
    expect(y[8]).toBe(Math.fround(3.4e38));
    expect(y[9] === 0).toBe(true);
  });
});

describe('softcap (final logit soft-cap), in place', () => {
  it('1001 values ~ N(0, 40^2) capped at 30, and values far past the cap', async () => {
    // y = c tanh(x / c): tanh's few-ulp error d (as for gelu_new, d <= 8 u) costs c d, so
    // abs = 8 u c; rel = 4 u covers the divide and the final product.
    const cap = 30;
    const x = new Float32Array([...normal(mulberry32(6), 1001, 0, 40), 1e4, -1e4, 3.4e38, -3.4e38]);
    const yT = upload(x, 'y');
    submitSteps(kh.gpu, [softcap(kh.gpu, { y: yT.buffer, n: x.length, cap, label: 'softcap' }, params)], 'softcap');
    const y = await yT.read();
    const ref = x.slice();
    softcapCpu(ref, ref.length, cap);
    expect(firstNaN(y)).toBe(-1);
    expectNear('softcap', y, ref, { abs: 8 * U * cap, rel: 4 * U });
    expect(Math.max(...y.map(Math.abs))).toBeLessThanOrEqual(cap);
  });
});
