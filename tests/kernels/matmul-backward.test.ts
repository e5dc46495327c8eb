/**
 * matmul backward (dX, dW, bias gradient; v1 and v2) against `matmul-backward.cpu.ts`, and that
 * reference against central finite differences of the float64 forward.
 *
 * Shapes: odd everywhere for v1 (37 x 53 x 29); for v2 (vec4 operands) K and N multiples of 4
 * that are no multiple of the 8-row / 16-invocation tiles (M = 37, K = 44, N = 20 or 53 for the
 * transposed weight whose N may be odd), the row-table form (every other row, in reverse), the
 * windowed gradient of a vocabulary chunk (row stride and offset), accumulation, the norm's
 * affine input and the transposed store.
 *
 * Tolerance: each output is one fp32 sum of R products (R = the reduced length) of values
 * |a| <= amax, |b| <= bmax: within gamma_R R amax bmax of the exact sum (Higham 3.1); the
 * reference is float64. Accumulating adds one rounding of the previous value.
 */
import { describe, it, expect } from 'vitest';
import { biasGrad, inputGrad, matmulDw, matmulDx, transposeInput, type MatmulBackwardVersion } from '../../src/gpu/kernels/matmul-backward.ts';
import { matmul, matmulTileColumns } from '../../src/gpu/kernels/matmul.ts';
import { biasGradCpu, matmulDwCpu, matmulDxCpu, matmulForward64, transposeCpu } from '../../src/gpu/kernels/matmul-backward.cpu.ts';
import { submitSteps } from '../../src/gpu/recorder.ts';
import { maxAbs } from '../helpers/compare.ts';
import { expectNear, gamma, U } from './check.ts';
import { expectMatchesFiniteDiff, project } from './finite-diff.ts';
import { kernelHarness } from './harness.ts';
import { mulberry32, uniform } from './random.ts';

const kh = kernelHarness();
const { params, upload, empty } = kh;

const tol = (R: number, a: ArrayLike<number>, b: ArrayLike<number>, prev = 0) => ({ abs: gamma(R + 1) * (R * maxAbs(a) * maxAbs(b) + prev), rel: U });

describe('matmul backward CPU reference vs finite differences (float64)', () => {
  it.each([false, true])('dX, dW and db of y = x W + b (transW %s), 7 x 5 x 6', (transW) => {
    const rng = mulberry32(11);
    const [M, N, K] = [7, 5, 6];
    const x = Float64Array.from(uniform(rng, M * K));
    const w = Float64Array.from(uniform(rng, K * N));
    const b = Float64Array.from(uniform(rng, N));
    const g = Float64Array.from(uniform(rng, M * N));
    const dx = new Float64Array(M * K);
    const dw = new Float64Array(K * N);
    const db = new Float64Array(N);
    matmulDxCpu(dx, g, w, M, N, K, transW);
    matmulDwCpu(dw, x, g, M, N, K, transW);
    biasGradCpu(db, g, M, N);
    expectMatchesFiniteDiff('dX', dx, (xx) => project(g, matmulForward64(xx, w, b, M, N, K, transW)), x);
    expectMatchesFiniteDiff('dW', dw, (ww) => project(g, matmulForward64(x, ww, b, M, N, K, transW)), w);
    expectMatchesFiniteDiff('db', db, (bb) => project(g, matmulForward64(x, w, bb, M, N, K, transW)), b);
  });
});

