/**
 * Activation backward (gelu_new, exact gelu, SiLU, ReLU; plain and gated as SwiGLU): the CPU
 * reference against central finite differences of `activationCpu`'s float64 functions, then the
 * GPU kernels against the reference on 1001 values ~ N(0, 3^2) plus the extremes +-100 and the
 * 0 kink (ReLU's gradient there is 0, as PyTorch's).
 *
 * Tolerance: the slope is a few fp32 operations on |x| <= 100 (gelu_new's polynomial has
 * |x|^3 terms cancelled by tanh saturating; gelu's erf is A&S 7.1.26, absolute error 1.5e-7 on
 * the cdf, 1.5e-7 on the slope; exp and tanh within a few ulp): abs = 32 u max|dy| (1 + max|u|)
 * plus the erf bound, rel = 8u.
 */
import { describe, it, expect } from 'vitest';
import { activationBackward } from '../../src/gpu/kernels/activation-backward.ts';
import { activationBackwardCpu } from '../../src/gpu/kernels/activation-backward.cpu.ts';
import { erf } from '../../src/gpu/kernels/elementwise.cpu.ts';
import { submitSteps } from '../../src/gpu/recorder.ts';
import { maxAbs } from '../helpers/compare.ts';
import { expectNear, firstNaN, U } from './check.ts';
import { expectMatchesFiniteDiff, project } from './finite-diff.ts';
import { kernelHarness } from './harness.ts';
import { mulberry32, normal, uniform } from './random.ts';

const FNS = ['gelu_new', 'gelu', 'silu', 'relu'] as const;

/** act(x) (times up) in float64, the forward's formulas (as activationCpu, without its fp32 output). */
function act64(fn: (typeof FNS)[number], x: ArrayLike<number>, up: ArrayLike<number> | null): Float64Array {
  const c = Math.sqrt(2 / Math.PI);
  return Float64Array.from({ length: x.length }, (_, i) => {
    const v = x[i];
    let r: number;
    if (fn === 'gelu_new') r = 0.5 * v * (1 + Math.tanh(c * (v + 0.044715 * v * v * v)));
    else if (fn === 'gelu') r = 0.5 * v * (1 + erf(v / Math.SQRT2));
    else if (fn === 'silu') r = v / (1 + Math.exp(-v));
    else r = Math.max(v, 0);
    return up ? r * up[i] : r;
  });
}

describe.each(FNS)('%s backward CPU reference vs finite differences', (fn) => {
  it.each([false, true])('gated %s', (gated) => {
    const rng = mulberry32(fn.length + (gated ? 10 : 0));
    // Keep away from ReLU's kink at 0, where a central difference straddles it.
    const x = Float64Array.from(uniform(rng, 30, -4, 4), (v) => (Math.abs(v) < 0.05 ? v + 0.2 : v));
    const up = gated ? Float64Array.from(uniform(rng, 30)) : null;
    const g = Float64Array.from(uniform(rng, 30));
    const dx = new Float64Array(30);
    const dUp = new Float64Array(30);
    activationBackwardCpu(fn, dx, x, g, 30, up ? { up, dUp } : null);
    expectMatchesFiniteDiff(`${fn} dx`, dx, (xx) => project(g, act64(fn, xx, up)), x);
    if (up) expectMatchesFiniteDiff(`${fn} dUp`, dUp, (uu) => project(g, act64(fn, x, uu)), up);
  });
});

const kh = kernelHarness();
const { params, upload, empty } = kh;

describe.each(FNS)('%s backward on the GPU', (fn) => {
  it.each([false, true])('1001 values ~ N(0, 9) and the extremes, gated %s', async (gated) => {
    const rng = mulberry32(3 + fn.length);
    const x = normal(rng, 1001, 0, 3);
    x.set([100, -100, 0, 9.5, -9.5, 20, -20], 0);
    const dy = uniform(rng, 1001);
    const up = gated ? uniform(rng, 1001) : null;
    const dx = empty(1001, 'dx');
    const dUp = empty(1001, 'dUp');
    submitSteps(
      kh.gpu,
      [
        activationBackward(
          kh.gpu,
          { fn, dx: dx.buffer, x: upload(x, 'x').buffer, dy: upload(dy, 'dy').buffer, n: 1001, gate: up ? { up: upload(up, 'up').buffer, dUp: dUp.buffer } : null, label: fn },
          params,
        ),
      ],
      fn,
    );
    const got = await dx.read();
    expect(firstNaN(got)).toBe(-1);
    const ref = new Float64Array(1001);
    const refUp = new Float64Array(1001);
    activationBackwardCpu(fn, ref, x, dy, 1001, up ? { up, dUp: refUp } : null);
    const erfBound = fn === 'gelu' ? 2e-7 : 0;
    const k = (32 * U + erfBound) * maxAbs(dy) * (up ? maxAbs(up) : 1);
    expectNear(`${fn} dx`, got, ref, { abs: k, rel: 8 * U });
    // The up projection's gradient is dy act(x), |act(x)| up to 100.
    if (up) expectNear(`${fn} dUp`, await dUp.read(), refUp, { abs: (32 * U + erfBound) * maxAbs(dy) * 100, rel: 8 * U });
  });
});
