/**
 * SAE / transcoder backward kernels (`sae-backward.wgsl.ts`): the CPU reference against central
 * finite differences of the float64 SAE forward (ReLU, JumpReLU, TopK; a skip transcoder), with
 * the active units held (autograd's derivative: the threshold and the ranking are constants);
 * then each GPU kernel against the reference on odd shapes: 13 rows, d_in 37, d_sae 101 in two
 * decoder row chunks (60 + 41) and two encoder column blocks (64 + 37), d_out 29, subtracting
 * (coef -1) and accumulating, and the input copy's backward with a gain.
 *
 * Tolerance: each output is one fp32 sum of R products against a float64 sum (R = d_out for the
 * decoder's, d_sae for the encoder's): gamma_R R max|a| max|b| (plus the previous value's
 * rounding when accumulating); the mask and the gain are single operations, exact.
 */
import { describe, it, expect } from 'vitest';
import { saeDecodeBackward, saeEncodeBackward, saeInputBackward, saeMaskBackward } from '../../src/gpu/kernels/sae-backward.ts';
import { saeDecodeBackwardCpu, saeEncodeBackwardCpu, saeForward64, saeInputBackwardCpu, saeMaskBackwardCpu, type Sae64 } from '../../src/gpu/kernels/sae-backward.cpu.ts';
import type { SaeActivationKind } from '../../src/gpu/kernels/sae.ts';
import { submitSteps } from '../../src/gpu/recorder.ts';
import { maxAbs } from '../helpers/compare.ts';
import { expectNear, gamma, U } from './check.ts';
import { expectMatchesFiniteDiff, project } from './finite-diff.ts';
import { kernelHarness } from './harness.ts';
import { mulberry32, normal, uniform } from './random.ts';

function randomSae(kind: SaeActivationKind, dIn: number, dSae: number, dOut: number, skip: boolean, seed: number): Sae64 {
  const rng = mulberry32(seed);
  return {
    kind,
    dIn,
    dSae,
    dOut,
    wEnc: Float64Array.from(normal(rng, dIn * dSae, 0, 0.5)),
    bEnc: Float64Array.from(normal(rng, dSae, 0, 0.3)),
    wDec: Float64Array.from(normal(rng, dSae * dOut, 0, 0.5)),
    bDec: Float64Array.from(normal(rng, dOut, 0, 0.1)),
    threshold: kind === 'jumprelu' ? Float64Array.from(uniform(rng, dSae, 0.1, 0.6)) : null,
    wSkip: skip ? Float64Array.from(normal(rng, dIn * dOut, 0, 0.3)) : null,
    k: kind === 'topk' ? 4 : undefined,
  };
}

/** dx of L = sum g recons through the SAE, from the reference's pieces; and d acts. */
function backward64(s: Sae64, x: ArrayLike<number>, g: ArrayLike<number>, rows: number) {
  const f = saeForward64(s, x, rows);
  const dActs = new Float64Array(rows * s.dSae);
  saeDecodeBackwardCpu(dActs, g, s.wDec, rows, s.dSae, s.dOut);
  const dPre = new Float64Array(rows * s.dSae);
  saeMaskBackwardCpu(dPre, dActs, f.acts, rows * s.dSae);
  const dx = new Float64Array(rows * s.dIn);
  saeEncodeBackwardCpu(dx, dPre, s.wEnc, rows, s.dIn, s.dSae);
  if (s.wSkip) saeEncodeBackwardCpu(dx, g, s.wSkip, rows, s.dIn, s.dOut, 1, true);
  return { f, dActs, dPre, dx };
}

describe.each([
  ['relu', false],
  ['jumprelu', false],
  ['topk', false],
  ['jumprelu', true],
] as const)('SAE backward CPU reference vs finite differences (%s, skip %s)', (kind, skip) => {
  const [rows, dIn, dSae, dOut] = [3, 5, 9, skip ? 4 : 5];
  const s = randomSae(kind, dIn, dSae, dOut, skip, kind.length + (skip ? 10 : 0));
  const rng = mulberry32(77);
  const x = Float64Array.from(normal(rng, rows * dIn, 0, 1));
  const g = Float64Array.from(uniform(rng, rows * dOut));
  const r = backward64(s, x, g, rows);

  it('some units fire and some do not (the mask matters)', () => {
    const on = r.f.fired.reduce((a, b) => a + b, 0);
    expect(on).toBeGreaterThan(0);
    expect(on).toBeLessThan(rows * dSae);
  });

  it('d input through the encoder, the active units and the decoder (and W_skip)', () => {
    expectMatchesFiniteDiff('dx', r.dx, (xx) => project(g, saeForward64(s, xx, rows, r.f.fired).recons), x);
  });

  it('d features (hook_sae_acts_post) and d pre-activations (hook_sae_acts_pre)', () => {
    const reconsOfActs = (a: Float64Array) => {
      const out = new Float64Array(rows * dOut);
      for (let i = 0; i < rows; i++)
        for (let j = 0; j < dOut; j++) {
          let v = s.bDec[j];
          for (let f = 0; f < dSae; f++) v += a[i * dSae + f] * s.wDec[f * dOut + j];
          out[i * dOut + j] = v;
        }
      return out;
    };
    expectMatchesFiniteDiff('dActs', r.dActs, (a) => project(g, reconsOfActs(a)), r.f.acts);
    const actsOfPre = (p: Float64Array) => p.map((v, i) => (r.f.fired[i] ? v : 0));
    expectMatchesFiniteDiff('dPre', r.dPre, (p) => project(g, reconsOfActs(actsOfPre(p))), r.f.pre);
  });
});

