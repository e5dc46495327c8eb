/**
 * adamw_v1 and sgd_v1 (`optim.ts`) against `adamwCpu` / `sgdCpu`, and sumsq_v1 + clip_v1
 * (`grad-norm.ts`) against `gradNormCpu`, on odd sizes (1, 63, 1000, 4099: none a multiple of the
 * 64-wide workgroup or the 1,024-element sumsq chunk) and at offsets inside larger buffers (the
 * windows a model's weight chunks need), several updates in one submit (the clock's rows and tick),
 * and a clipping factor other than 1.
 *
 * Tolerance: both sides round every operation to fp32 (the CPU with Math.fround), so an update
 * differs by a few ulp of its operands: WGSL's divide and sqrt may be off by 2.5 ulp, the rest is
 * exact. Over 3 updates of O(1) data: abs 1e-6, rel 1e-6 of max |ref|.
 * The norm: a fp32 sum of n squares in any order is within gamma_n sum g^2 of the exact sum
 * (Higham 4.2); its square root halves the relative error: rel gamma_n / 2 + u for the sqrt.
 */
import { describe, expect, it } from 'vitest';
import { CLOCK_HEADER_WORDS } from '../../shaders/clock.wgsl.ts';
import { clip, sumsq, sumsqPartials } from '../../src/gpu/kernels/grad-norm.ts';
import { gradNormCpu } from '../../src/gpu/kernels/grad-norm.cpu.ts';
import { tick } from '../../src/gpu/kernels/clock.ts';
import { adamScalars, adamwCpu, sgdCpu, type AdamWHyper, type SgdHyper } from '../../src/gpu/kernels/optim.cpu.ts';
import { adamw, sgd } from '../../src/gpu/kernels/optim.ts';
import { submitSteps, type Dispatch } from '../../src/gpu/recorder.ts';
import { readBuffer } from '../../src/gpu/tensor.ts';
import { expectNear, gamma, U } from './check.ts';
import { kernelHarness } from './harness.ts';
import { mulberry32, normal } from './random.ts';

const kh = kernelHarness();
const { params, upload } = kh;
const SIZES = [1, 63, 1000, 4099];
const OFFSET = { param: 5, grad: 3 }; // elements before the tensor in its buffer
const UPDATES = 3;
const TOL = { abs: 1e-6, rel: 1e-6 };

/** A clock buffer for updates starting after `step`, with these rows and this clipping factor. */
function clockWith(step: number, rows: [number, number, number][], scale: number): GPUBuffer {
  const words = new Float32Array(CLOCK_HEADER_WORDS + 4 * rows.length);
  const u = new Uint32Array(words.buffer);
  u[0] = step;
  u[1] = step;
  words[3] = scale;
  rows.forEach((r, k) => words.set(r, CLOCK_HEADER_WORDS + 4 * k));
  return upload(words, 'clock').buffer;
}

describe('adamw_v1', () => {
  const h: AdamWHyper = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
  it.each(SIZES)('n = %i, at an offset, 3 updates in one submit, clipping factor 0.37', async (n) => {
    const rng = mulberry32(n);
    const p0 = normal(rng, n + OFFSET.param + 2);
    const g = normal(rng, n + OFFSET.grad);
    const lrs = [3e-3, 2e-3, 1e-3];
    const rows = lrs.map((lr, k): [number, number, number] => {
      const s = adamScalars(lr, h.beta1, h.beta2, k + 1);
      return [lr, s.stepSize, s.bc2Sqrt];
    });
    const clock = clockWith(0, rows, 0.37);
    const param = upload(p0, 'param');
    const [m, v] = [upload(new Float32Array(n), 'm'), upload(new Float32Array(n), 'v')];
    const update = adamw(
      kh.gpu,
      { param: param.buffer, paramStart: OFFSET.param, grad: upload(g, 'grad').buffer, gradStart: OFFSET.grad, n, clock, label: 'adamw', m: m.buffer, v: v.buffer, hyper: h },
      params,
    );
    const steps: Dispatch[] = [];
    for (let k = 0; k < UPDATES; k++) steps.push(update, tick(kh.gpu, clock, 'tick'));
    submitSteps(kh.gpu, steps, 'adamw');

    const ref = p0.slice(OFFSET.param, OFFSET.param + n);
    const [rm, rv] = [new Float32Array(n), new Float32Array(n)];
    for (let k = 0; k < UPDATES; k++) adamwCpu(ref, rm, rv, g.subarray(OFFSET.grad), n, k + 1, lrs[k]!, 0.37, h);
    const got = await param.read();
    expectNear(`adamw n=${n}`, got.subarray(OFFSET.param, OFFSET.param + n), ref, TOL);
    expectNear(`adamw n=${n} exp_avg`, await m.read(), rm, TOL);
    expectNear(`adamw n=${n} exp_avg_sq`, await v.read(), rv, TOL);
    // Elements around the window are untouched.
    expect(Array.from(got.subarray(0, OFFSET.param))).toEqual(Array.from(p0.subarray(0, OFFSET.param)));
    expect(Array.from(got.subarray(OFFSET.param + n))).toEqual(Array.from(p0.subarray(OFFSET.param + n)));
  });
});

