/**
 * The GPU metric kernels (`GpuMetric`: row_lse_v1 then metric_combine_v1, `shaders/metrics.wgsl.ts`)
 * against `metricCpu` (float64) followed by the affine normalization (m - shift) * scale.
 *
 * Data: logits uniform in [-100, 100) over V = 1003 (no multiple of the 64-wide workgroup, so
 * the strided loops end mid-workgroup), B = 3 batch rows, a T = 8 token prompt. exp(100)
 * overflows fp32, so a log-sum-exp without the max subtracted gives Infinity / NaN. The GPU
 * reads logits [B, P, V] at the metric's positions (`metricPositions`), gathered from the full
 * [B, T, V]; also the full [B, T, V] with positions 0 .. T - 1, as patching reads it.
 * Metrics: logitDiffMetric, logProbMetric (a random token, ~ -150, and one planted near the
 * row max), probMetric (planted token, p ~ 0.04 .. 0.14; a random token's p underflows to 0),
 * lossMetric over the span [2, 6) (four positions, coef -1/4), each with the identity and with
 * an affine {shift, scale}. Also rows of constant +-100 and a one-hot row (exact answers
 * -ln V, 1/V, ~0), B = 67 (two combine workgroups), and a position missing from the list.
 * Outputs are NaN-filled before each run, so an unwritten row fails.
 *
 * Tolerance: a bound per batch row from WGSL's accuracy rules (u = 2^-24, gamma_n = n u /
 * (1 - n u); an ulp of y is at most 2u|y|), max over rows as `abs`, rel = 0. For each term's
 * row r (max mx, d_i = mx - r_i, s = sum exp(-d_i), lse = mx + ln s, lp = r_tok - lse):
 *   sum:    exp is within 3 + 2|x| ulp and its argument r_i - mx is rounded (u d_i), so term i
 *           is off by (6 + 5 d_i) u relative; the V-term sum of positive terms adds gamma_V:
 *           rel(s) = u sum_i e^(-d_i) (6 + 5 d_i) / s + gamma_V.
 *   lse:    -ln(1 - rel(s)) from the sum, + ln's 2^-21 (abs, on [0.5, 2]) or 3 ulp
 *           (<= 6u ln s), + u |lse| for mx + ln s.
 *   logprob: lse error + u |lp| for the subtraction (the logit itself is read exactly).
 *   prob:   p (e^(lp error) - 1 + (6 + 4|lp|) u) (exp's own error), + 2^-126 for a flushed
 *           subnormal.
 *   logit:  0.
 *   combine: sum_t |c_t| err_t + (2u + gamma_n) sum_t |c_t x_t| (c_t rounded to fp32, the
 *           product, the n-term sum).
 *   affine: |scale| (err + u |shift| + u (|acc| + |shift| + err)) + 2u |out| (shift and scale
 *           rounded to fp32, the subtraction, the multiply).
 * The result is multiplied by 1.01 for the first-order approximations.
 *
 * `GpuLoss` (TransformerLens' loss: row_lse_v1 over the B x T rows, then metric_terms_v1 per
 * token or metric_combine_v1 for the mean) against `lossCpu`: each token's bound is the logprob
 * bound above; the mean's is their mean plus (2u + gamma_N) times the mean |value|.
 */
import { describe, it, expect } from 'vitest';
import { submitSteps } from '../../src/gpu/recorder.ts';
import { GpuLoss, GpuMetric, lossCpu, logProbMetric, logitDiffMetric, lossMetric, metricCpu, metricPositions, probMetric, type Affine, type Metric } from '../../src/model/metric.ts';
import { expectNear, firstNaN, gamma, U } from './check.ts';
import { kernelHarness } from './harness.ts';
import { ints, mulberry32, uniform } from './random.ts';

const V = 1003,
  T = 8;

const kh = kernelHarness();
const { upload } = kh;