const kh = kernelHarness();
const { params, upload, empty } = kh;

describe('SAE backward kernels on the GPU', () => {
  const [rows, dIn, dSae, dOut] = [13, 37, 101, 29];
  const s = randomSae('jumprelu', dIn, dSae, dOut, true, 5);
  const rng = mulberry32(6);
  const x = normal(rng, rows * dIn, 0, 1);
  const g = uniform(rng, rows * dOut);
  const f32 = (a: ArrayLike<number>) => Float32Array.from(a);

  it('decoder backward over two W_dec row chunks', async () => {
    const wDec = f32(s.wDec);
    const chunks = [
      { buffer: upload(wDec.subarray(0, 60 * dOut), 'W_dec[0..60)').buffer, row0: 0, rows: 60 },
      { buffer: upload(wDec.subarray(60 * dOut), 'W_dec[60..)').buffer, row0: 60, rows: dSae - 60 },
    ];
    const dActs = empty(rows * dSae, 'dActs');
    submitSteps(kh.gpu, saeDecodeBackward(kh.gpu, { dActs: dActs.buffer, g: upload(g, 'g').buffer, chunks, rows, dSae, dOut, label: 'decode backward' }, params), 'decode backward');
    const ref = new Float64Array(rows * dSae);
    saeDecodeBackwardCpu(ref, g, wDec, rows, dSae, dOut);
    expectNear('dActs', await dActs.read(), ref, { abs: gamma(dOut) * dOut * maxAbs(g) * maxAbs(wDec), rel: U });
  });

  it('mask backward: the gradient where the unit fired, exactly 0 elsewhere', async () => {
    const acts = f32(saeForward64(s, x, rows).acts);
    const dActs = uniform(rng, rows * dSae);
    const dPre = empty(rows * dSae, 'dPre');
    submitSteps(kh.gpu, [saeMaskBackward(kh.gpu, { dPre: dPre.buffer, dActs: upload(dActs, 'dActs').buffer, ref: upload(acts, 'acts').buffer, n: rows * dSae, label: 'mask' }, params)], 'mask');
    const ref = new Float64Array(rows * dSae);
    saeMaskBackwardCpu(ref, dActs, acts, rows * dSae);
    expect([...(await dPre.read())]).toEqual([...Float32Array.from(ref)]);
  });

  it('encoder backward over two W_enc column blocks, subtracted from a previous gradient; W_skip added', async () => {
    const wEnc = f32(s.wEnc);
    const block = (c0: number, c1: number) => {
      const m = new Float32Array(dIn * (c1 - c0));
      for (let i = 0; i < dIn; i++) m.set(wEnc.subarray(i * dSae + c0, i * dSae + c1), i * (c1 - c0));
      return { w: upload(m, `W_enc[:, ${c0}..${c1})`).buffer, col0: c0, cols: c1 - c0 };
    };
    const dPreVals = f32(backward64(s, x, g, rows).dPre); // sparse: only fired units
    const prev = uniform(rng, rows * dIn);
    const dx = upload(prev, 'dx');
    const wSkip = f32(s.wSkip!);
    submitSteps(
      kh.gpu,
      [
        ...saeEncodeBackward(
          kh.gpu,
          { dx: dx.buffer, d: upload(dPreVals, 'dPre').buffer, ld: dSae, blocks: [block(0, 64), block(64, dSae)], rows, dIn, coef: -1, accumulate: true, label: 'encode backward' },
          params,
        ),
        ...saeEncodeBackward(
          kh.gpu,
          { dx: dx.buffer, d: upload(g, 'g').buffer, ld: dOut, blocks: [{ w: upload(wSkip, 'W_skip').buffer, col0: 0, cols: dOut }], rows, dIn, accumulate: true, label: 'skip backward' },
          params,
        ),
      ],
      'encode backward',
    );
    const ref = Float64Array.from(prev);
    saeEncodeBackwardCpu(ref, dPreVals, wEnc, rows, dIn, dSae, -1, true);
    saeEncodeBackwardCpu(ref, g, wSkip, rows, dIn, dOut, 1, true);
    const tol = gamma(dSae + 2) * (dSae * maxAbs(dPreVals) * maxAbs(wEnc) + dOut * maxAbs(g) * maxAbs(wSkip) + maxAbs(prev));
    expectNear('dx', await dx.read(), ref, { abs: tol, rel: U });
  });

  it('input backward: written, then added with a gain', async () => {
    const d = uniform(rng, rows * dIn);
    const gain = uniform(rng, dIn, -1, 2);
    const out = empty(rows * dIn, 'out');
    submitSteps(
      kh.gpu,
      [
        saeInputBackward(kh.gpu, { out: out.buffer, d: upload(d, 'd').buffer, n: rows * dIn, width: dIn, label: 'copy' }, params),
        saeInputBackward(kh.gpu, { out: out.buffer, d: upload(d, 'd2').buffer, gain: upload(gain, 'gain').buffer, n: rows * dIn, width: dIn, accumulate: true, label: 'gain' }, params),
      ],
      'input backward',
    );
    const ref = new Float64Array(rows * dIn);
    saeInputBackwardCpu(ref, d, null, rows * dIn, dIn);
    saeInputBackwardCpu(ref, d, gain, rows * dIn, dIn, true);
    expectNear('input backward', await out.read(), ref, { abs: 0, rel: 2 * U });
  });
});
