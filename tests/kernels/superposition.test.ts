/**
 * The Toy Models of Superposition kernels (`superposition.ts`, v1, v2 and v3: v2 and v3 run the
 * products on the matmul, one dispatch per instance and product on slices) against `tmsForwardCpu` /
 * `tmsBackwardCpu`, and the CPU backward against central finite differences of the CPU loss.
 *
 * Shapes: (B, I, F, H) = (37, 3, 7, 5) — all odd, none a multiple of the 64-wide workgroup — plus
 * the edges H = 1 and F = 1, and (B, I, F, H) = (9, 2, 131, 3), where an instance's weights span
 * workgroups. W ~ N(0, 0.5), b ~ N(0, 0.2) (some ReLUs off, some on), importance 0.9^f, x sparse
 * uniform (about 40% present).
 *
 * Tolerances (u = 2^-24, gamma_n = n u / (1 - n u), Higham 3.1; each bound is gamma of the
 * number of roundings on the path times the largest magnitude that can feed the result, plus u for
 * the reference's own rounding to fp32): h is an F-term sum, |h| <= F max|x| max|W|; y adds an
 * H-term sum of h W and b; the loss sums B F squared errors; dpre = 2 / (B F) imp (y - x), dh an
 * F-term sum of dpre W, and dW / db sum B terms of dpre h + x dh / dpre. The exact expressions are
 * next to each comparison.
 * Finite differences: the loss is piecewise quadratic in each weight, so a central
 * difference with step 1e-4 is exact up to float64 rounding (~1e-12 / 1e-4) unless a ReLU
 * changes sign within the step; none does here (asserted): abs 1e-8, rel 1e-6.
 */
import { describe, expect, it } from 'vitest';
import { tmsBackwardCpu, tmsForwardCpu, type TmsDims } from '../../src/gpu/kernels/superposition.cpu.ts';
import { tmsBackward, tmsForward, tmsStepV2, tmsStepV3, type TmsBuffers, type TmsVersion } from '../../src/gpu/kernels/superposition.ts';
import { submitSteps } from '../../src/gpu/recorder.ts';
import { expectNear, firstNaN, gamma, U } from './check.ts';
import { kernelHarness } from './harness.ts';
import { mulberry32, normal, uniform } from './random.ts';

const kh = kernelHarness();
const { params, upload, empty } = kh;

interface Data {
  d: TmsDims;
  W: Float32Array;
  b: Float32Array;
  imp: Float32Array;
  x: Float32Array;
}

function data(d: TmsDims, seed: number): Data {
  const rng = mulberry32(seed);
  const { B, I, F, H } = d;
  const x = uniform(rng, B * I * F, 0, 1);
  const keep = uniform(rng, B * I * F, 0, 1);
  for (let k = 0; k < x.length; k++) if (keep[k]! > 0.4) x[k] = 0;
  const imp = new Float32Array(I * F);
  for (let i = 0; i < I; i++) for (let f = 0; f < F; f++) imp[i * F + f] = 0.9 ** f;
  return { d, W: normal(rng, I * F * H, 0, 0.5), b: normal(rng, I * F, 0, 0.2), imp, x };
}

function cpu(D: Data) {
  const { B, I, F, H } = D.d;
  const h = new Float32Array(B * I * H);
  const y = new Float32Array(B * I * F);
  const loss = new Float32Array(I);
  tmsForwardCpu(h, y, loss, D.W, D.b, D.imp, D.x, D.d);
  const dW = new Float32Array(I * F * H);
  const db = new Float32Array(I * F);
  tmsBackwardCpu(dW, db, D.W, D.imp, D.x, h, y, D.d);
  return { h, y, loss, dW, db };
}