describe.each(['v1', 'v2'] as MatmulBackwardVersion[])('matmul backward %s on the GPU', (version) => {
  const shapes: Array<[number, number, number]> =
    version === 'v1'
      ? [
          [37, 53, 29],
          [1, 1, 1],
          [17, 3, 5],
        ]
      : [
          [37, 20, 44],
          [9, 4, 4],
          [70, 52, 36],
        ];

  it.each(shapes)('dX = G W^T, M %i N %i K %i', async (M, N, K) => {
    const rng = mulberry32(M * 1000 + N);
    const g = uniform(rng, M * N);
    const w = uniform(rng, K * N);
    const dx = empty(M * K, 'dx');
    const d = matmulDx(kh.gpu, { M, N, K, g: upload(g, 'g').buffer, w: upload(w, 'w').buffer, dx: dx.buffer, label: 'dx' }, params, version);
    expect(d.pipeline.label).toBe(`matmul-backward:matmul_dx_${version}`); // v2 shapes really take the vec4 tiles
    submitSteps(kh.gpu, [d], 'dx');
    const ref = new Float64Array(M * K);
    matmulDxCpu(ref, g, w, M, N, K);
    expectNear(`${version} dX ${M}x${N}x${K}`, await dx.read(), ref, tol(N, g, w));
  });

  it.each(shapes)('dX = G W with W [N, K] (the unembedding), accumulated, M %i N %i K %i', async (M, N0, K) => {
    const N = N0 + 1; // the vocabulary need not be a multiple of 4
    const rng = mulberry32(M * 77 + N);
    const g = uniform(rng, M * N);
    const w = uniform(rng, N * K);
    const prev = uniform(rng, M * K);
    const dx = upload(prev, 'dx');
    submitSteps(kh.gpu, [matmulDx(kh.gpu, { M, N, K, g: upload(g, 'g').buffer, w: upload(w, 'w').buffer, dx: dx.buffer, transW: true, accumulate: true, label: 'dx' }, params, version)], 'dx');
    const ref = Float64Array.from(prev);
    matmulDxCpu(ref, g, w, M, N, K, true, true);
    expectNear(`${version} dX transW ${M}x${N}x${K}`, await dx.read(), ref, tol(N, g, w, 1));
  });

  it.each(shapes)('dW = X^T G and db, M %i N %i K %i', async (M, N, K) => {
    const rng = mulberry32(M * 31 + K);
    const x = uniform(rng, M * K);
    const g = uniform(rng, M * N);
    const dw = empty(K * N, 'dw');
    const db = empty(N, 'db');
    const gb = upload(g, 'g').buffer;
    submitSteps(
      kh.gpu,
      [matmulDw(kh.gpu, { M, N, K, g: gb, x: upload(x, 'x').buffer, dw: dw.buffer, label: 'dw' }, params, version), biasGrad(kh.gpu, { M, N, g: gb, db: db.buffer, label: 'db' }, params)],
      'dw',
    );
    const ref = new Float64Array(K * N);
    matmulDwCpu(ref, x, g, M, N, K);
    expectNear(`${version} dW ${M}x${N}x${K}`, await dw.read(), ref, tol(M, x, g));
    const refB = new Float64Array(N);
    biasGradCpu(refB, g, M, N);
    expectNear(`db ${M}x${N}`, await db.read(), refB, tol(M, g, [1]));
  });

  it('through a row table: only the listed rows of X, G and dX, in the table order', async () => {
    const [M, N, K] = version === 'v1' ? [7, 9, 11] : [7, 12, 8];
    const R = 2 * M + 1; // rows the buffers hold
    const rows = Array.from({ length: M }, (_, i) => R - 1 - 2 * i); // every other row, reversed
    const rng = mulberry32(5);
    const g = uniform(rng, R * N);
    const x = uniform(rng, R * K);
    const w = uniform(rng, K * N);
    const dx = empty(R * K, 'dx');
    const dw = empty(K * N, 'dw');
    const db = empty(N, 'db');
    const table = kh.gpu.device.createBuffer({ size: M * 4, usage: 0x80 | 0x08, label: 'rows' });
    kh.gpu.device.queue.writeBuffer(table, 0, new Uint32Array(rows));
    const gb = upload(g, 'g').buffer;
    const common = { M, N, K, g: gb, rows: table, bufferRows: R };
    submitSteps(
      kh.gpu,
      [
        matmulDx(kh.gpu, { ...common, w: upload(w, 'w').buffer, dx: dx.buffer, label: 'dx rows' }, params, version),
        matmulDw(kh.gpu, { ...common, x: upload(x, 'x').buffer, dw: dw.buffer, label: 'dw rows' }, params, version),
        biasGrad(kh.gpu, { M, N, g: gb, rows: table, bufferRows: R, db: db.buffer, label: 'db rows' }, params),
      ],
      'rows',
    );
    const pick = (a: Float32Array, w: number) => Float64Array.from(rows.flatMap((r) => [...a.subarray(r * w, (r + 1) * w)]));
    const gSel = pick(g, N);
    const xSel = pick(x, K);
    const refDx = new Float64Array(M * K);
    matmulDxCpu(refDx, gSel, w, M, N, K);
    const gotDx = await dx.read();
    expectNear(`${version} dX rows`, pick(gotDx, K), refDx, tol(N, g, w));
    // Rows not in the table are never written (still NaN).
    for (let r = 0; r < R; r++) if (!rows.includes(r)) expect(Number.isNaN(gotDx[r * K])).toBe(true);
    const refDw = new Float64Array(K * N);
    matmulDwCpu(refDw, xSel, gSel, M, N, K);
    expectNear(`${version} dW rows`, await dw.read(), refDw, tol(M, x, g));
    const refB = new Float64Array(N);
    biasGradCpu(refB, gSel, M, N);
    expectNear('db rows', await db.read(), refB, tol(M, g, [1]));
  });

  it('a vocabulary chunk of unpadded logits (row stride 29, chunk at column 7): G read as scalars', async () => {
    const [M, K, V, c0] = [13, 12, 29, 7];
    const N = V - c0;
    const rng = mulberry32(19);
    const g = uniform(rng, M * V);
    const n = uniform(rng, M * K);
    const w = uniform(rng, N * K);
    const gB = upload(g, 'dlogits').buffer;
    const dw = empty(N * K, 'dW chunk');
    const dx = empty(M * K, 'dx');
    const common = { M, N, K, g: gB, gStart: c0, ldg: V };
    const dws = matmulDw(kh.gpu, { ...common, x: upload(n, 'x').buffer, dw: dw.buffer, transOut: true, label: 'dW scalar G' }, params, version);
    const dxs = matmulDx(kh.gpu, { ...common, w: upload(w, 'w').buffer, transW: true, dx: dx.buffer, label: 'dX scalar G' }, params, version);
    expect(dws.pipeline.label).toBe(`matmul-backward:matmul_dw_${version}`);
    submitSteps(kh.gpu, [dws, dxs], 'scalar G');
    const gc = Float64Array.from({ length: M * N }, (_, i) => g[Math.floor(i / N) * V + c0 + (i % N)]);
    const refW = new Float64Array(N * K);
    matmulDwCpu(refW, n, gc, M, N, K, true);
    expectNear(`${version} dW scalar G`, await dw.read(), refW, tol(M, n, gc));
    const refX = new Float64Array(M * K);
    matmulDxCpu(refX, gc, w, M, N, K, true);
    expectNear(`${version} dX scalar G`, await dx.read(), refX, tol(N, gc, w));
  });

  it('a vocabulary chunk: G a column block of wider padded rows, dW stored [N, K] from the norm affine, accumulated', async () => {
    // Logits gradient [M, V] padded to a multiple of 4 columns; the chunk is columns [c0, c0 + N).
    const [M, K] = [13, 12];
    const V = 29;
    const Vp = 32;
    const c0 = 8;
    const N = V - c0; // the last chunk: 21 tokens
    const rng = mulberry32(9);
    const g = uniform(rng, M * Vp);
    for (let m = 0; m < M; m++) g.fill(0, m * Vp + V, (m + 1) * Vp);
    const n = uniform(rng, M * K); // hook_normalized
    const gain = uniform(rng, K, 0.5, 1.5);
    const shift = uniform(rng, K);
    const prev = uniform(rng, N * K);
    const dw = upload(prev, 'dW_E chunk');
    submitSteps(
      kh.gpu,
      [
        matmulDw(
          kh.gpu,
          {
            M,
            N,
            K,
            g: upload(g, 'dlogits').buffer,
            gStart: c0,
            ldg: Vp,
            x: upload(n, 'normalized').buffer,
            affine: { gain: upload(gain, 'gain').buffer, bias: upload(shift, 'bias').buffer },
            dw: dw.buffer,
            transOut: true,
            accumulate: true,
            label: 'dW_E chunk',
          },
          params,
          version,
        ),
      ],
      'chunk',
    );
    const y = Float64Array.from(n, (v, i) => v * gain[i % K] + shift[i % K]);
    const gc = Float64Array.from({ length: M * N }, (_, i) => g[Math.floor(i / N) * Vp + c0 + (i % N)]);
    const ref = Float64Array.from(prev);
    matmulDwCpu(ref, y, gc, M, N, K, true, true);
    expectNear(`${version} dW_E chunk`, await dw.read(), ref, tol(M, y, gc, 1));
  });
});