describe('sgd_v1', () => {
  const cases: [string, SgdHyper][] = [
    ['momentum + dampening + weight decay', { momentum: 0.9, dampening: 0.2, nesterov: false, weightDecay: 0.01 }],
    ['nesterov', { momentum: 0.8, dampening: 0, nesterov: true, weightDecay: 0 }],
    ['plain', { momentum: 0, dampening: 0, nesterov: false, weightDecay: 0.01 }],
  ];
  it.each(cases)('%s, n = 1000 at an offset, 3 updates in one submit', async (_name, h) => {
    const n = 1000;
    const rng = mulberry32(7);
    const p0 = normal(rng, n + OFFSET.param);
    const g = normal(rng, n + OFFSET.grad);
    const lrs = [0.1, 0.05, 0.02];
    const clock = clockWith(
      0,
      lrs.map((lr) => [lr, 0, 0]),
      0.5,
    );
    const param = upload(p0, 'param');
    const buf = upload(new Float32Array(n).fill(Number.NaN), 'momentum'); // set at update 1, never read before
    const update = sgd(kh.gpu, { param: param.buffer, paramStart: OFFSET.param, grad: upload(g, 'grad').buffer, gradStart: OFFSET.grad, n, clock, label: 'sgd', buf: buf.buffer, hyper: h }, params);
    const steps: Dispatch[] = [];
    for (let k = 0; k < UPDATES; k++) steps.push(update, tick(kh.gpu, clock, 'tick'));
    submitSteps(kh.gpu, steps, 'sgd');
    const ref = p0.slice(OFFSET.param);
    const rb = new Float32Array(n);
    for (let k = 0; k < UPDATES; k++) sgdCpu(ref, rb, g.subarray(OFFSET.grad), n, k + 1, lrs[k]!, 0.5, h);
    expectNear(`sgd ${_name}`, (await param.read()).subarray(OFFSET.param), ref, TOL);
  });
});

describe('sumsq_v1 + clip_v1', () => {
  it('four tensors of odd sizes at offsets: the global norm and the clipping factor', async () => {
    const rng = mulberry32(11);
    const grads = SIZES.map((n) => normal(rng, n + OFFSET.grad));
    const total = SIZES.reduce((a, n) => a + sumsqPartials(n), 0);
    const partials = upload(new Float32Array(total).fill(Number.NaN), 'partials');
    for (const maxNorm of [0, 1, 1e6]) {
      const clock = clockWith(0, [[0, 0, 0]], Number.NaN);
      const steps: Dispatch[] = [];
      let at = 0;
      grads.forEach((g, k) => {
        steps.push(sumsq(kh.gpu, { grad: upload(g, 'grad').buffer, gradStart: OFFSET.grad, n: SIZES[k]!, partials: partials.buffer, partStart: at, label: `sumsq ${SIZES[k]}` }, params));
        at += sumsqPartials(SIZES[k]!);
      });
      steps.push(clip(kh.gpu, { partials: partials.buffer, count: total, clock, maxNorm, label: 'clip' }, params));
      submitSteps(kh.gpu, steps, 'grad norm');
      const header = await readBuffer(kh.gpu, clock, 0, 16);
      const ref = gradNormCpu(
        grads.map((g) => g.subarray(OFFSET.grad)),
        maxNorm,
      );
      const n = SIZES.reduce((a, b) => a + b, 0);
      expect(Math.abs(header[2]! - ref.norm) / ref.norm, `norm (max_norm ${maxNorm})`).toBeLessThanOrEqual(gamma(n) / 2 + U);
      expect(Math.abs(header[3]! - ref.scale), `scale (max_norm ${maxNorm})`).toBeLessThanOrEqual((gamma(n) / 2 + 4 * U) * ref.scale);
      if (maxNorm === 0 || maxNorm === 1e6) expect(header[3]).toBe(1);
    }
  });

  it('two runs give the same bits', async () => {
    const g = normal(mulberry32(12), 50_001);
    const count = sumsqPartials(g.length);
    const out: number[] = [];
    for (let r = 0; r < 2; r++) {
      const clock = clockWith(0, [[0, 0, 0]], 1);
      const partials = upload(new Float32Array(count), 'partials');
      submitSteps(
        kh.gpu,
        [
          sumsq(kh.gpu, { grad: upload(g, 'grad').buffer, gradStart: 0, n: g.length, partials: partials.buffer, partStart: 0, label: 'sumsq' }, params),
          clip(kh.gpu, { partials: partials.buffer, count, clock, maxNorm: 1, label: 'clip' }, params),
        ],
        'norm',
      );
      out.push((await readBuffer(kh.gpu, clock, 8, 4))[0]!);
    }
    expect(out[0]).toBe(out[1]);
    expect(out[0]).toBeGreaterThan(0);
  });
});