/** The metric's terms as `metric.ts` defines them (kind, position, token, coefficient). */
function termsOf(m: Metric): { kind: 'logit' | 'logprob' | 'prob'; pos: number; token: number; coef: number }[] {
  switch (m.kind) {
    case 'logit-diff':
      return [
        { kind: 'logit', pos: m.pos, token: m.good, coef: 1 },
        { kind: 'logit', pos: m.pos, token: m.bad, coef: -1 },
      ];
    case 'logprob':
      return [{ kind: 'logprob', pos: m.pos, token: m.token, coef: 1 }];
    case 'prob':
      return [{ kind: 'prob', pos: m.pos, token: m.token, coef: 1 }];
    case 'loss': {
      const n = m.end - m.start;
      return Array.from({ length: n }, (_, i) => ({ kind: 'logprob' as const, pos: m.start + i, token: m.tokens[m.start + i + 1]!, coef: -1 / n }));
    }
  }
}

/** The error bound (file header) for batch row b of logits [rows, P, V] at `positions`. */
function rowBound(m: Metric, logits: Float32Array, b: number, positions: readonly number[], affine: Affine): number {
  const P = positions.length;
  const ts = termsOf(m);
  let err = 0,
    mag = 0,
    acc = 0;
  for (const t of ts) {
    const at = (b * P + positions.indexOf(t.pos)) * V;
    const r = logits.subarray(at, at + V);
    let x = r[t.token]!,
      e = 0;
    if (t.kind !== 'logit') {
      let mx = -Infinity;
      for (const v of r) mx = Math.max(mx, v);
      let s = 0,
        w = 0;
      for (const v of r) {
        s += Math.exp(v - mx);
        w += Math.exp(v - mx) * (6 + 5 * (mx - v));
      }
      const sumRel = (w / s) * U + gamma(V);
      const lse = mx + Math.log(s);
      const lseErr = -Math.log(1 - sumRel) + 2 ** -21 + 6 * U * Math.log(s) + U * Math.abs(lse);
      const lp = x - lse;
      e = lseErr + U * Math.abs(lp);
      x = lp;
      if (t.kind === 'prob') {
        x = Math.exp(lp);
        e = x * (Math.expm1(e) + (6 + 4 * Math.abs(lp)) * U) + 2 ** -126;
      }
    }
    err += Math.abs(t.coef) * e;
    mag += Math.abs(t.coef * x);
    acc += t.coef * x;
  }
  err += (2 * U + gamma(ts.length)) * mag;
  const out = (acc - affine.shift) * affine.scale;
  const total = Math.abs(affine.scale) * (err + U * Math.abs(affine.shift) + U * (Math.abs(acc) + Math.abs(affine.shift) + err)) + 2 * U * Math.abs(out);
  return 1.01 * total;
}

/** logits [B, T, V] in [-100, 100) from `seed`. */
function randomLogits(B: number, seed: number): Float32Array {
  return uniform(mulberry32(seed), B * T * V, -100, 100);
}

/** Positions `positions` of [B, T, V] logits: [B, P, V]. */
function gather(full: Float32Array, B: number, positions: readonly number[]): Float32Array {
  const out = new Float32Array(B * positions.length * V);
  for (let b = 0; b < B; b++) positions.forEach((p, i) => out.set(full.subarray((b * T + p) * V, (b * T + p + 1) * V), (b * positions.length + i) * V));
  return out;
}

/**
 * Runs `m` on the GPU over `logits` [B, P, V] at `positions` (submitting its dispatches alone,
 * into a NaN-filled out) and checks it against metricCpu + affine under the row bounds.
 */
