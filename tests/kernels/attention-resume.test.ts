/**
 * Causal attention resumed at position q0 (`AttentionDims` with Tq, q0): query row i is absolute
 * position q0 + i and sees keys 0 .. q0 + i of all T keys. Its scores, pattern and z must equal
 * rows q0 .. q0 + Tq - 1 of the full attention (Tq = T, q0 = 0) that `attentionCpu` computes on
 * the full q, k, v — the identity a forward resuming from cached keys/values relies on.
 *
 * Shapes: B = 2, T = 9, H = 3, dh = 5 (distinct; odd except B), q0 in {0, 4, 8} with
 * Tq = T - q0 (the full forward, a split in the middle, only the last query), plus q0 = 2,
 * Tq = 3, a window that stops before the last key (so Tq, Tk and q0 all differ and an index
 * that confuses them reads the wrong row). The GPU gets only the Tq query rows; k and v are
 * the full [B, T, H, dh]. All cases run in one submit, every output NaN-filled beforehand.
 *
 * As in attention.test.ts, the three stages run chained (as the model runs them) and each alone
 * on the reference's input (softmax of the reference score rows, z from the reference pattern
 * rows), under the same tolerances (u = 2^-24, gamma_n = n u / (1 - n u)):
 *   scores: gamma_(dh+1) dh max|q| max|k| / sqrt(dh) abs, u rel (a dh-term dot product).
 *   softmax alone: (T + 16) u abs (exp and divide ulps, the T-term sum, rounding of s - max).
 *   z alone: gamma_T max|v| abs, u rel (a T-term convex combination of v).
 *   chained: pattern abs = 2 scoresAbs + softmax abs; z abs = T max|v| patternAbs + z-alone abs.
 * Masked entries (key j > q0 + i) are compared exactly: scores -Infinity, pattern +0.
 * q0 + Tq > T must throw, naming the mismatch, from each of the three kernels.
 */
import { describe, it, expect } from 'vitest';
import { attnScores, attnSoftmax, attnZ, type AttentionDims } from '../../src/gpu/kernels/attention.ts';
import { attentionCpu } from '../../src/gpu/kernels/attention.cpu.ts';
import { submitSteps, type Dispatch } from '../../src/gpu/recorder.ts';
import type { Tensor } from '../../src/gpu/tensor.ts';
import { maxAbs } from '../helpers/compare.ts';
import { expectNear, firstNaN, gamma, U } from './check.ts';
import { kernelHarness } from './harness.ts';
import { mulberry32, normal } from './random.ts';

const B = 2,
  T = 9,
  H = 3,
  dh = 5;

const kh = kernelHarness();
const { params, upload, empty } = kh;

/** Query positions q0 .. q0 + Tq - 1 of a [B, T, H, dh] tensor. */
function posRows(x: Float32Array, q0: number, Tq: number): Float32Array {
  const w = H * dh;
  const out = new Float32Array(B * Tq * w);
  for (let b = 0; b < B; b++) out.set(x.subarray((b * T + q0) * w, (b * T + q0 + Tq) * w), b * Tq * w);
  return out;
}

/** Query rows q0 .. q0 + Tq - 1 of a [B, H, T, T] tensor. */
function patternRows(x: Float32Array, q0: number, Tq: number): Float32Array {
  const out = new Float32Array(B * H * Tq * T);
  for (let bh = 0; bh < B * H; bh++) out.set(x.subarray((bh * T + q0) * T, (bh * T + q0 + Tq) * T), bh * Tq * T);
  return out;
}

/** The full attention on random q, k ~ N(0, qkStd^2), v ~ N(0, 1). */
function full(seed: number, qkStd: number) {
  const rng = mulberry32(seed);
  const n = B * T * H * dh;
  const q = normal(rng, n, 0, qkStd);
  const k = normal(rng, n, 0, qkStd);
  const v = normal(rng, n);
  const ref = { scores: new Float32Array(B * H * T * T), pattern: new Float32Array(B * H * T * T), z: new Float32Array(n) };
  attentionCpu(ref.scores, ref.pattern, ref.z, q, k, v, B, T, H, dh);
  return { q, k, v, ref };
}
type Full = ReturnType<typeof full>;

interface Case {
  d: AttentionDims & { Tq: number; q0: number };
  dispatches: Dispatch[];
  /** Reference rows q0 .. of the full attention. */
  ref: { scores: Float32Array; pattern: Float32Array; z: Float32Array };
  out: { scores: Tensor; pattern: Tensor; z: Tensor; patternAlone: Tensor; zAlone: Tensor };
}

function prepare(f: Full, q0: number, Tq: number): Case {
  const d = { B, T, H, dh, Tq, q0 };
  const ref = { scores: patternRows(f.ref.scores, q0, Tq), pattern: patternRows(f.ref.pattern, q0, Tq), z: posRows(f.ref.z, q0, Tq) };
  const s = B * H * Tq * T,
    nz = B * Tq * H * dh;
  const out = { scores: empty(s, 'scores'), pattern: empty(s, 'pattern'), z: empty(nz, 'z'), patternAlone: empty(s, 'pattern alone'), zAlone: empty(nz, 'z alone') };
  const [q, k, v] = [upload(posRows(f.q, q0, Tq), 'q rows'), upload(f.k, 'k'), upload(f.v, 'v')];
  const [refS, refP] = [upload(ref.scores, 'ref scores'), upload(ref.pattern, 'ref pattern')];
  const L = `q0=${q0} Tq=${Tq}`;
  const dispatches = [
    attnScores(kh.gpu, { dims: d, scores: out.scores.buffer, q: q.buffer, k: k.buffer, label: `${L} scores` }, params),
    attnSoftmax(kh.gpu, { dims: d, pattern: out.pattern.buffer, scores: out.scores.buffer, label: `${L} softmax` }, params),
    attnZ(kh.gpu, { dims: d, z: out.z.buffer, pattern: out.pattern.buffer, v: v.buffer, label: `${L} z` }, params),
    attnSoftmax(kh.gpu, { dims: d, pattern: out.patternAlone.buffer, scores: refS.buffer, label: `${L} softmax alone` }, params),
    attnZ(kh.gpu, { dims: d, z: out.zAlone.buffer, pattern: refP.buffer, v: v.buffer, label: `${L} z alone` }, params),
  ];
  return { d, dispatches, ref, out };
}

