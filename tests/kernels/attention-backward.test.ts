/**
 * Attention backward: the CPU reference against central finite differences of the float64
 * forward (z through pattern and v; pattern through the masked softmax of the scores; q and k
 * through the scores), with grouped-query attention (6 query heads on 2 key/value heads, and
 * plain multi-head); then each GPU kernel, v1 and v2, against the reference at odd shapes.
 *
 * Tolerance: every output is one fp32 sum of R products (R = dh, or up to T x heads per group
 * for dv / dk) plus, for the softmax, a dot product of T terms: gamma_R R max|a| max|b|.
 */
import { describe, expect, it } from 'vitest';
import { attnDK, attnDPattern, attnDQ, attnDV, attnSoftmaxBackward, type AttentionBackwardVersion } from '../../src/gpu/kernels/attention-backward.ts';
import { attentionForward64, attnDPatternCpu, attnDQKCpu, attnDVCpu, attnSoftmaxBackwardCpu } from '../../src/gpu/kernels/attention-backward.cpu.ts';
import { submitSteps } from '../../src/gpu/recorder.ts';
import { maxAbs } from '../helpers/compare.ts';
import { expectNear, gamma, U } from './check.ts';
import { expectMatchesFiniteDiff, project } from './finite-diff.ts';
import { kernelHarness } from './harness.ts';
import { mulberry32, uniform } from './random.ts';

describe.each([
  [4, 4],
  [6, 2],
])('attention backward CPU reference vs finite differences (H %i, Hkv %i)', (H, Hkv) => {
  const [B, T, dh] = [2, 5, 3];
  const rng = mulberry32(H * 10 + Hkv);
  const q = Float64Array.from(uniform(rng, B * T * H * dh, -1.5, 1.5));
  const k = Float64Array.from(uniform(rng, B * T * Hkv * dh, -1.5, 1.5));
  const v = Float64Array.from(uniform(rng, B * T * Hkv * dh));
  const gz = Float64Array.from(uniform(rng, B * T * H * dh));
  const fwd = attentionForward64(q, k, v, B, T, H, dh, Hkv);
  const dpattern = new Float64Array(B * H * T * T);
  attnDPatternCpu(dpattern, gz, v, B, T, H, dh, Hkv);
  const dscores = new Float64Array(B * H * T * T);
  attnSoftmaxBackwardCpu(dscores, fwd.pattern, dpattern, B, T, H);
  const dq = new Float64Array(q.length);
  const dk = new Float64Array(k.length);
  attnDQKCpu(dq, dk, dscores, q, k, B, T, H, dh, Hkv);
  const dv = new Float64Array(v.length);
  attnDVCpu(dv, fwd.pattern, gz, B, T, H, dh, Hkv);

  it('dq, dk, dv through scores, softmax and z', () => {
    expectMatchesFiniteDiff('dq', dq, (x) => project(gz, attentionForward64(x, k, v, B, T, H, dh, Hkv).z), q);
    expectMatchesFiniteDiff('dk', dk, (x) => project(gz, attentionForward64(q, x, v, B, T, H, dh, Hkv).z), k);
    expectMatchesFiniteDiff('dv', dv, (x) => project(gz, attentionForward64(q, k, x, B, T, H, dh, Hkv).z), v);
  });

  it('dpattern (every key, as autograd) and dscores (zero where masked)', () => {
    // z as a function of the pattern alone: z[i] = sum_j pattern[i, j] v[j], every j.
    const zOf = (pat: ArrayLike<number>) => {
      const z = new Float64Array(B * T * H * dh);
      for (let b = 0; b < B; b++)
        for (let h = 0; h < H; h++)
          for (let i = 0; i < T; i++)
            for (let j = 0; j < T; j++)
              for (let d = 0; d < dh; d++) z[((b * T + i) * H + h) * dh + d] += pat[((b * H + h) * T + i) * T + j] * v[((b * T + j) * Hkv + Math.floor(h / (H / Hkv))) * dh + d];
      return z;
    };
    expectMatchesFiniteDiff('dpattern', dpattern, (p) => project(gz, zOf(p)), fwd.pattern, 60);
    // The pattern as the masked softmax of the scores (masked entries stay -inf).
    const patOf = (s: ArrayLike<number>) => {
      const p = new Float64Array(s.length);
      for (let r = 0; r < B * H * T; r++) {
        const i = r % T;
        let mx = -Infinity;
        for (let j = 0; j <= i; j++) mx = Math.max(mx, s[r * T + j]);
        let sum = 0;
        for (let j = 0; j <= i; j++) sum += Math.exp(s[r * T + j] - mx);
        for (let j = 0; j <= i; j++) p[r * T + j] = Math.exp(s[r * T + j] - mx) / sum;
      }
      return p;
    };
    const finite = fwd.scores.map((s) => (Number.isFinite(s) ? s : -1e300));
    expectMatchesFiniteDiff('dscores', dscores, (s) => project(dpattern, patOf(s)), finite, 60);
  });
});

const kh = kernelHarness();
const { params, upload, empty } = kh;