async function runAndCheck(name: string, m: Metric, logits: Float32Array, B: number, positions: readonly number[], affine?: Affine): Promise<Float32Array> {
  const a = affine ?? { shift: 0, scale: 1 };
  const lt = upload(logits, `${name} logits`);
  const gm = affine ? new GpuMetric(kh.gpu, m, lt.buffer, B, positions, V, affine) : new GpuMetric(kh.gpu, m, lt.buffer, B, positions, V);
  try {
    const nan = new Float32Array(B).fill(Number.NaN);
    kh.gpu.device.queue.writeBuffer(gm.out.buffer, 0, nan.buffer, 0, nan.byteLength);
    submitSteps(kh.gpu, gm.dispatches, name);
    const got = (await gm.out.read()).subarray(0, B);
    expect(firstNaN(got), `${name}: NaN (unwritten or overflowed) in row ${firstNaN(got)}`).toBe(-1);
    const ref = Array.from(metricCpu(m, logits, B, V, positions), (v) => (v - a.shift) * a.scale);
    let abs = 0;
    for (let b = 0; b < B; b++) abs = Math.max(abs, rowBound(m, logits, b, positions, a));
    expectNear(name, got, ref, { abs, rel: 0 });
    return got;
  } finally {
    gm.release();
  }
}

describe('GPU metrics: row_lse + metric_combine', () => {
  const B = 3;
  const full = randomLogits(B, 700);
  const rng = mulberry32(701);
  const tokens = Array.from(ints(rng, T, V));
  const [good, bad, rand] = Array.from(ints(rng, 3, V));
  // Plant token 17 at the top of position 4 (p ~ 0.04 .. 0.14), token 23 near it at position 6.
  for (let b = 0; b < B; b++) {
    full[(b * T + 4) * V + 17] = 99.9 - 0.6 * b;
    full[(b * T + 6) * V + 23] = 97.5 + b;
  }
  const metrics: [string, Metric][] = [
    ['logit-diff', logitDiffMetric(5, good!, bad!)],
    ['logprob random token', logProbMetric(3, rand!)],
    ['logprob planted token', logProbMetric(6, 23)],
    ['prob planted token', probMetric(4, 17)],
    ['prob random token', probMetric(3, rand!)],
    ['loss [2, 6)', lossMetric(tokens, 2, 6)],
  ];
  const affine: Affine = { shift: -2.7, scale: 1 / 7.3 };

  for (const [name, m] of metrics) {
    it(`${name}: at its positions, identity and affine`, async () => {
      const positions = metricPositions(m);
      const logits = gather(full, B, positions);
      const got = await runAndCheck(name, m, logits, B, positions);
      await runAndCheck(`${name} affine`, m, logits, B, positions, affine);
      // The rows differ, so a combine that reads one row for all cannot pass.
      expect(new Set(got).size, `${name}: distinct rows`).toBe(B);
      if (m.kind === 'prob' && m.token === 17) for (const p of got) expect(p).toBeGreaterThan(0.02);
    });
  }

  it('the full [B, T, V] logits with positions 0 .. T - 1 (as patching reads them)', async () => {
    const all = [...Array(T).keys()];
    for (const [name, m] of metrics) await runAndCheck(`${name} all positions`, m, full, B, all, affine);
  });

  it('loss is the mean cross-entropy: ~ ln V + 100 on uniform [-100, 100) logits', async () => {
    const m = lossMetric(tokens, 2, 6);
    const got = await runAndCheck('loss', m, gather(full, B, metricPositions(m)), B, metricPositions(m));
    for (const l of got) expect(l).toBeGreaterThan(50);
  });

  it('constant rows of +100 and -100, and a one-hot row: exact answers, no overflow', async () => {
    // Row 0: all +100 (exp(100) overflows fp32 unless the max is subtracted); row 1: all -100;
    // row 2: one +100 among -100s (p = 1 / (1 + 1002 e^-200), logprob ~ -1e-84).
    const logits = new Float32Array(3 * V);
    logits.fill(100, 0, V);
    logits.fill(-100, V, 2 * V);
    logits.fill(-100, 2 * V, 3 * V);
    logits[2 * V + 5] = 100;
    const lp = await runAndCheck('logprob constant', logProbMetric(0, 5), logits, 3, [0]);
    const p = await runAndCheck('prob constant', probMetric(0, 5), logits, 3, [0]);
    expect(lp[0]).toBeCloseTo(-Math.log(V), 5);
    expect(lp[1]).toBeCloseTo(-Math.log(V), 5);
    expect(Math.abs(lp[2]!)).toBeLessThan(1e-5);
    expect(p[0]).toBeCloseTo(1 / V, 7);
    expect(p[2]).toBeCloseTo(1, 5);
  });

  it('B = 67: the combine spans two workgroups, the lse 67 rows', async () => {
    const Bb = 67;
    const logits = randomLogits(Bb, 702);
    const m = logProbMetric(2, 11);
    const pos = metricPositions(m);
    await runAndCheck('B=67 logprob', m, gather(logits, Bb, pos), Bb, pos, affine);
    const d = logitDiffMetric(7, 1, 1002);
    await runAndCheck('B=67 logit-diff', d, gather(logits, Bb, metricPositions(d)), Bb, metricPositions(d));
  });

  it('a metric position not among the computed logit positions throws', () => {
    const lt = upload(new Float32Array(B * 2 * V), 'logits');
    expect(() => new GpuMetric(kh.gpu, logProbMetric(5, 1), lt.buffer, B, [0, 1], V)).toThrow(/metric position 5 is not among the computed logit positions/);
  });
});

