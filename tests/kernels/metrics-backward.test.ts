/**
 * The metric backward (d sum_b metric_b / d logits, `GpuMetricBackward`) for every metric kind
 * (logit difference, log-prob, prob, loss over a span = cross-entropy), with and without the
 * normalizing affine: the float64 CPU reference against central finite differences of
 * `metricCpu`, and the GPU kernel against the reference on V = 1003 (no multiple of the 64-wide
 * workgroup), 3 batch rows, logits in [-20, 20); a padded output row (ldo = 1004, pad written 0),
 * a logit difference on two computed columns only, and rows split into blocks by a small
 * binding limit. Through Gemma's final logit soft-cap (y = cap tanh(l / cap), the gradient of l is
 * the gradient of y times 1 - (y / cap)^2): the reference against finite differences of the
 * capped metric, the GPU variant against the reference.
 *
 * Tolerance: softmax s_v = exp(l_v - lse) is within (6 + 5|l_v - lse|) u of s_v plus the lse's
 * own error (~gamma_V), times the summed |coef| (x p_tok for a probability): abs =
 * (sum |coef|) (gamma_V + 250 u), rel = 4u.
 */
import { describe, it, expect } from 'vitest';
import { GpuMetricBackward, metricBackwardCpu } from '../../src/model/metric-backward.ts';
import { logProbMetric, logitDiffMetric, lossMetric, metricCpu, metricPositions, probMetric, type Metric } from '../../src/model/metric.ts';
import { submitSteps } from '../../src/gpu/recorder.ts';
import { expectNear, gamma, U } from './check.ts';
import { expectMatchesFiniteDiff } from './finite-diff.ts';
import { kernelHarness } from './harness.ts';
import { mulberry32, uniform } from './random.ts';

const T = 8;
const tokens = [3, 1, 4, 1, 5, 9, 2, 6];
const METRICS: Array<[string, Metric]> = [
  ['logit-diff', logitDiffMetric(5, 7, 2)],
  ['logprob', logProbMetric(6, 4)],
  ['prob', probMetric(6, 4)],
  ['loss 2..6', lossMetric(tokens, 2, 6)],
];

describe.each(METRICS)('%s backward CPU reference vs finite differences', (_, m) => {
  it.each([1, 0.37])('affine scale %s', (scale) => {
    const [B, V] = [2, 11];
    const rng = mulberry32(7);
    const logits = Float64Array.from(uniform(rng, B * T * V, -3, 3));
    const affine = { shift: 0.5, scale };
    const grad = metricBackwardCpu(m, logits, B, V, undefined, affine);
    // metricCpu computes in float64 from whatever array it is given: hand it the float64 logits.
    const L = (x: Float64Array) => metricCpu(m, x as unknown as Float32Array, B, V).reduce((s, v) => s + (v - affine.shift) * affine.scale, 0);
    expectMatchesFiniteDiff('dlogits', grad, L, logits, 120);
  });
});

describe.each(METRICS)('%s backward through a logit soft-cap (CPU reference vs finite differences)', (_, m) => {
  it('cap 2.5: the gradient of the uncapped logits', () => {
    const [B, V, cap] = [2, 11, 2.5];
    const raw = Float64Array.from(uniform(mulberry32(8), B * T * V, -6, 6)); // several times the cap
    const capped = (l: Float64Array) => l.map((v) => cap * Math.tanh(v / cap));
    const grad = metricBackwardCpu(m, capped(raw), B, V, undefined, undefined, cap);
    const L = (x: Float64Array) => metricCpu(m, capped(x) as unknown as Float32Array, B, V).reduce((s, v) => s + v, 0);
    expectMatchesFiniteDiff('dlogits (capped)', grad, L, raw, 120);
  });
});

const kh = kernelHarness();
const { upload, empty } = kh;

describe.each(METRICS)('%s backward through a logit soft-cap on the GPU', (_, m) => {
  it('in place, 3 rows of V 1003, cap 3', async () => {
    const [B, V, cap] = [3, 1003, 3];
    const positions = metricPositions(m);
    const P = positions.length;
    const logits = uniform(mulberry32(13), B * P * V, -20, 20).map((v) => cap * Math.tanh(v / cap));
    const buf = upload(logits, 'capped logits then their gradient');
    const mb = new GpuMetricBackward(kh.gpu, m, { logits: buf.buffer, B, positions, V, softcap: cap });
    submitSteps(kh.gpu, mb.dispatches, 'metric backward (soft-cap)');
    const ref = metricBackwardCpu(m, logits, B, V, positions, undefined, cap);
    expectNear(`${m.kind} dlogits (soft-cap)`, await buf.read(), ref, { abs: gamma(V) + 250 * U, rel: 4 * U });
    mb.release();
  });
});

