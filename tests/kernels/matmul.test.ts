/**
 * matmul (every version) against `matmulCpu`: odd shapes that are no multiple of any tile, the
 * M = 1 / N = 1 / K = 1 edges, with and without bias, B as [K, N] and transposed [N, K], and the
 * windowed form the chunked unembedding uses (aStart, outStart, ldc, colStart); on the pinned
 * versions, the input gradient's stores (C transposed, added into C) and v6's one-subgroup workgroups.
 *
 * Tolerance: a K-term fp32 dot product is within gamma_K * sum_k |a_k b_k| of the exact sum,
 * gamma_K = K u / (1 - K u), u = 2^-24 (Higham, "Accuracy and Stability", 3.1); FMA only
 * tightens it. With |a| <= amax, |b| <= bmax the sum of magnitudes is at most K amax bmax, and
 * the bias add is one more rounding. So abs = gamma_(K+1) (K amax bmax + max|bias|), and
 * rel = u for the reference's own rounding to fp32. For K = 29 and data in [-1, 1) that is
 * ~5e-5: K-scaled, as a sum of K terms must be.
 */
import { describe, it, expect } from 'vitest';
import { matmul, matmulEntry, type MatmulVersion } from '../../src/gpu/kernels/matmul.ts';
import { matmulCpu } from '../../src/gpu/kernels/matmul.cpu.ts';
import { submitSteps, type Dispatch } from '../../src/gpu/recorder.ts';
import { maxAbs } from '../helpers/compare.ts';
import { expectNear, gamma, U, type Tol } from './check.ts';
import { kernelHarness } from './harness.ts';
import { mulberry32, uniform } from './random.ts';

const VERSIONS: MatmulVersion[] = ['v1', 'v2', 'v3', 'v4', 'v5', 'v6'];

function matmulTol(K: number, a: Float32Array, b: Float32Array, bias: Float32Array | null): Tol {
  return { abs: gamma(K + 1) * (K * maxAbs(a) * maxAbs(b) + (bias ? maxAbs(bias) : 0)), rel: U };
}

const kh = kernelHarness();
const { params, upload, empty } = kh;

interface Case {
  M: number;
  N: number;
  K: number;
  transB: boolean;
  bias: boolean;
  /** C stored transposed, [N, M]. */
  transC?: boolean;
  /** The product added into C's previous values. */
  accumulate?: boolean;
  /** v6: one subgroup per workgroup. */
  narrow?: boolean;
}

/** Prepares one case on fresh data; `check` compares after the shared submit. */
function prepare(version: MatmulVersion, c: Case, seed: number): { dispatch: Dispatch; check: () => Promise<void> } {
  const rng = mulberry32(seed);
  const { M, N, K } = c;
  const a = uniform(rng, M * K);
  const b = uniform(rng, K * N); // [K, N], or [N, K] when transB: same count
  const bias = c.bias ? uniform(rng, N) : null;
  const prev = c.accumulate ? uniform(rng, M * N) : null; // [M, N], or [N, M] when transC
  const out = prev ? upload(prev, 'out') : empty(M * N, 'out');
  const name = `${version} ${M}x${N}x${K}${c.transB ? ' transB' : ''}${c.bias ? ' bias' : ''}${c.transC ? ' transC' : ''}${c.accumulate ? ' accumulate' : ''}${c.narrow ? ' narrow' : ''}`;
  const dispatch = matmul(
    kh.gpu,
    {
      out: out.buffer,
      a: upload(a, 'a').buffer,
      b: upload(b, 'b').buffer,
      bias: bias ? upload(bias, 'bias').buffer : null,
      M,
      N,
      K,
      transB: c.transB,
      transC: c.transC,
      accumulate: c.accumulate,
      narrow: c.narrow,
      label: name,
    },
    params,
    version,
  );
  const check = async () => {
    const ref = new Float32Array(M * N);
    matmulCpu(ref, a, b, bias, M, N, K, c.transB);
    // Where C is stored transposed, element (m, n) sits at [n, m]; accumulation adds one rounding.
    const want = Float64Array.from({ length: M * N }, (_, i) => {
      const [m, n] = c.transC ? [i % M, Math.floor(i / M)] : [Math.floor(i / N), i % N];
      return ref[m * N + n] + (prev ? prev[i] : 0);
    });
    const tol = matmulTol(K, a, b, bias);
    expectNear(name, await out.read(), want, prev ? { abs: tol.abs + gamma(K + 2) * maxAbs(prev), rel: tol.rel } : tol);
  };
  return { dispatch, check };
}