describe('GPU loss: row_lse over batch x pos rows, then metric_terms (per token) or metric_combine (mean)', () => {
  async function check(B: number, seed: number) {
    const full = randomLogits(B, seed);
    const rng = mulberry32(seed + 1);
    const tokens = Array.from({ length: B }, () => Array.from(ints(rng, T, V)));
    const lt = upload(full, 'loss logits');
    const all = [...Array(T).keys()];
    const id = { shift: 0, scale: 1 };
    const bounds: number[] = [];
    for (let b = 0; b < B; b++) for (let p = 0; p < T - 1; p++) bounds.push(rowBound(logProbMetric(p, tokens[b][p + 1]!), full, b, all, id));
    const want = lossCpu(full, tokens, V, true);
    const per = new GpuLoss(kh.gpu, lt.buffer, tokens, V, true);
    const mean = new GpuLoss(kh.gpu, lt.buffer, tokens, V, false);
    try {
      expect(per.out.shape).toEqual([B, T - 1]);
      expect(mean.out.shape).toEqual([]);
      for (const g of [per, mean]) {
        const nan = new Float32Array(g.out.numel).fill(Number.NaN);
        kh.gpu.device.queue.writeBuffer(g.out.buffer, 0, nan.buffer, 0, nan.byteLength);
      }
      submitSteps(kh.gpu, [...per.dispatches, ...mean.dispatches], 'loss');
      const got = await per.out.read();
      expect(firstNaN(got)).toBe(-1);
      expectNear(`loss per token B=${B}`, got, want, { abs: Math.max(...bounds), rel: 0 });
      const N = want.length;
      const m = lossCpu(full, tokens, V, false);
      const meanAbs = want.reduce((a, x) => a + Math.abs(x), 0) / N;
      const bound = 1.01 * (bounds.reduce((a, x) => a + x, 0) / N + (2 * U + gamma(N)) * meanAbs);
      expectNear(`mean loss B=${B}`, await mean.out.read(), m, { abs: bound, rel: 0 });
    } finally {
      per.release();
      mean.release();
    }
  }

  it('B = 3, T = 8, V = 1003', () => check(3, 800));
  it('B = 11 (70 per-token values: metric_terms spans two workgroups)', () => check(11, 801));
  it('one position has no next token to predict: an error', () => {
    const lt = upload(new Float32Array(V), 'logits');
    expect(() => new GpuLoss(kh.gpu, lt.buffer, [[1]], V, false)).toThrow(/a loss needs at least 2 positions/);
  });
});
