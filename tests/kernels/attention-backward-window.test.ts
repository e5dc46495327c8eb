/**
 * Attention backward with a layer's own scale and a sliding window (Gemma 3's
 * query_pre_attn_scalar and sliding layers, GPT-2's inverse-layer scaling): the CPU reference
 * against central finite differences of the float64 forward with that scale and mask, and the
 * GPU kernels (the scale is a parameter; the window reaches the backward only through the
 * pattern's zeros) against the reference at B 2, T 11, window 4, 5 query heads on 1 key/value
 * head, dh 6, scale 1/sqrt(10).
 *
 * Tolerance as `attention-backward.test.ts`: gamma_R R max|a| max|b| per sum of R products.
 */
import { describe, it } from 'vitest';
import { attnDK, attnDPattern, attnDQ, attnDV, attnSoftmaxBackward } from '../../src/gpu/kernels/attention-backward.ts';
import { attentionForward64, attnDPatternCpu, attnDQKCpu, attnDVCpu, attnSoftmaxBackwardCpu } from '../../src/gpu/kernels/attention-backward.cpu.ts';
import { submitSteps } from '../../src/gpu/recorder.ts';
import { maxAbs } from '../helpers/compare.ts';
import { expectNear, gamma, U } from './check.ts';
import { expectMatchesFiniteDiff, project } from './finite-diff.ts';
import { kernelHarness } from './harness.ts';
import { mulberry32, uniform } from './random.ts';

const opts = { scale: 1 / Math.sqrt(10), window: 4 };

describe('windowed, rescaled attention backward: CPU reference vs finite differences', () => {
  it('dq, dk, dv at T 7, window 4 (rows past the window drop keys), 5 heads on 1 key/value head', () => {
    const [B, T, H, Hkv, dh] = [2, 7, 5, 1, 3];
    const rng = mulberry32(91);
    const q = Float64Array.from(uniform(rng, B * T * H * dh, -1.5, 1.5));
    const k = Float64Array.from(uniform(rng, B * T * Hkv * dh, -1.5, 1.5));
    const v = Float64Array.from(uniform(rng, B * T * Hkv * dh));
    const gz = Float64Array.from(uniform(rng, B * T * H * dh));
    const fwd = attentionForward64(q, k, v, B, T, H, dh, Hkv, opts);
    const dpattern = new Float64Array(B * H * T * T);
    attnDPatternCpu(dpattern, gz, v, B, T, H, dh, Hkv);
    const dscores = new Float64Array(B * H * T * T);
    attnSoftmaxBackwardCpu(dscores, fwd.pattern, dpattern, B, T, H);
    const [dq, dk, dv] = [new Float64Array(q.length), new Float64Array(k.length), new Float64Array(v.length)];
    attnDQKCpu(dq, dk, dscores, q, k, B, T, H, dh, Hkv, opts.scale);
    attnDVCpu(dv, fwd.pattern, gz, B, T, H, dh, Hkv);
    expectMatchesFiniteDiff('dq', dq, (x) => project(gz, attentionForward64(x, k, v, B, T, H, dh, Hkv, opts).z), q);
    expectMatchesFiniteDiff('dk', dk, (x) => project(gz, attentionForward64(q, x, v, B, T, H, dh, Hkv, opts).z), k);
    expectMatchesFiniteDiff('dv', dv, (x) => project(gz, attentionForward64(q, k, x, B, T, H, dh, Hkv, opts).z), v);
  });
});

const kh = kernelHarness();
const { params, upload, empty } = kh;

describe('windowed, rescaled attention backward on the GPU', () => {
  it('dpattern, dv, dscores, dq, dk at B 2, T 11, window 4, H 5 on Hkv 1, dh 6', async () => {
    const [B, T, H, Hkv, dh] = [2, 11, 5, 1, 6];
    const rng = mulberry32(92);
    const q = uniform(rng, B * T * H * dh, -2, 2);
    const k = uniform(rng, B * T * Hkv * dh, -2, 2);
    const v = uniform(rng, B * T * Hkv * dh);
    const dz = uniform(rng, B * T * H * dh);
    const pattern = Float32Array.from(attentionForward64(q, k, v, B, T, H, dh, Hkv, opts).pattern);
    const dims = { B, T, H, Hkv, dh, scale: opts.scale };
    const [pB, dzB, qB, kB, vB] = [upload(pattern, 'pattern'), upload(dz, 'dz'), upload(q, 'q'), upload(k, 'k'), upload(v, 'v')].map((t) => t.buffer);
    const [dpattern, dv, dscores, dq, dk] = [empty(B * H * T * T, 'dpattern'), empty(v.length, 'dv'), empty(B * H * T * T, 'dscores'), empty(q.length, 'dq'), empty(k.length, 'dk')];
    submitSteps(
      kh.gpu,
      [
        attnDPattern(kh.gpu, { dims, dpattern: dpattern.buffer, dz: dzB, v: vB, label: 'dpattern' }, params),
        attnDV(kh.gpu, { dims, dv: dv.buffer, pattern: pB, dz: dzB, label: 'dv' }, params),
        attnSoftmaxBackward(kh.gpu, { dims, dscores: dscores.buffer, pattern: pB, dpattern: dpattern.buffer, label: 'dscores' }, params),
        attnDQ(kh.gpu, { dims, dq: dq.buffer, dscores: dscores.buffer, k: kB, label: 'dq' }, params),
        attnDK(kh.gpu, { dims, dk: dk.buffer, dscores: dscores.buffer, q: qB, label: 'dk' }, params),
      ],
      'windowed attention backward',
    );
    const gotP = await dpattern.read();
    const refV = new Float64Array(v.length);
    attnDVCpu(refV, pattern, dz, B, T, H, dh, Hkv);
    const R = T * (H / Hkv);
    expectNear('dv', await dv.read(), refV, { abs: gamma(R) * R * maxAbs(dz), rel: U });
    const gotS = await dscores.read();
    const refS = new Float64Array(B * H * T * T);
    attnSoftmaxBackwardCpu(refS, pattern, gotP, B, T, H);
    expectNear('dscores (0 outside the window)', gotS, refS, { abs: gamma(T + 2) * 2 * T * maxAbs(gotP), rel: 2 * U });
    const [refQ, refK] = [new Float64Array(q.length), new Float64Array(k.length)];
    attnDQKCpu(refQ, refK, gotS, q, k, B, T, H, dh, Hkv, opts.scale);
    expectNear('dq', await dq.read(), refQ, { abs: gamma(T + 1) * T * maxAbs(gotS) * maxAbs(k), rel: 2 * U });
    expectNear('dk', await dk.read(), refK, { abs: gamma(R + 1) * R * maxAbs(gotS) * maxAbs(q), rel: 2 * U });
  });
});