async function gpu(D: Data, version: TmsVersion) {
  const { B, I, F, H } = D.d;
  const bufs = {
    W: upload(D.W, 'W'),
    b: upload(D.b, 'b'),
    importance: upload(D.imp, 'importance'),
    x: upload(D.x, 'x'),
    h: empty(B * I * H, 'h'),
    y: empty(B * I * F, 'y'),
    lossPart: empty(Math.max(B * I, I * F), 'loss part'),
    loss: empty(I, 'loss'),
    dpre: empty(B * I * F, 'dpre'),
    dh: empty(B * I * H, 'dh'),
    dW: empty(I * F * H, 'dW'),
    db: empty(I * F, 'db'),
    hh: empty(I * 2 * B * H, 'hh'),
    xt: empty(I * F * 2 * B, 'xt'),
    wt: empty(I * H * F, 'wt'),
    ht: empty(I * H * B, 'ht'),
    dht: empty(I * H * B, 'dht'),
    dwa: empty(I * H * F, 'dwa'),
    dwb: empty(I * H * F, 'dwb'),
  };
  const raw = Object.fromEntries(Object.entries(bufs).map(([k, t]) => [k, t.buffer])) as unknown as TmsBuffers;
  const steps =
    version === 'v1'
      ? [...tmsForward(kh.gpu, { bufs: raw, dims: D.d, label: 'tms' }, params), ...tmsBackward(kh.gpu, { bufs: raw, dims: D.d, label: 'tms' }, params)]
      : version === 'v2'
        ? tmsStepV2(kh.gpu, { bufs: raw, dims: D.d, label: 'tms' }, params)
        : tmsStepV3(kh.gpu, { bufs: raw, dims: D.d, label: 'tms' }, params);
  submitSteps(kh.gpu, steps, `tms ${version}`);
  const out: Record<string, Float32Array> = {};
  if (version === 'v2') {
    // v2 keeps h in the first B rows of each instance's block of hh.
    const hh = await bufs.hh.read();
    const h = new Float32Array(I * B * H);
    for (let i = 0; i < I; i++) h.set(hh.subarray(i * 2 * B * H, (i * 2 + 1) * B * H), i * B * H);
    out.h = h;
  }
  if (version === 'v3') {
    // v3 keeps h^T [I, H, B] and y^T [I, F, B]: back to [I, B, H] and [I, B, F].
    const [ht, yt] = [await bufs.ht.read(), await bufs.y.read()];
    const h = new Float32Array(I * B * H);
    const y = new Float32Array(I * B * F);
    for (let i = 0; i < I; i++)
      for (let b = 0; b < B; b++) {
        for (let k = 0; k < H; k++) h[(i * B + b) * H + k] = ht[(i * H + k) * B + b]!;
        for (let f = 0; f < F; f++) y[(i * B + b) * F + f] = yt[(i * F + f) * B + b]!;
      }
    out.h = h;
    out.y = y;
  }
  for (const k of (version === 'v1' ? ['h', 'y', 'loss', 'dW', 'db'] : version === 'v2' ? ['y', 'loss', 'dW', 'db'] : ['loss', 'dW', 'db']) as ('h' | 'y' | 'loss' | 'dW' | 'db')[]) {
    out[k] = await bufs[k].read();
    expect(firstNaN(out[k]!), `${k}: unwritten element`).toBe(-1);
  }
  return out as { h: Float32Array; y: Float32Array; loss: Float32Array; dW: Float32Array; db: Float32Array };
}

const maxOf = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

const SHAPES: TmsDims[] = [
  { B: 37, I: 3, F: 7, H: 5 },
  { B: 37, I: 3, F: 7, H: 1 },
  { B: 37, I: 3, F: 1, H: 5 },
  { B: 9, I: 2, F: 131, H: 3 },
];