const SHAPES: Array<[number, number, number]> = [
  [37, 53, 29], // no multiple of 4, 16 or 32 anywhere
  [1, 53, 29], // one row (a single token's logits)
  [37, 1, 29], // one column
  [37, 53, 1], // one term in each sum
  [1, 1, 1],
  [33, 65, 17], // one past a v2 tile (32) and a v1 tile (16 x 4) in M and N
  [37, 68, 29], // N a multiple of 4 but not of v3's 8 columns or 64-column tile: the vec4 path
  [5, 4, 3], // a single vec4 of columns
  [19, 260, 13], // one row past v5's 16-row tile, one vec4 past its 256-column tile: vec4 path
  [17, 257, 9], // the same past both tiles with N not a multiple of 4: scalar B path
];

describe.each(VERSIONS)('matmul %s', (version) => {
  it.each(SHAPES)('M=%i N=%i K=%i: plain, bias, transB, transB + bias', async (M, N, K) => {
    const cases = [false, true].flatMap((transB) => [false, true].map((bias) => ({ M, N, K, transB, bias })));
    const prepared = cases.map((c, i) => prepare(version, c, 1000 * M + 100 * N + 10 * K + i));
    submitSteps(
      kh.gpu,
      prepared.map((p) => p.dispatch),
      `matmul ${version}`,
    );
    for (const p of prepared) await p.check();
  });

  it('chunked unembedding: transB column blocks written in place into a wider, offset output', async () => {
    // logits[m, v] = x[m] . W_E[v] with W_E [V, K] split by rows into chunks, each chunk a
    // dispatch writing columns [row0, row0 + rows) of a [M, ldc] output that starts at outStart.
    // x starts at aStart inside a larger buffer. Offsets are past one 256-byte alignment step
    // and not aligned, so both the binding offset and the in-shader remainder are exercised.
    const rng = mulberry32(42);
    const M = 7,
      K = 29,
      V = 45,
      ldc = V + 3,
      aStart = 101,
      outStart = 77;
    const chunkRows = [20, 20, 5];
    const SENTINEL = -7777;
    const xAll = uniform(rng, aStart + M * K + 11);
    const x = xAll.subarray(aStart, aStart + M * K);
    const wE = uniform(rng, V * K);
    const outLen = outStart + M * ldc + 9;
    const out = upload(new Float32Array(outLen).fill(SENTINEL), 'logits');
    const xBuf = upload(xAll, 'x');
    const steps: Dispatch[] = [];
    let row0 = 0;
    for (const rows of chunkRows) {
      const chunk = upload(wE.slice(row0 * K, (row0 + rows) * K), `W_E[${row0}..]`);
      steps.push(matmul(kh.gpu, { out: out.buffer, outStart, ldc, colStart: row0, a: xBuf.buffer, aStart, b: chunk.buffer, M, N: rows, K, transB: true, label: `unembed ${row0}` }, params, version));
      row0 += rows;
    }
    submitSteps(kh.gpu, steps, 'unembed');
    const got = await out.read();
    const ref = new Float32Array(M * V);
    matmulCpu(ref, x, wE, null, M, V, K, true);
    const gotBlock = new Float32Array(M * V);
    let touched = 0;
    for (let i = 0; i < outLen; i++) {
      const r = i - outStart;
      const m = Math.floor(r / ldc);
      const col = r - m * ldc;
      if (r >= 0 && m < M && col < V) gotBlock[m * V + col] = got[i];
      else if (got[i] !== SENTINEL) touched++;
    }
    expect(touched, 'elements outside the logits block that were overwritten').toBe(0);
    expectNear(`${version} unembed`, gotBlock, ref, matmulTol(K, x, wE, null));
  });

  it('one column block with bias (non-transposed) leaves the rest of each row untouched', async () => {
    const rng = mulberry32(7);
    const M = 5,
      N = 11,
      K = 13,
      ldc = 30,
      colStart = 9,
      outStart = 3;
    const SENTINEL = 12345;
    const a = uniform(rng, M * K);
    const b = uniform(rng, K * N);
    const bias = uniform(rng, N, -10, 10);
    const out = upload(new Float32Array(outStart + M * ldc).fill(SENTINEL), 'out');
    submitSteps(
      kh.gpu,
      [matmul(kh.gpu, { out: out.buffer, outStart, ldc, colStart, a: upload(a, 'a').buffer, b: upload(b, 'b').buffer, bias: upload(bias, 'bias').buffer, M, N, K, label: 'block' }, params, version)],
      'block',
    );
    const got = await out.read();
    const ref = new Float32Array(M * N);
    matmulCpu(ref, a, b, bias, M, N, K);
    const block = new Float32Array(M * N);
    const rest: number[] = [];
    for (let i = 0; i < got.length; i++) {
      const r = i - outStart;
      const m = Math.floor(r / ldc);
      const col = r - m * ldc - colStart;
      if (r >= 0 && col >= 0 && col < N) block[m * N + col] = got[i];
      else rest.push(got[i]);
    }
    expect(rest.length).toBe(outStart + M * (ldc - N));
    expect(rest.every((v) => v === SENTINEL)).toBe(true);
    expectNear(`${version} block`, block, ref, matmulTol(K, a, b, bias));
  });

  it('row table: only the listed rows of A are read and of C written, in any order, others untouched', async () => {
    // A sweep's ragged pass: a [R, K] buffer of which rows `rows` are live. Odd sizes; rows out
    // of order and with gaps; bias and the vec4 path (N % 4 == 0) both covered.
    const rng = mulberry32(77);
    const R = 23,
      K = 29;
    const rows = [20, 0, 1, 5, 6, 7, 13, 22, 3];
    const SENTINEL = -4242;
    for (const [N, withBias] of [
      [53, true],
      [68, false],
    ] as Array<[number, boolean]>) {
      const a = uniform(rng, R * K);
      const b = uniform(rng, K * N);
      const bias = withBias ? uniform(rng, N) : null;
      const out = upload(new Float32Array(R * N).fill(SENTINEL), 'out');
      const table = kh.gpu.device.createBuffer({ size: rows.length * 4, usage: 0x80 | 0x08 }); // STORAGE | COPY_DST
      kh.gpu.device.queue.writeBuffer(table, 0, new Uint32Array(rows));
      const M = rows.length;
      submitSteps(
        kh.gpu,
        [
          matmul(
            kh.gpu,
            { out: out.buffer, a: upload(a, 'a').buffer, b: upload(b, 'b').buffer, bias: bias ? upload(bias, 'bias').buffer : null, M, N, K, rows: table, bufferRows: R, label: 'rows' },
            params,
            version,
          ),
        ],
        'rows',
      );
      const got = await out.read();
      const aLive = new Float32Array(M * K);
      rows.forEach((r, i) => aLive.set(a.subarray(r * K, (r + 1) * K), i * K));
      const ref = new Float32Array(M * N);
      matmulCpu(ref, aLive, b, bias, M, N, K);
      const gotLive = new Float32Array(M * N);
      rows.forEach((r, i) => gotLive.set(got.subarray(r * N, (r + 1) * N), i * N));
      expectNear(`${version} rows N=${N}`, gotLive, ref, matmulTol(K, aLive, b, bias));
      for (let r = 0; r < R; r++) {
        if (rows.includes(r)) continue;
        expect(
          got.subarray(r * N, (r + 1) * N).every((v) => v === SENTINEL),
          `row ${r} is not in the table but was written`,
        ).toBe(true);
      }
      table.destroy();
    }
  });
});

