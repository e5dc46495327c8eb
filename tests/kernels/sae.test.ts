/**
 * SAE kernels (encode through matmul, ReLU / JumpReLU / TopK, the sparse-aware decode with its
 * fused error, the error alone) against `sae.cpu.ts`, on odd shapes: 13 rows, d_in 37, d_sae 203
 * (not a multiple of the 64-wide workgroup) split into two encoder column chunks and two
 * decoder row chunks, d_out 45.
 *
 * Tolerances. Encode and decode are fp32 sums of K terms against float64 sums: each output is off
 * by at most gamma_K times the sum of the absolute terms (Higham 3.1), so the bound is
 * gamma_{K+1} * max over outputs of (|bias| + sum |terms|). The activations and the error are
 * exact: the GPU and the reference compute the same single fp32 operation (max, compare,
 * subtract) on the same inputs, so they must agree bit for bit.
 */
import { describe, it, expect } from 'vitest';
import { saeActivation, saeDecode, saeEncode, saeError, saeInput, type SaeActivationKind } from '../../src/gpu/kernels/sae.ts';
import { saeActivationCpu, saeDecodeCpu, saeEncodeCpu, saeErrorCpu, saeInputCpu } from '../../src/gpu/kernels/sae.cpu.ts';
import { submitSteps } from '../../src/gpu/recorder.ts';
import { expectNear, gamma } from './check.ts';
import { kernelHarness } from './harness.ts';
import { mulberry32, normal, uniform } from './random.ts';

const ROWS = 13;
const D_IN = 37;
const D_SAE = 203;
const D_OUT = 45;

const kh = kernelHarness();
const { params, upload, empty } = kh;

/** Columns [c0, c1) of a row-major [rows, cols] matrix. */
function columns(m: Float32Array, rows: number, cols: number, c0: number, c1: number): Float32Array {
  const out = new Float32Array(rows * (c1 - c0));
  for (let r = 0; r < rows; r++) out.set(m.subarray(r * cols + c0, r * cols + c1), r * (c1 - c0));
  return out;
}

/** max over outputs of |bias| + sum |a_k b_k| for out = a [rows, K] @ b [K, N] + bias. */
function magnitude(a: Float32Array, b: Float32Array, bias: Float32Array, rows: number, K: number, N: number): number {
  let m = 0;
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < N; j++) {
      let s = Math.abs(bias[j]);
      for (let k = 0; k < K; k++) s += Math.abs(a[r * K + k] * b[k * N + j]);
      m = Math.max(m, s);
    }
  }
  return m;
}

describe('sae encode', () => {
  it('x @ W_enc + b_enc over two column chunks (100 + 103 of 203)', async () => {
    const rng = mulberry32(11);
    const x = normal(rng, ROWS * D_IN);
    const w = normal(rng, D_IN * D_SAE, 0, 0.3);
    const b = normal(rng, D_SAE, 0, 0.1);
    const pre = empty(ROWS * D_SAE, 'pre');
    const chunks = [
      [0, 100],
      [100, D_SAE],
    ].map(([c0, c1]) => ({ w: upload(columns(w, D_IN, D_SAE, c0, c1), 'w').buffer, bias: upload(b.slice(c0, c1), 'b').buffer, col0: c0, cols: c1 - c0 }));
    submitSteps(kh.gpu, saeEncode(kh.gpu, { pre: pre.buffer, x: upload(x, 'x').buffer, chunks, rows: ROWS, dIn: D_IN, dSae: D_SAE, label: 'encode' }, params), 'encode');
    const ref = new Float32Array(ROWS * D_SAE);
    saeEncodeCpu(ref, x, w, b, ROWS, D_IN, D_SAE);
    expectNear('encode', await pre.read(), ref, { abs: gamma(D_IN + 1) * magnitude(x, w, b, ROWS, D_IN, D_SAE), rel: 0 });
  });
});

describe.each(['relu', 'jumprelu', 'topk'] as SaeActivationKind[])('sae activation %s', (kind) => {
  const ks = kind === 'topk' ? [1, 7, D_SAE] : [0];
  it.each(ks)(`${ROWS} rows x ${D_SAE} features (k = %i), bit-exact`, async (k) => {
    const rng = mulberry32(23 + k);
    const pre = normal(rng, ROWS * D_SAE);
    // Ties, for TopK's lower-index rule: row 2 repeats one value at several features.
    for (const i of [3, 70, 150, 200]) pre[2 * D_SAE + i] = 2.5;
    const threshold = uniform(rng, D_SAE, -0.5, 1);
    const acts = empty(ROWS * D_SAE, 'acts');
    const d = saeActivation(
      kh.gpu,
      { kind, acts: acts.buffer, pre: upload(pre, 'pre').buffer, threshold: kind === 'jumprelu' ? upload(threshold, 'threshold').buffer : null, rows: ROWS, dSae: D_SAE, k, label: kind },
      params,
    );
    submitSteps(kh.gpu, [d], kind);
    const ref = new Float32Array(ROWS * D_SAE);
    saeActivationCpu(kind, ref, pre, threshold, ROWS, D_SAE, k);
    const got = await acts.read();
    expect(Array.from(got)).toEqual(Array.from(ref));
    if (kind === 'topk') {
      for (let r = 0; r < ROWS; r++) {
        // k picks per row; the ones with pre <= 0 are relu'd to 0, so count the picked positives.
        const positives = Array.from(pre.subarray(r * D_SAE, (r + 1) * D_SAE)).filter((v) => v > 0).length;
        const live = got.subarray(r * D_SAE, (r + 1) * D_SAE).filter((v) => v > 0).length;
        expect(live).toBe(Math.min(k, positives));
      }
    }
  });
});

