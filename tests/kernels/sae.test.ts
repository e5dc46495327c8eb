/**
 * SAE kernels (encode through matmul, ReLU / JumpReLU / TopK, the compaction of active features,
 * both decoders (v1 over every feature, v2 over the compacted ones) with their fused error, the
 * error alone, the input copy) against `sae.cpu.ts`, on odd shapes: 13 rows, d_in 37, d_sae 203
 * (not a multiple of the 64-wide workgroup) split into two encoder column chunks and two
 * decoder row chunks, d_out 45.
 *
 * Tolerances. Encode and decode are fp32 sums of K terms against float64 sums: each output is off
 * by at most gamma_K times the sum of the absolute terms (Higham 3.1), so the bound is
 * gamma_{K+1} * max over outputs of (|bias| + sum |terms|). The activations and the error are
 * exact: the GPU and the reference compute the same single fp32 operation (max, compare,
 * subtract) on the same inputs, so they must agree bit for bit; the compaction is integers.
 */
import { describe, it, expect } from 'vitest';
import { saeActivation, saeCompact, saeDecode, saeEncode, saeError, saeInput, type SaeActivationKind, type SaeDecodeVersion } from '../../src/gpu/kernels/sae.ts';
import { saeActivationCpu, saeCompactCpu, saeDecodeCpu, saeEncodeCpu, saeErrorCpu, saeInputCpu } from '../../src/gpu/kernels/sae.cpu.ts';
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

describe('sae compact', () => {
  it('the active features of 13 rows x 203, in index order, and their counts (a row with none, a row with all)', async () => {
    const rng = mulberry32(29);
    const acts = normal(rng, ROWS * D_SAE).map((v, i) => (((i * 2654435761) >>> 0) % 7 === 0 ? Math.abs(v) + 0.1 : 0));
    acts.fill(0, 4 * D_SAE, 5 * D_SAE); // row 4: nothing fires
    acts.fill(1.5, 9 * D_SAE, 10 * D_SAE); // row 9: everything fires
    const list = empty(ROWS * D_SAE, 'list');
    const counts = empty(ROWS, 'counts');
    submitSteps(kh.gpu, [saeCompact(kh.gpu, { acts: upload(acts, 'acts').buffer, out: { list: list.buffer, counts: counts.buffer }, rows: ROWS, dSae: D_SAE, label: 'compact' }, params)], 'compact');
    const refList = new Uint32Array(ROWS * D_SAE);
    const refCounts = new Uint32Array(ROWS);
    saeCompactCpu(refList, refCounts, acts, ROWS, D_SAE);
    const gotCounts = new Uint32Array((await counts.read()).buffer);
    const gotList = new Uint32Array((await list.read()).buffer);
    expect(Array.from(gotCounts)).toEqual(Array.from(refCounts));
    expect(refCounts[4]).toBe(0);
    expect(refCounts[9]).toBe(D_SAE);
    for (let r = 0; r < ROWS; r++) expect(Array.from(gotList.subarray(r * D_SAE, r * D_SAE + refCounts[r])), `row ${r}`).toEqual(Array.from(refList.subarray(r * D_SAE, r * D_SAE + refCounts[r])));
  });
});

describe.each(['v1', 'v2'] as SaeDecodeVersion[])('sae decode %s', (version) => {
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
    const actsT = upload(acts, 'acts');
    const chunks = [
      [0, 120],
      [120, D_SAE],
    ].map(([r0, r1]) => ({ buffer: upload(w.slice(r0 * D_OUT, r1 * D_OUT), 'w').buffer, row0: r0, rows: r1 - r0 }));
    const compact = version === 'v2' ? { list: empty(ROWS * D_SAE, 'list').buffer, counts: empty(ROWS, 'counts').buffer } : null;
    const steps = [
      ...(compact ? [saeCompact(kh.gpu, { acts: actsT.buffer, out: compact, rows: ROWS, dSae: D_SAE, label: 'compact' }, params)] : []),
      ...saeDecode(
        kh.gpu,
        {
          recons: recons.buffer,
          acts: actsT.buffer,
          chunks,
          bDec: upload(b, 'b').buffer,
          skip: withSkip ? upload(skip, 'skip').buffer : null,
          error: withError ? { x: upload(x, 'x').buffer, err: err.buffer } : null,
          compact,
          rows: ROWS,
          dSae: D_SAE,
          n: D_OUT,
          label: 'decode',
        },
        params,
        version,
      ),
    ];
    expect(steps).toHaveLength(version === 'v2' ? 3 : 2);
    submitSteps(kh.gpu, steps, 'decode');
    const ref = new Float32Array(ROWS * D_OUT);
    saeDecodeCpu(ref, acts, w, b, withSkip ? skip : null, ROWS, D_SAE, D_OUT);
    const bias = withSkip ? b.map((v, j) => Math.abs(v) + Math.max(...Array.from({ length: ROWS }, (_, r) => Math.abs(skip[r * D_OUT + j])))) : b;
    const tol = { abs: gamma(D_SAE + 2) * magnitude(acts, w, bias, ROWS, D_SAE, D_OUT), rel: 0 };
    const got = await recons.read();
    expectNear(`decode ${version}`, got, ref, tol);
    if (withError) {
      const refErr = new Float32Array(ROWS * D_OUT);
      saeErrorCpu(refErr, x, got, ROWS * D_OUT); // the error of the GPU's own reconstruction: exact
      expect(Array.from(await err.read())).toEqual(Array.from(refErr));
    }
    return got;
  }

  it('two decoder chunks, b_dec only', () => decode(false, false));
  it('two decoder chunks, a skip term and the fused error x - recons', () => decode(true, true));
});

describe('sae decode v2 against v1', () => {
  it('adds the same features in the same order: bit-identical outputs', async () => {
    const rng = mulberry32(47);
    const acts = normal(rng, ROWS * D_SAE).map((v, i) => (((i * 2654435761) >>> 0) % 5 === 0 ? Math.abs(v) : 0));
    const w = upload(normal(rng, D_SAE * D_OUT, 0, 0.3), 'w');
    const b = upload(normal(rng, D_OUT, 0, 0.1), 'b');
    const actsT = upload(acts, 'acts');
    const chunks = [{ buffer: w.buffer, row0: 0, rows: D_SAE }];
    const run = async (version: SaeDecodeVersion) => {
      const recons = empty(ROWS * D_OUT, `recons ${version}`);
      const compact = { list: empty(ROWS * D_SAE, 'list').buffer, counts: empty(ROWS, 'counts').buffer };
      const steps = [
        saeCompact(kh.gpu, { acts: actsT.buffer, out: compact, rows: ROWS, dSae: D_SAE, label: 'compact' }, params),
        ...saeDecode(kh.gpu, { recons: recons.buffer, acts: actsT.buffer, chunks, bDec: b.buffer, compact, rows: ROWS, dSae: D_SAE, n: D_OUT, label: version }, params, version),
      ];
      submitSteps(kh.gpu, steps, version);
      return new Uint32Array((await recons.read()).buffer);
    };
    expect(Array.from(await run('v2'))).toEqual(Array.from(await run('v1')));
  });
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