// The input gradient's forms (src/gpu/kernels/matmul-backward.ts, inputGrad) on the versions the
// engine pins (v6 where subgroups allow, else v5); the store is one function shared by every version.
describe.each(['v5', 'v6'] as MatmulVersion[])('matmul %s, transposed and accumulated stores', (version) => {
  it.each([
    [37, 53, 29],
    [68, 45, 53],
  ] as Array<[number, number, number]>)('M=%i N=%i K=%i: C stored transposed; accumulated with B transposed; both', async (M, N, K) => {
    const cases = [
      { transB: false, transC: true, accumulate: false },
      { transB: true, transC: false, accumulate: true },
      { transB: false, transC: true, accumulate: true },
    ].map((o) => ({ M, N, K, bias: false, ...o }));
    const prepared = cases.map((c, i) => prepare(version, c, 31 * M + 7 * N + K + i));
    submitSteps(
      kh.gpu,
      prepared.map((p) => p.dispatch),
      `matmul ${version} transC`,
    );
    for (const p of prepared) await p.check();
  });
});

describe('matmul v6 (A loads shared across a subgroup)', () => {
  it('runs itself where the device has a fixed subgroup size, a power of two up to 64 (8 here, 32 on NVIDIA and Apple), else v5', () => {
    const own = kh.gpu.subgroupSize;
    const fits = own !== null && kh.gpu.features.has('subgroups') && [1, 2, 4, 8, 16, 32, 64].includes(own);
    expect(matmulEntry(kh.gpu, 'v6')).toBe(fits ? 'v6' : 'v5');
    expect(matmulEntry(kh.gpu, 'v4')).toBe('v4');
    // The choice by device (the size is what acquireGpu reads from the adapter; run nothing here).
    try {
      for (const [size, entry] of [
        [32, 'v6'],
        [64, 'v6'],
        [16, 'v6'],
        [4, 'v6'],
        [12, 'v5'],
        [128, 'v5'],
        [null, 'v5'],
      ] as const) {
        kh.gpu.subgroupSize = size;
        expect(matmulEntry(kh.gpu, 'v6'), `subgroup size ${size}`).toBe(entry);
      }
    } finally {
      kh.gpu.subgroupSize = own;
    }
  });

  it('is bit-identical to v5 (same products in the same order)', async () => {
    const rng = mulberry32(5);
    const M = 19,
      N = 260,
      K = 37;
    const a = upload(uniform(rng, M * K), 'a');
    const b = upload(uniform(rng, K * N), 'b');
    const outs = (['v5', 'v6'] as const).map((v) => {
      const out = empty(M * N, v);
      submitSteps(kh.gpu, [matmul(kh.gpu, { out: out.buffer, a: a.buffer, b: b.buffer, M, N, K, label: v }, params, v)], v);
      return out;
    });
    expect(await outs[1].read()).toEqual(await outs[0].read());
  });

  it('narrow (one subgroup per workgroup): odd shapes past its column tile; plain, transB accumulated, transposed accumulated', async () => {
    for (const [M, N, K] of [
      [37, 53, 29],
      [19, 260, 13],
      [9, 131, 68],
    ] as Array<[number, number, number]>) {
      const cases = [
        { transB: false, transC: false, accumulate: false },
        { transB: true, transC: false, accumulate: true },
        { transB: false, transC: true, accumulate: true },
      ].map((o) => ({ M, N, K, bias: false, narrow: true, ...o }));
      const prepared = cases.map((c, i) => prepare('v6', c, 3 * M + N + K + i));
      submitSteps(
        kh.gpu,
        prepared.map((p) => p.dispatch),
        'matmul v6 narrow',
      );
      for (const p of prepared) await p.check();
    }
  });

  it("smaller subgroup sizes than the device's, and none at all (v5): odd shapes, plain, bias, transB", async () => {
    // A size below the device's is still correct (lanes past it reload rows the first lanes
    // hold), so the generator's other forms (16 / S loads per k step) run here too.
    const own = kh.gpu.subgroupSize;
    const sizes = own !== null ? [4, 1, null].filter((s) => s === null || s < own) : [null];
    try {
      for (const size of sizes) {
        kh.gpu.subgroupSize = size;
        expect(matmulEntry(kh.gpu, 'v6')).toBe(size === null ? 'v5' : 'v6');
        for (const [M, N, K] of [
          [37, 53, 29],
          [19, 260, 13],
          [17, 257, 9],
        ] as Array<[number, number, number]>) {
          const cases = [false, true].flatMap((transB) => [false, true].map((bias) => ({ M, N, K, transB, bias })));
          const prepared = cases.map((c, i) => prepare('v6', c, 7 * M + N + K + i));
          submitSteps(
            kh.gpu,
            prepared.map((p) => p.dispatch),
            `matmul v6 sg ${size}`,
          );
          for (const p of prepared) await p.check();
        }
      }
    } finally {
      kh.gpu.subgroupSize = own;
    }
  });
});