async function check(f: Full, c: Case): Promise<void> {
  const { q0, Tq } = c.d;
  const name = `q0=${q0} Tq=${Tq}`;
  const got = {
    scores: await c.out.scores.read(),
    pattern: await c.out.pattern.read(),
    z: await c.out.z.read(),
    patternAlone: await c.out.patternAlone.read(),
    zAlone: await c.out.zAlone.read(),
  };
  for (const [what, a] of Object.entries(got)) expect(firstNaN(a), `${name}: NaN (unwritten?) in ${what}`).toBe(-1);
  const live = { got: [] as number[], ref: [] as number[] };
  let badMask = 0,
    liveMasked = 0;
  for (let row = 0; row < B * H * Tq; row++) {
    const pos = q0 + (row % Tq); // the query's absolute position
    for (let j = 0; j < T; j++) {
      const at = row * T + j;
      if (j > pos) {
        if (got.scores[at] !== -Infinity || !Object.is(got.pattern[at], 0) || !Object.is(got.patternAlone[at], 0)) badMask++;
      } else {
        if (got.scores[at] === -Infinity) liveMasked++;
        live.got.push(got.scores[at]!);
        live.ref.push(c.ref.scores[at]!);
      }
    }
  }
  expect(badMask, `${name}: masked entries that are not scores -Infinity / pattern +0`).toBe(0);
  expect(liveMasked, `${name}: visible keys masked`).toBe(0);
  const softmaxAbs = (T + 16) * U;
  const vmax = maxAbs(f.v);
  const zAbs = gamma(T) * vmax;
  const scoresAbs = (gamma(dh + 1) * dh * maxAbs(f.q) * maxAbs(f.k)) / Math.sqrt(dh);
  const patternAbs = 2 * scoresAbs + softmaxAbs;
  expectNear(`${name} scores`, live.got, live.ref, { abs: scoresAbs, rel: U });
  expectNear(`${name} softmax alone`, got.patternAlone, c.ref.pattern, { abs: softmaxAbs, rel: 0 });
  expectNear(`${name} z alone`, got.zAlone, c.ref.z, { abs: zAbs, rel: U });
  expectNear(`${name} pattern`, got.pattern, c.ref.pattern, { abs: patternAbs, rel: 0 });
  expectNear(`${name} z`, got.z, c.ref.z, { abs: T * vmax * patternAbs + zAbs, rel: U });
}

describe('attention resumed at q0: rows q0.. of the full attention', () => {
  it('B=2 T=9 H=3 dh=5, q0 = 0, 4, 8 (Tq = T - q0) and q0 = 2 Tq = 3, one submit', async () => {
    const f = full(21, 1);
    const cases = [
      [0, T],
      [4, T - 4],
      [8, 1],
      [2, 3],
    ].map(([q0, Tq]) => prepare(f, q0!, Tq!));
    submitSteps(
      kh.gpu,
      cases.flatMap((c) => c.dispatches),
      'attention resume',
    );
    for (const c of cases) await check(f, c);
    // The batch rows and positions really differ, so mixing them cannot pass by accident.
    const perBatch = T * H * dh;
    expect(f.ref.z.subarray(0, perBatch)).not.toEqual(f.ref.z.subarray(perBatch, 2 * perBatch));
  });

  it('scores around +-100 (q, k ~ N(0, 10^2)): no overflow, same rows', async () => {
    const f = full(22, 10);
    expect(maxAbs(f.ref.scores.filter((s) => s !== -Infinity))).toBeGreaterThan(100);
    const cases = [
      [4, T - 4],
      [8, 1],
    ].map(([q0, Tq]) => prepare(f, q0!, Tq!));
    submitSteps(
      kh.gpu,
      cases.flatMap((c) => c.dispatches),
      'attention resume +-100',
    );
    for (const c of cases) await check(f, c);
  });

  it('q0 + Tq > T throws from every stage, naming the sizes', () => {
    const buf = upload(new Float32Array(B * H * T * T), 'unused').buffer;
    for (const d of [
      { B, T, H, dh, q0: 5, Tq: 5 },
      { B, T, H, dh, q0: 9, Tq: 1 },
      { B, T, H, dh, q0: 0, Tq: T + 1 },
    ]) {
      const msg = new RegExp(`query rows ${d.q0} \\+ ${d.Tq} exceed the ${T} key positions`);
      expect(() => attnScores(kh.gpu, { dims: d, scores: buf, q: buf, k: buf, label: 'scores' }, params)).toThrow(msg);
      expect(() => attnSoftmax(kh.gpu, { dims: d, pattern: buf, scores: buf, label: 'softmax' }, params)).toThrow(msg);
      expect(() => attnZ(kh.gpu, { dims: d, z: buf, pattern: buf, v: buf, label: 'z' }, params)).toThrow(msg);
    }
    // The boundary itself is allowed.
    expect(() => attnScores(kh.gpu, { dims: { B, T, H, dh, q0: 8, Tq: 1 }, scores: buf, q: buf, k: buf, label: 'scores' }, params)).not.toThrow();
  });
});
