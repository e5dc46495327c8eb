/**
 * Causal attention (attn_scores -> attn_softmax -> attn_z) against `attentionCpu`, run as the
 * model runs it: three dispatches, each reading the previous one's GPU output.
 *
 * Shapes: B = 3, T = 7, H = 3, dh = 5 — every dimension distinct and odd, so swapping any two
 * in an index expression reads the wrong element, and distinct random data per batch row and
 * head so reading another row's data shows.
 *
 * Each stage is also run alone on the reference's input (softmax of the reference scores, z
 * from the reference pattern), so its own error is checked against a tight bound and not hidden
 * under the error it inherits.
 *
 * Tolerance (u = 2^-24):
 *   scores: a dh-term dot product times a scale: gamma_(dh+1) * dh * max|q| max|k| / sqrt(dh)
 *           absolute, plus u relative (the reference's rounding to fp32).
 *   softmax alone: p <= 1, each p off by the exp's and the divide's few ulp, the T-term sum's
 *           gamma_T, and the rounding of (s - max), which costs p * u * |s - max| <= u / e:
 *           abs = (T + 16) u.
 *   z alone: a <= T-term sum of p v with sum p = 1: gamma_T max|v| abs, u rel.
 *   chained: softmax moves by at most 2 max|delta score| when its inputs move by delta
 *           (|dp_i| <= p_i (|d_i| + sum_j p_j |d_j|)), so pattern abs = 2 scoresAbs + softmax
 *           abs, and z abs = T max|v| patternAbs + z-alone abs.
 * Masked entries are compared exactly: scores -Infinity, pattern +0 (causal, and with a sliding
 * window also the keys before it).
 */
import { describe, it, expect } from 'vitest';
import { attnScores, attnSoftmax, attnZ, type AttentionDims } from '../../src/gpu/kernels/attention.ts';
import { attentionCpu } from '../../src/gpu/kernels/attention.cpu.ts';
import { submitSteps } from '../../src/gpu/recorder.ts';
import { maxAbs } from '../helpers/compare.ts';
import { expectNear, firstNaN, gamma, U } from './check.ts';
import { kernelHarness } from './harness.ts';
import { mulberry32, normal } from './random.ts';

const kh = kernelHarness();
const { params, upload, empty } = kh;

interface Result {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  /** The three stages chained on the GPU, as the model runs them. */
  scores: Float32Array;
  pattern: Float32Array;
  z: Float32Array;
  /** attn_softmax of ref.scores, attn_z of ref.pattern (each stage alone). */
  patternAlone: Float32Array;
  zAlone: Float32Array;
  ref: { scores: Float32Array; pattern: Float32Array; z: Float32Array };
}

/** q, k ~ N(0, qkStd^2), v ~ N(0, 1) from `seed`; runs the GPU stages and the CPU reference. */
async function run(d: AttentionDims, seed: number, qkStd: number): Promise<Result> {
  const rng = mulberry32(seed);
  const n = d.B * d.T * d.H * d.dh;
  const s = d.B * d.H * d.T * d.T;
  const q = normal(rng, n, 0, qkStd);
  const k = normal(rng, n, 0, qkStd);
  const v = normal(rng, n);
  const ref = { scores: new Float32Array(s), pattern: new Float32Array(s), z: new Float32Array(n) };
  attentionCpu(ref.scores, ref.pattern, ref.z, q, k, v, d.B, d.T, d.H, d.dh, d.Hkv ?? d.H, d.scale, d.window);
  const nan = (len: number) => empty(len, 'out');
  const [qT, kT, vT, refS, refP] = [upload(q, 'q'), upload(k, 'k'), upload(v, 'v'), upload(ref.scores, 'ref scores'), upload(ref.pattern, 'ref pattern')];
  const [sT, pT, zT, pAlone, zAlone] = [nan(s), nan(s), nan(n), nan(s), nan(n)];
  submitSteps(
    kh.gpu,
    [
      attnScores(kh.gpu, { dims: d, scores: sT.buffer, q: qT.buffer, k: kT.buffer, label: 'scores' }, params),
      attnSoftmax(kh.gpu, { dims: d, pattern: pT.buffer, scores: sT.buffer, label: 'softmax' }, params),
      attnZ(kh.gpu, { dims: d, z: zT.buffer, pattern: pT.buffer, v: vT.buffer, label: 'z' }, params),
      attnSoftmax(kh.gpu, { dims: d, pattern: pAlone.buffer, scores: refS.buffer, label: 'softmax alone' }, params),
      attnZ(kh.gpu, { dims: d, z: zAlone.buffer, pattern: refP.buffer, v: vT.buffer, label: 'z alone' }, params),
    ],
    'attention',
  );
  return {
    q,
    k,
    v,
    ref,
    scores: await sT.read(),
    pattern: await pT.read(),
    z: await zT.read(),
    patternAlone: await pAlone.read(),
    zAlone: await zAlone.read(),
  };
}

/** Visits (row, i, j) of every [B, H, T, T] entry. */
function* entries(d: AttentionDims): Generator<[number, number, number]> {
  for (let row = 0; row < d.B * d.H * d.T; row++) {
    for (let j = 0; j < d.T; j++) yield [row, row % d.T, j];
  }
}