describe('the layer gradients through the forward matmul', () => {
  it("dX = G W^T as the forward matmul with W transposed; dW = (X' transposed) G, with the norm affine through a row table", async () => {
    const [M, N, K] = [37, 52, 44];
    const R = M + 3;
    const rows = Array.from({ length: M }, (_, i) => R - 1 - i);
    const rng = mulberry32(31);
    const g = uniform(rng, M * N);
    const w = uniform(rng, K * N);
    const x = uniform(rng, R * K);
    const gain = uniform(rng, K, 0.5, 1.5);
    const shift = uniform(rng, K);
    const dx = empty(M * K, 'dx');
    const xt = empty(K * M, 'xt');
    const dw = empty(K * N, 'dw');
    const table = kh.gpu.device.createBuffer({ size: M * 4, usage: 0x80 | 0x08, label: 'rows' });
    kh.gpu.device.queue.writeBuffer(table, 0, new Uint32Array(rows));
    const gB = upload(g, 'g').buffer;
    submitSteps(
      kh.gpu,
      [
        matmul(kh.gpu, { out: dx.buffer, a: gB, b: upload(w, 'w').buffer, M, N: K, K: N, transB: true, label: 'dx' }, params),
        transposeInput(
          kh.gpu,
          { x: upload(x, 'x').buffer, M, K, rows: table, bufferRows: R, affine: { gain: upload(gain, 'gain').buffer, bias: upload(shift, 'shift').buffer }, out: xt.buffer, label: 'xt' },
          params,
        ),
        matmul(kh.gpu, { out: dw.buffer, a: xt.buffer, b: gB, M: K, N, K: M, label: 'dw' }, params),
      ],
      'layer gradients',
    );
    const refDx = new Float64Array(M * K);
    matmulDxCpu(refDx, g, w, M, N, K);
    expectNear('dX (forward matmul, transB)', await dx.read(), refDx, tol(N, g, w));
    const xSel = Float64Array.from(rows.flatMap((r) => [...x.subarray(r * K, (r + 1) * K)]));
    const refXt = new Float64Array(K * M);
    transposeCpu(refXt, xSel, M, K, gain, shift);
    expectNear('XT', await xt.read(), refXt, { abs: 0, rel: 2 * U });
    const y = Float64Array.from(xSel, (v, i) => v * gain[i % K] + shift[i % K]);
    const refDw = new Float64Array(K * N);
    matmulDwCpu(refDw, y, g, M, N, K);
    expectNear('dW (forward matmul on XT)', await dw.read(), refDw, tol(M, y, g));
    table.destroy();
  });

  // inputGrad picks dY transposed + W as the left operand (stored transposed) where M fills at
  // least half of the narrow column tiles and is a multiple of 4, else W read transposed. Both
  // against the reference (checked against finite differences above), overwriting and
  // accumulating, on shapes with N and K odd; M 68 takes the row-major path wherever the narrow
  // tile is at most 136 columns (128 on lavapipe's 8-wide subgroups), 37 and 66 do not.
  it.each([
    [68, 53, 45],
    [37, 53, 45],
    [66, 20, 29],
  ] as Array<[number, number, number]>)('dX (+)= G W^T by inputGrad, M %i N %i K %i: both forms, the same bits', async (M, N, K) => {
    const rng = mulberry32(M + 3 * N + 7 * K);
    const g = uniform(rng, M * N);
    const w = uniform(rng, K * N);
    const prev = uniform(rng, M * K);
    const gB = upload(g, 'g').buffer;
    const wB = upload(w, 'w').buffer;
    const scratch = empty(N * M, 'dY^T');
    const cols = matmulTileColumns(kh.gpu, true);
    const rowMajor = M % 4 === 0 && 2 * M >= Math.ceil(M / cols) * cols;
    const outs = [];
    for (const [form, s] of [
      ['chosen', scratch.buffer],
      ['transB', null],
    ] as const) {
      for (const accumulate of [false, true]) {
        const dx = accumulate ? upload(prev, 'dx') : empty(M * K, 'dx');
        const steps = inputGrad(kh.gpu, { dy: gB, w: wB, dx: dx.buffer, M, N, K, accumulate, scratch: s, label: `dx ${form}` }, params);
        expect(steps.length).toBe(form === 'chosen' && rowMajor ? 2 : 1);
        submitSteps(kh.gpu, steps, `dx ${form}`);
        const ref = accumulate ? Float64Array.from(prev) : new Float64Array(M * K);
        matmulDxCpu(ref, g, w, M, N, K, false, accumulate);
        const got = await dx.read();
        expectNear(`inputGrad ${form}${accumulate ? ' accumulated' : ''} ${M}x${N}x${K}`, got, ref, tol(N, g, w, accumulate ? 1 : 0));
        outs.push(got);
      }
    }
    expect(outs[0]).toEqual(outs[2]);
    expect(outs[1]).toEqual(outs[3]);
  });
});