describe('sae decode', () => {
  async function decode(withSkip: boolean, withError: boolean) {
    const rng = mulberry32(withSkip ? 31 : 37);
    // Sparse activations, about 1 in 8 non-zero, as an SAE's are.
    const acts = normal(rng, ROWS * D_SAE).map((v, i) => (((i * 2654435761) >>> 0) % 8 === 0 ? Math.abs(v) : 0));
    const w = normal(rng, D_SAE * D_OUT, 0, 0.3);
    const b = normal(rng, D_OUT, 0, 0.1);
    const skip = normal(rng, ROWS * D_OUT);
    const x = normal(rng, ROWS * D_OUT);
    const recons = empty(ROWS * D_OUT, 'recons');
    const err = empty(ROWS * D_OUT, 'err');
    const chunks = [
      [0, 120],
      [120, D_SAE],
    ].map(([r0, r1]) => ({ buffer: upload(w.slice(r0 * D_OUT, r1 * D_OUT), 'w').buffer, row0: r0, rows: r1 - r0 }));
    const steps = saeDecode(
      kh.gpu,
      {
        recons: recons.buffer,
        acts: upload(acts, 'acts').buffer,
        chunks,
        bDec: upload(b, 'b').buffer,
        skip: withSkip ? upload(skip, 'skip').buffer : null,
        error: withError ? { x: upload(x, 'x').buffer, err: err.buffer } : null,
        rows: ROWS,
        dSae: D_SAE,
        n: D_OUT,
        label: 'decode',
      },
      params,
    );
    expect(steps).toHaveLength(2);
    submitSteps(kh.gpu, steps, 'decode');
    const ref = new Float32Array(ROWS * D_OUT);
    saeDecodeCpu(ref, acts, w, b, withSkip ? skip : null, ROWS, D_SAE, D_OUT);
    const bias = withSkip ? b.map((v, j) => Math.abs(v) + Math.max(...Array.from({ length: ROWS }, (_, r) => Math.abs(skip[r * D_OUT + j])))) : b;
    const tol = { abs: gamma(D_SAE + 2) * magnitude(acts, w, bias, ROWS, D_SAE, D_OUT), rel: 0 };
    const got = await recons.read();
    expectNear('decode', got, ref, tol);
    if (withError) {
      const refErr = new Float32Array(ROWS * D_OUT);
      saeErrorCpu(refErr, x, got, ROWS * D_OUT); // the error of the GPU's own reconstruction: exact
      expect(Array.from(await err.read())).toEqual(Array.from(refErr));
    }
  }

  it('two decoder chunks, b_dec only', () => decode(false, false));
  it('two decoder chunks, a skip term and the fused error x - recons', () => decode(true, true));
});

describe('sae error', () => {
  it('err = x - r over 1001 values, bit-exact', async () => {
    const rng = mulberry32(41);
    const x = normal(rng, 1001);
    const r = normal(rng, 1001);
    const err = empty(1001, 'err');
    submitSteps(kh.gpu, [saeError(kh.gpu, { err: err.buffer, x: upload(x, 'x').buffer, r: upload(r, 'r').buffer, n: 1001, label: 'error' }, params)], 'error');
    const ref = new Float32Array(1001);
    saeErrorCpu(ref, x, r, 1001);
    expect(Array.from(await err.read())).toEqual(Array.from(ref));
  });
});

describe('sae input', () => {
  it.each([false, true])('copy of 13 rows x 37 (gain %s), bit-exact', async (withGain) => {
    const rng = mulberry32(43);
    const n = ROWS * D_IN;
    const x = normal(rng, n);
    const g = uniform(rng, D_IN, 0.5, 1.5);
    const out = empty(n, 'out');
    submitSteps(kh.gpu, [saeInput(kh.gpu, { out: out.buffer, x: upload(x, 'x').buffer, gain: withGain ? upload(g, 'gain').buffer : null, n, width: D_IN, label: 'input' }, params)], 'input');
    const ref = new Float32Array(n);
    saeInputCpu(ref, x, withGain ? g : null, n, D_IN);
    expect(Array.from(await out.read())).toEqual(Array.from(ref));
  });
});