describe.each(SHAPES)('B $B, I $I, F $F, H $H', (d) => {
  it.each(['v1', 'v2', 'v3'] as TmsVersion[])('%s: forward (h, y, loss) and backward (dW, db) match the CPU reference', async (version) => {
    const D = data(d, d.B * 1000 + d.F * 10 + d.H);
    const r = cpu(D);
    const g = await gpu(D, version);
    const { F, H, B } = d;
    const xm = maxOf(D.x),
      wm = maxOf(D.W),
      bm = maxOf(D.b);
    const hm = F * xm * wm; // |h| <= F max|x| max|W|
    expectNear(`${version} h`, g.h, r.h, { abs: gamma(F) * hm, rel: U });
    const ym = H * hm * wm + bm;
    expectNear(`${version} y`, g.y, r.y, { abs: gamma(F + H + 1) * ym, rel: U });
    const em = Math.max(xm, ym); // |x - y|
    expectNear(`${version} loss`, g.loss, r.loss, { abs: gamma(B * F + F + H + 2) * em * em * 2, rel: U });
    // dpre <= c em (c = 2 / (B F)); dh <= F dpre wm; dW sums B terms of dpre hm + xm dh.
    const c = 2 / (B * F);
    const dm = c * em * (1 + gamma(F + H + 2));
    const dW = B * (dm * hm + xm * F * dm * wm);
    expectNear(`${version} dW`, g.dW, r.dW, { abs: gamma(B + F + H + 4) * dW * 2, rel: U });
    expectNear(`${version} db`, g.db, r.db, { abs: gamma(B + F + H + 4) * B * dm, rel: U });
  });
});

describe('backward against finite differences (CPU, float64)', () => {
  it.each(SHAPES.slice(0, 3))('B $B, I $I, F $F, H $H: every weight and bias', (d) => {
    const D = data(d, 99 + d.H + d.F);
    const { B, I, F, H } = d;
    const r = cpu(D);
    // The loss, and a check that no ReLU switched on or off relative to the unperturbed weights
    // (within a step where one does, the loss is not smooth and the difference means nothing).
    let pattern: Uint8Array | null = null;
    let switched = 0;
    const loss = (W: Float64Array, b: Float64Array): number => {
      const out = new Float64Array(I);
      const y = new Float64Array(B * I * F);
      tmsForwardCpu(new Float64Array(B * I * H), y, out, W, b, D.imp, D.x, d);
      const active = Uint8Array.from(y, (v) => (v > 0 ? 1 : 0));
      if (!pattern) pattern = active;
      else if (active.some((v, k) => v !== pattern![k])) switched++;
      return out.reduce((a, v) => a + v, 0);
    };
    const eps = 1e-4;
    const W = Float64Array.from(D.W);
    const b = Float64Array.from(D.b);
    loss(W, b);
    const fdW = new Float64Array(W.length);
    for (let k = 0; k < W.length; k++) {
      const w0 = W[k]!;
      W[k] = w0 + eps;
      const up = loss(W, b);
      W[k] = w0 - eps;
      const down = loss(W, b);
      W[k] = w0;
      fdW[k] = (up - down) / (2 * eps);
    }
    const fdb = new Float64Array(b.length);
    for (let k = 0; k < b.length; k++) {
      const b0 = b[k]!;
      b[k] = b0 + eps;
      const up = loss(W, b);
      b[k] = b0 - eps;
      const down = loss(W, b);
      b[k] = b0;
      fdb[k] = (up - down) / (2 * eps);
    }
    expect(switched, 'perturbations that switched a ReLU').toBe(0);
    // The CPU backward in float64 (not rounded to fp32) against the differences.
    const h = new Float64Array(B * I * H),
      y = new Float64Array(B * I * F),
      l = new Float64Array(I);
    tmsForwardCpu(h, y, l, W, b, D.imp, D.x, d);
    const dW = new Float64Array(W.length),
      db = new Float64Array(b.length);
    tmsBackwardCpu(dW, db, W, D.imp, D.x, h, y, d);
    expectNear('dW vs finite differences', dW, fdW, { abs: 1e-8, rel: 1e-6 });
    expectNear('db vs finite differences', db, fdb, { abs: 1e-8, rel: 1e-6 });
    expect(maxOf(r.dW), 'the gradient is not trivially zero').toBeGreaterThan(1e-3);
  });
});
