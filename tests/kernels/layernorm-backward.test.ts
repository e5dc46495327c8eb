/**
 * LayerNorm / RMSNorm backward: the CPU reference against central finite differences of the
 * float64 forward (input, gain, bias, through hook_scale and with the scale held constant), and
 * the four GPU kernels against the reference on 37 rows x C = 53 (no multiple of the 64-wide
 * row workgroup), rows of distinct mean and spread.
 *
 * Tolerance: dn and the parameter sums are products and R-term sums (gamma_R R max|a| max|b|);
 * the row kernels sum C terms of size max|dn| max|n| and divide by scale, then subtract a mean of
 * the same size: abs = gamma_(2C) * 4 C max|dn| max(1, max|n|) / min(scale), rel = 4u.
 */
import { describe, it } from 'vitest';
import { normGainBackward, normInputGrad, normParamGrad, normScaleGrad } from '../../src/gpu/kernels/layernorm-backward.ts';
import { normForward64, normGainBackwardCpu, normInputGradCpu, normParamGradCpu, normScaleGradCpu } from '../../src/gpu/kernels/layernorm-backward.cpu.ts';
import { submitSteps } from '../../src/gpu/recorder.ts';
import { maxAbs } from '../helpers/compare.ts';
import { expectNear, gamma, U } from './check.ts';
import { expectMatchesFiniteDiff, project } from './finite-diff.ts';
import { kernelHarness } from './harness.ts';
import { mulberry32, normal, uniform } from './random.ts';

const EPS = 1e-5;

/** The whole backward on the CPU: dx, dw, db and dscale of L = sum g y. */
function backward64(x: ArrayLike<number>, w: ArrayLike<number>, g: ArrayLike<number>, rows: number, C: number, rms: boolean, detach: boolean) {
  const { n, scale } = normForward64(x, rows, C, EPS, rms);
  const dn = new Float64Array(rows * C);
  normGainBackwardCpu(dn, g, w, rows, C);
  const dscale = new Float64Array(rows);
  normScaleGradCpu(dscale, dn, n, scale, rows, C);
  const dx = new Float64Array(rows * C);
  normInputGradCpu(dx, dn, n, scale, detach ? null : dscale, rows, C, rms);
  const dw = new Float64Array(C);
  const db = new Float64Array(C);
  normParamGradCpu(dw, db, g, n, rows, C);
  return { n, scale, dn, dscale, dx, dw, db };
}

describe.each([false, true])('norm backward CPU reference vs finite differences (rms %s)', (rms) => {
  const [rows, C] = [4, 7];
  const rng = mulberry32(rms ? 2 : 1);
  const x = Float64Array.from(normal(rng, rows * C, 0.3, 1.5));
  const w = Float64Array.from(uniform(rng, C, 0.5, 1.5));
  const b = Float64Array.from(uniform(rng, C));
  const g = Float64Array.from(uniform(rng, rows * C));
  const y = (xx: ArrayLike<number>, ww: ArrayLike<number>, bb: ArrayLike<number>, frozen?: Float64Array) => {
    const { n, scale } = normForward64(xx, rows, C, EPS, rms);
    // With the scale frozen, n = xc / scale0: rescale the live normalization.
    return n.map((v, i) => (frozen ? (v * scale[Math.floor(i / C)]) / frozen[Math.floor(i / C)] : v) * ww[i % C] + (rms ? 0 : bb[i % C]));
  };

  it('dx through hook_scale, dw, db', () => {
    const r = backward64(x, w, g, rows, C, rms, false);
    expectMatchesFiniteDiff('dx', r.dx, (xx) => project(g, y(xx, w, b)), x);
    expectMatchesFiniteDiff('dw', r.dw, (ww) => project(g, y(x, ww, b)), w);
    if (!rms) expectMatchesFiniteDiff('db', r.db, (bb) => project(g, y(x, w, bb)), b);
  });

  it('hook_scale gradient: L as a function of the scale, n = xc / scale', () => {
    const r = backward64(x, w, g, rows, C, rms, false);
    const xc = r.n.map((v, i) => v * r.scale[Math.floor(i / C)]);
    const L = (s: Float64Array) =>
      project(
        g,
        xc.map((v, i) => (v / s[Math.floor(i / C)]) * w[i % C]),
      );
    expectMatchesFiniteDiff('dscale', r.dscale, L, r.scale);
  });

  it('detached scale: dx with the scale held at its value', () => {
    const r = backward64(x, w, g, rows, C, rms, true);
    expectMatchesFiniteDiff('dx detached', r.dx, (xx) => project(g, y(xx, w, b, r.scale)), x);
  });
});

const kh = kernelHarness();
const { params, upload, empty } = kh;