// v2 (register tiles of 4 x 8, 8 rows x 16 of dh) on shapes that are no multiple of its tiles:
// T 13 and 37, dh 20 (one 16-column block and a partial one) and 12, and 64 (GPT-2's) at T 19;
// dh 5 is no multiple of 4, so v2 falls back to v1 there.
const SHAPES: Array<[number, number, number]> = [
  [2, 13, 5],
  [2, 13, 20],
  [1, 37, 12],
  [1, 19, 64],
];

describe.each([
  ['v1', 6, 6],
  ['v1', 6, 2],
  ['v1', 6, 3],
  ['v2', 6, 6],
  ['v2', 6, 2],
  ['v2', 6, 3],
] as Array<[AttentionBackwardVersion, number, number]>)('attention backward on the GPU, %s (H %i, Hkv %i)', (version, H, Hkv) => {
  // v1 (the baseline) on its own shape and one vec4 shape; v2 on all.
  it.each(version === 'v1' ? SHAPES.filter(([, , dh]) => dh === 5 || dh === 12) : SHAPES)('dpattern, dv, dscores, dq, dk at B %i, T %i, dh %i', async (B, T, dh) => {
    const rng = mulberry32(H * 7 + Hkv + 1000 * T + dh);
    const q = uniform(rng, B * T * H * dh, -2, 2);
    const k = uniform(rng, B * T * Hkv * dh, -2, 2);
    const v = uniform(rng, B * T * Hkv * dh);
    const dz = uniform(rng, B * T * H * dh);
    const fwd = attentionForward64(q, k, v, B, T, H, dh, Hkv);
    const pattern = Float32Array.from(fwd.pattern);
    const dims = { B, T, H, Hkv, dh };
    const [pB, dzB, qB, kB, vB] = [upload(pattern, 'pattern'), upload(dz, 'dz'), upload(q, 'q'), upload(k, 'k'), upload(v, 'v')].map((t) => t.buffer);
    const dpattern = empty(B * H * T * T, 'dpattern');
    const dv = empty(v.length, 'dv');
    const dscores = empty(B * H * T * T, 'dscores');
    const dq = empty(q.length, 'dq');
    const dk = empty(k.length, 'dk');
    const steps = [
      attnDPattern(kh.gpu, { dims, dpattern: dpattern.buffer, dz: dzB, v: vB, label: 'dpattern' }, params, version),
      attnDV(kh.gpu, { dims, dv: dv.buffer, pattern: pB, dz: dzB, label: 'dv' }, params, version),
      attnSoftmaxBackward(kh.gpu, { dims, dscores: dscores.buffer, pattern: pB, dpattern: dpattern.buffer, label: 'dscores' }, params),
      attnDQ(kh.gpu, { dims, dq: dq.buffer, dscores: dscores.buffer, k: kB, label: 'dq' }, params, version),
      attnDK(kh.gpu, { dims, dk: dk.buffer, dscores: dscores.buffer, q: qB, label: 'dk' }, params, version),
    ];
    // The entry points that ran: v2 wherever dh is a multiple of 4 (the softmax backward is v1 only).
    const ran = version === 'v2' && dh % 4 === 0 ? 'v2' : 'v1';
    expect(steps.map((s) => s.pipeline.label.split(':')[1])).toEqual([`attn_dpattern_${ran}`, `attn_dv_${ran}`, 'attn_softmax_backward_v1', `attn_dq_${ran}`, `attn_dk_${ran}`]);
    submitSteps(kh.gpu, steps, 'attention backward');
    const gotP = await dpattern.read();
    const refP = new Float64Array(B * H * T * T);
    attnDPatternCpu(refP, dz, v, B, T, H, dh, Hkv);
    expectNear('dpattern', gotP, refP, { abs: gamma(dh) * dh * maxAbs(dz) * maxAbs(v), rel: U });
    const refV = new Float64Array(v.length);
    attnDVCpu(refV, pattern, dz, B, T, H, dh, Hkv);
    const R = T * (H / Hkv);
    expectNear('dv', await dv.read(), refV, { abs: gamma(R) * R * maxAbs(dz), rel: U });
    // The rest from the GPU's own dpattern / dscores, so each kernel is checked on its inputs.
    const gotS = await dscores.read();
    const refS = new Float64Array(B * H * T * T);
    attnSoftmaxBackwardCpu(refS, pattern, gotP, B, T, H);
    expectNear('dscores', gotS, refS, { abs: gamma(T + 2) * 2 * T * maxAbs(gotP), rel: 2 * U });
    const refQ = new Float64Array(q.length);
    const refK = new Float64Array(k.length);
    attnDQKCpu(refQ, refK, gotS, q, k, B, T, H, dh, Hkv);
    expectNear('dq', await dq.read(), refQ, { abs: gamma(T + 1) * T * maxAbs(gotS) * maxAbs(k), rel: 2 * U });
    expectNear('dk', await dk.read(), refK, { abs: gamma(R + 1) * R * maxAbs(gotS) * maxAbs(q), rel: 2 * U });
  });
});
