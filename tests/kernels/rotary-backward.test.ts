/**
 * Rotary backward: the CPU reference against central finite differences of the forward
 * (`rotaryCpu` run in float64), full (rot = dh) and partial (rot = dh / 4, NeoX) rotation and a
 * resumed position offset; the GPU kernel against the reference on B 2, T 13, H 3, dh 12.
 * Tolerance: two products and a sum per element: 3u relative to max|dy| (cos, sin <= 1).
 */
import { describe, it } from 'vitest';
import { rotaryBackward } from '../../src/gpu/kernels/rotary-backward.ts';
import { rotaryBackwardCpu } from '../../src/gpu/kernels/rotary-backward.cpu.ts';
import { submitSteps } from '../../src/gpu/recorder.ts';
import { maxAbs } from '../helpers/compare.ts';
import { expectNear, U } from './check.ts';
import { expectMatchesFiniteDiff, project } from './finite-diff.ts';
import { kernelHarness } from './harness.ts';
import { mulberry32, uniform } from './random.ts';

/** cos / sin tables [nCtx, rot / 2] for theta 10000. */
function tables(nCtx: number, rot: number) {
  const half = rot / 2;
  const cos = new Float64Array(nCtx * half);
  const sin = new Float64Array(nCtx * half);
  for (let p = 0; p < nCtx; p++)
    for (let d = 0; d < half; d++) {
      const a = p / 10000 ** ((2 * d) / rot);
      cos[p * half + d] = Math.cos(a);
      sin[p * half + d] = Math.sin(a);
    }
  return { cos, sin };
}

/** The forward in float64 (same formula as rotaryCpu). */
function rotary64(x: ArrayLike<number>, cos: ArrayLike<number>, sin: ArrayLike<number>, T: number, H: number, dh: number, rot: number, pos0: number): Float64Array {
  const half = rot / 2;
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const d = i % dh;
    const t = Math.floor(i / (dh * H)) % T;
    const row = (pos0 + t) * half;
    if (d >= rot) y[i] = x[i];
    else if (d < half) y[i] = x[i] * cos[row + d] - x[i + half] * sin[row + d];
    else y[i] = x[i] * cos[row + d - half] + x[i - half] * sin[row + d - half];
  }
  return y;
}

describe.each([
  [8, 0],
  [2, 3],
])('rotary backward CPU reference vs finite differences (rot %i of dh 8, pos0 %i)', (rot, pos0) => {
  it('dx', () => {
    const [B, T, H, dh] = [2, 4, 3, 8];
    const { cos, sin } = tables(16, rot);
    const rng = mulberry32(rot);
    const x = Float64Array.from(uniform(rng, B * T * H * dh));
    const g = Float64Array.from(uniform(rng, x.length));
    const dx = new Float64Array(x.length);
    rotaryBackwardCpu(dx, g, cos, sin, B, T, H, dh, rot, pos0);
    expectMatchesFiniteDiff('rotary dx', dx, (xx) => project(g, rotary64(xx, cos, sin, T, H, dh, rot, pos0)), x, 80);
  });
});

const kh = kernelHarness();
const { params, upload, empty } = kh;

describe.each([12, 4])('rotary backward on the GPU (rot %i of dh 12)', (rot) => {
  it('B 2, T 13, H 3, positions from 5', async () => {
    const [B, T, H, dh, pos0, nCtx] = [2, 13, 3, 12, 5, 20];
    const t = tables(nCtx, rot);
    const cos = Float32Array.from(t.cos);
    const sin = Float32Array.from(t.sin);
    const dy = uniform(mulberry32(rot), B * T * H * dh);
    const dx = empty(dy.length, 'dx');
    const d = { B, T, H, dh, rot, pos0, nCtx };
    submitSteps(
      kh.gpu,
      [rotaryBackward(kh.gpu, { dims: d, dx: dx.buffer, dy: upload(dy, 'dy').buffer, cos: upload(cos, 'cos').buffer, sin: upload(sin, 'sin').buffer, label: 'rotary backward' }, params)],
      'rotary',
    );
    const ref = new Float64Array(dy.length);
    rotaryBackwardCpu(ref, dy, cos, sin, B, T, H, dh, rot, pos0);
    expectNear('rotary dx', await dx.read(), ref, { abs: 3 * U * maxAbs(dy), rel: U });
  });
});