describe.each([false, true])('norm backward on the GPU (rms %s)', (rms) => {
  const [rows, C] = [37, 53];
  it.each([false, true])('gain, parameters, scale and input gradients (detached %s, accumulating)', async (detach) => {
    const rng = mulberry32(rms ? 40 : 41);
    const x = new Float32Array(rows * C);
    for (let r = 0; r < rows; r++) x.set(normal(rng, C, r / 4 - 4, 0.5 + r / 10), r * C);
    const w = uniform(rng, C, 0.5, 1.5);
    const g = uniform(rng, rows * C);
    const prevDx = uniform(rng, rows * C);
    const prevDw = uniform(rng, C);
    const prevDb = uniform(rng, C);
    const ref = backward64(x, w, g, rows, C, rms, detach);
    // The GPU reads the forward's fp32 n and scale.
    const n32 = Float32Array.from(ref.n);
    const s32 = Float32Array.from(ref.scale);
    const nB = upload(n32, 'n').buffer;
    const sB = upload(s32, 'scale').buffer;
    const gB = upload(g, 'dy').buffer;
    const dn = empty(rows * C, 'dn');
    const ds = empty(rows, 'dscale');
    const dx = upload(prevDx, 'dx');
    const dw = upload(prevDw, 'dw');
    const db = upload(prevDb, 'db');
    submitSteps(
      kh.gpu,
      [
        normGainBackward(kh.gpu, { dn: dn.buffer, dy: gB, w: upload(w, 'w').buffer, rows, C, label: 'gain' }, params),
        normParamGrad(kh.gpu, { dw: dw.buffer, db: rms ? null : db.buffer, dy: gB, n: nB, rows, C, accumulate: true, label: 'params' }, params),
        normScaleGrad(kh.gpu, { dscale: ds.buffer, dn: dn.buffer, n: nB, scale: sB, rows, C, label: 'scale' }, params),
        normInputGrad(kh.gpu, { dx: dx.buffer, dn: dn.buffer, n: nB, scale: sB, dscale: detach ? null : ds.buffer, rms, rows, C, accumulate: true, label: 'input' }, params),
      ],
      'norm backward',
    );
    // The GPU sums from fp32 n; compare with the reference's pieces on the same fp32 inputs.
    const dnRef = new Float64Array(rows * C);
    normGainBackwardCpu(dnRef, g, w, rows, C);
    expectNear('dn', await dn.read(), dnRef, { abs: 0, rel: 2 * U });
    const dnGot = await dn.read();
    const dsRef = new Float64Array(rows);
    normScaleGradCpu(dsRef, dnGot, n32, s32, rows, C);
    const minScale = Math.min(...s32);
    expectNear('dscale', await ds.read(), dsRef, { abs: (gamma(C + 1) * C * maxAbs(dnGot) * maxAbs(n32)) / minScale, rel: 2 * U });
    const dsGot = await ds.read();
    const dxRef = Float64Array.from(prevDx);
    normInputGradCpu(dxRef, dnGot, n32, s32, detach ? null : dsGot, rows, C, rms, true);
    expectNear('dx', await dx.read(), dxRef, { abs: (gamma(2 * C) * 4 * C * maxAbs(dnGot) * Math.max(1, maxAbs(n32), maxAbs(dsGot))) / minScale + 2 * U * maxAbs(prevDx), rel: 4 * U });
    const dwRef = Float64Array.from(prevDw);
    const dbRef = Float64Array.from(prevDb);
    normParamGradCpu(dwRef, dbRef, g, n32, rows, C, true);
    expectNear('dw', await dw.read(), dwRef, { abs: gamma(rows + 1) * (rows * maxAbs(g) * maxAbs(n32) + 1), rel: U });
    if (!rms) expectNear('db', await db.read(), dbRef, { abs: gamma(rows + 1) * (rows * maxAbs(g) + 1), rel: U });
  });
});

describe('per-head RMSNorm backward (q_norm / k_norm: rows = B T H, C = d_head)', () => {
  it('2 x 7 positions x 3 heads of d_head 10, each head its own scale', async () => {
    const [B, T, H, dh] = [2, 7, 3, 10];
    const rows = B * T * H;
    const rng = mulberry32(44);
    const x = new Float32Array(rows * dh);
    for (let r = 0; r < rows; r++) x.set(normal(rng, dh, 0, 0.2 + (r % H)), r * dh); // head h's spread grows with h
    const w = uniform(rng, dh, -0.5, 1.5); // Gemma's 1 + w can be negative
    const g = uniform(rng, rows * dh);
    const ref = backward64(x, w, g, rows, dh, true, false);
    const n32 = Float32Array.from(ref.n);
    const s32 = Float32Array.from(ref.scale);
    const nB = upload(n32, 'n').buffer;
    const sB = upload(s32, 'scale').buffer;
    const gB = upload(g, 'dy').buffer;
    const [dn, ds, dx, dw] = [empty(rows * dh, 'dn'), empty(rows, 'dscale'), empty(rows * dh, 'dx'), empty(dh, 'dw')];
    submitSteps(
      kh.gpu,
      [
        normGainBackward(kh.gpu, { dn: dn.buffer, dy: gB, w: upload(w, 'w').buffer, rows, C: dh, label: 'gain' }, params),
        normParamGrad(kh.gpu, { dw: dw.buffer, db: null, dy: gB, n: nB, rows, C: dh, label: 'params' }, params),
        normScaleGrad(kh.gpu, { dscale: ds.buffer, dn: dn.buffer, n: nB, scale: sB, rows, C: dh, label: 'scale' }, params),
        normInputGrad(kh.gpu, { dx: dx.buffer, dn: dn.buffer, n: nB, scale: sB, dscale: ds.buffer, rms: true, rows, C: dh, label: 'input' }, params),
      ],
      'per-head norm backward',
    );
    const minScale = Math.min(...s32);
    const tol = (a: ArrayLike<number>) => ({ abs: (gamma(2 * dh) * 4 * dh * maxAbs(a) * Math.max(1, maxAbs(n32), maxAbs(ref.dscale))) / minScale, rel: 4 * U });
    expectNear('dscale', await ds.read(), ref.dscale, tol(ref.dn));
    expectNear('dx', await dx.read(), ref.dx, tol(ref.dn));
    expectNear('dw', await dw.read(), ref.dw, { abs: gamma(rows + 1) * (rows * maxAbs(g) * maxAbs(n32) + 1), rel: U });
  });
});