describe.each(METRICS)('%s backward on the GPU', (_, m) => {
  it('3 rows, V 1003 at the metric positions, padded output rows', async () => {
    const [B, V, ldo] = [3, 1003, 1004];
    const positions = metricPositions(m);
    const P = positions.length;
    const rng = mulberry32(11);
    const logits = uniform(rng, B * P * V, -20, 20);
    const out = empty(B * P * ldo, 'dlogits');
    const affine = { shift: 1, scale: 0.5 };
    const mb = new GpuMetricBackward(kh.gpu, m, { logits: upload(logits, 'logits').buffer, B, positions, V, dlogits: out.buffer, ldo, affine });
    submitSteps(kh.gpu, mb.dispatches, 'metric backward');
    const got = await out.read();
    // The row values the kernel also writes are the forward metric's.
    const values = await mb.rowValues();
    const refValues = metricCpu(m, logits, B, V, positions);
    refValues.forEach((v, b) => expect(Math.abs(values[b] - (v - affine.shift) * affine.scale)).toBeLessThan(1e-4 * Math.max(1, Math.abs(v))));
    mb.release();
    const ref = metricBackwardCpu(m, logits, B, V, positions, affine);
    const unpadded = Float32Array.from({ length: B * P * V }, (_, i) => got[Math.floor(i / V) * ldo + (i % V)]);
    expectNear(`${m.kind} dlogits`, unpadded, ref, { abs: gamma(V) + 250 * U, rel: 4 * U });
    for (let r = 0; r < B * P; r++) expect(got[r * ldo + V]).toBe(0);
  });
});

describe('metric backward variants on the GPU', () => {
  it('a logit difference on its two computed columns', async () => {
    const m = logitDiffMetric(5, 700, 3);
    const B = 2;
    const logits = uniform(mulberry32(3), B * 2);
    const out = empty(B * 2, 'dlogits');
    const mb = new GpuMetricBackward(kh.gpu, m, { logits: upload(logits, 'logits').buffer, B, positions: [5], V: 2, columns: [700, 3], dlogits: out.buffer });
    submitSteps(kh.gpu, mb.dispatches, 'metric backward');
    expect([...(await out.read())]).toEqual([1, -1, 1, -1]);
    mb.release();
  });
});

describe('metric backward in row blocks (a 16 KiB binding limit)', () => {
  const small = kernelHarness({ gpu: { maxBindingBytes: 16384 } });
  it('loss over 4 positions x 3 rows of V 1003: 3 blocks of 4 rows', async () => {
    const m = lossMetric(tokens, 2, 6);
    const [B, V] = [3, 1003];
    const positions = metricPositions(m);
    const logits = uniform(mulberry32(5), B * positions.length * V, -20, 20);
    const out = small.empty(B * positions.length * V, 'dlogits');
    const mb = new GpuMetricBackward(small.gpu, m, { logits: small.upload(logits, 'logits').buffer, B, positions, V, dlogits: out.buffer });
    expect(mb.dispatches).toHaveLength(3);
    submitSteps(small.gpu, mb.dispatches, 'metric backward');
    expectNear('blocked dlogits', await out.read(), metricBackwardCpu(m, logits, B, V, positions), { abs: gamma(V) + 250 * U, rel: 4 * U });
    mb.release();
  });
});

describe('a metric per batch row', () => {
  it('each row its own loss (its own next tokens)', async () => {
    const [B, V] = [2, 101];
    const rows = [tokens, [7, 7, 0, 3, 99, 1, 2, 5]];
    const ms = rows.map((t) => lossMetric(t, 1, 7));
    const positions = metricPositions(ms[0]);
    const logits = uniform(mulberry32(12), B * positions.length * V, -5, 5);
    const out = empty(B * positions.length * V, 'dlogits');
    const mb = new GpuMetricBackward(kh.gpu, ms, { logits: upload(logits, 'logits').buffer, B, positions, V, dlogits: out.buffer });
    submitSteps(kh.gpu, mb.dispatches, 'metric backward');
    expectNear('per-row dlogits', await out.read(), metricBackwardCpu(ms, logits, B, V, positions), { abs: gamma(V) + 250 * U, rel: 4 * U });
    const values = await mb.rowValues();
    ms.forEach((m, b) => {
      const ref = metricCpu(m, logits.subarray(b * positions.length * V, (b + 1) * positions.length * V), 1, V, positions)[0];
      expect(Math.abs(values[b] - ref)).toBeLessThan(1e-4 * Math.max(1, Math.abs(ref)));
    });
    mb.release();
  });
});

describe('metric backward in place', () => {
  it('overwrites the logits with their gradient (loss over 4 positions, V 1003), values from the logits', async () => {
    const m = lossMetric(tokens, 2, 6);
    const [B, V] = [3, 1003];
    const positions = metricPositions(m);
    const logits = uniform(mulberry32(21), B * positions.length * V, -20, 20);
    const buf = upload(logits, 'logits then dlogits');
    const mb = new GpuMetricBackward(kh.gpu, m, { logits: buf.buffer, B, positions, V });
    submitSteps(kh.gpu, mb.dispatches, 'metric backward in place');
    expectNear('in-place dlogits', await buf.read(), metricBackwardCpu(m, logits, B, V, positions), { abs: gamma(V) + 250 * U, rel: 4 * U });
    const values = await mb.rowValues();
    metricCpu(m, logits, B, V, positions).forEach((v, b) => expect(Math.abs(values[b] - v)).toBeLessThan(1e-4 * Math.max(1, Math.abs(v))));
    mb.release();
  });
});