/** Checks masks exactly, row sums, then every output under the stage tolerances above. */
function check(name: string, d: AttentionDims, r: Result): void {
  for (const [what, a] of [
    ['scores', r.scores],
    ['pattern', r.pattern],
    ['z', r.z],
    ['pattern alone', r.patternAlone],
    ['z alone', r.zAlone],
  ] as const) {
    expect(firstNaN(a), `${name}: NaN in ${what}`).toBe(-1);
  }
  const live = { got: [] as number[], ref: [] as number[] };
  let badMask = 0;
  for (const [row, i, j] of entries(d)) {
    const at = row * d.T + j;
    if (j > i || (d.window && j <= i - d.window)) {
      if (r.scores[at] !== -Infinity || !Object.is(r.pattern[at], 0) || !Object.is(r.patternAlone[at], 0)) badMask++;
    } else {
      live.got.push(r.scores[at]!);
      live.ref.push(r.ref.scores[at]!);
    }
  }
  expect(badMask, `${name}: masked entries that are not scores -Infinity / pattern +0`).toBe(0);
  const softmaxAbs = (d.T + 16) * U;
  // Rows of the pattern sum to 1 within T times the per-entry bound.
  for (const pattern of [r.pattern, r.patternAlone]) {
    for (let row = 0; row < d.B * d.H * d.T; row++) {
      let sum = 0;
      for (let j = 0; j < d.T; j++) sum += pattern[row * d.T + j]!;
      expect(Math.abs(sum - 1), `${name}: pattern row ${row} sums to ${sum}`).toBeLessThanOrEqual(d.T * softmaxAbs);
    }
  }
  const vmax = maxAbs(r.v);
  const zAbs = gamma(d.T) * vmax;
  const scoresAbs = gamma(d.dh + 1) * d.dh * maxAbs(r.q) * maxAbs(r.k) * (d.scale ?? 1 / Math.sqrt(d.dh));
  expectNear(`${name} scores`, live.got, live.ref, { abs: scoresAbs, rel: U });
  expectNear(`${name} softmax alone`, r.patternAlone, r.ref.pattern, { abs: softmaxAbs, rel: 0 });
  expectNear(`${name} z alone`, r.zAlone, r.ref.z, { abs: zAbs, rel: U });
  const patternAbs = 2 * scoresAbs + softmaxAbs;
  expectNear(`${name} pattern`, r.pattern, r.ref.pattern, { abs: patternAbs, rel: 0 });
  expectNear(`${name} z`, r.z, r.ref.z, { abs: d.T * vmax * patternAbs + zAbs, rel: U });
}

describe('attention: scores, softmax, z', () => {
  const dims: AttentionDims = { B: 3, T: 7, H: 3, dh: 5 };

  it('B=3 T=7 H=3 dh=5, distinct data per batch row and head', async () => {
    const r = await run(dims, 11, 1);
    check('B=3', dims, r);
    // The batch rows really differ (so an index bug mixing them cannot pass by accident).
    const perBatch = dims.T * dims.H * dims.dh;
    expect(r.ref.z.subarray(0, perBatch)).not.toEqual(r.ref.z.subarray(perBatch, 2 * perBatch));
  });

  it('a sliding window of 3 keys and a scale of its own (Gemma 3: query_pre_attn_scalar)', async () => {
    const d: AttentionDims = { ...dims, window: 3, scale: 0.37 };
    const r = await run(d, 15, 1);
    check('window 3', d, r);
    // Query 6 of the first row sees keys 4, 5, 6 only.
    expect(Array.from(r.pattern.subarray(6 * 7, 6 * 7 + 4))).toEqual([0, 0, 0, 0]);
    expect(r.pattern[6 * 7 + 4]).toBeGreaterThan(0);
  });

  it('B=1 T=1: a single position attends only to itself', async () => {
    const d: AttentionDims = { B: 1, T: 1, H: 2, dh: 3 };
    const r = await run(d, 12, 1);
    check('T=1', d, r);
    expect(Array.from(r.pattern)).toEqual([1, 1]);
  });

  it('scores around +-100: no NaN, rows sum to 1, masks exact', async () => {
    // q, k ~ N(0, 10^2): each score ~ 10^2 * N(0, 1) after the 1/sqrt(dh) scale.
    const r = await run(dims, 13, 10);
    const live = r.ref.scores.filter((s) => s !== -Infinity);
    expect(maxAbs(live)).toBeGreaterThan(100);
    check('+-100', dims, r);
  });

  it('scores in the thousands: exp(score - max) never overflows, pattern near one-hot', async () => {
    const r = await run(dims, 14, 40);
    const live = r.ref.scores.filter((s) => s !== -Infinity);
    expect(maxAbs(live)).toBeGreaterThan(1000);
    check('+-1000s', dims, r);
    // Every row's largest entry dominates (gaps between scores are hundreds).
    let oneHot = 0;
    for (let row = 0; row < dims.B * dims.H * dims.T; row++) {
      if (Math.max(...r.pattern.subarray(row * dims.T, (row + 1) * dims.T)) > 0.999) oneHot++;
    }
    expect(oneHot).toBeGreaterThan((dims.B * dims.H * dims.T) / 2);
  });
});
