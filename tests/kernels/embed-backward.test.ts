/**
 * The embedding gather's backward, a deterministic scatter-add (ids sorted on the host, one
 * invocation per distinct id and column summing its rows in row order), and the residual add's
 * backward (gradient fan-in, `accumulate`):
 * - CPU reference vs finite differences of the float64 gather;
 * - GPU vs reference with many repeated ids (37 rows over 9 ids), a table split into 3 row chunks
 *   (ids on every chunk boundary), accumulation onto another share (a tied embedding), a second
 *   run giving the same bits, and rows whose id never occurs left untouched.
 * Tolerance: each output sums up to 37 values: gamma_37 37 max|dsrc| (+ the previous value).
 */
import { describe, it, expect } from 'vitest';
import { scatterAdd, writeScatterIndex, scatterTable, type ScatterIndex } from '../../src/gpu/kernels/embed-backward.ts';
import { gather64, scatterAddCpu } from '../../src/gpu/kernels/embed-backward.cpu.ts';
import { accumulate, fill } from '../../src/gpu/kernels/grad-accumulate.ts';
import { accumulateCpu } from '../../src/gpu/kernels/grad-accumulate.cpu.ts';
import { submitSteps } from '../../src/gpu/recorder.ts';
import { readBuffer } from '../../src/gpu/tensor.ts';
import { maxAbs } from '../helpers/compare.ts';
import { expectNear, gamma, U } from './check.ts';
import { expectMatchesFiniteDiff, project } from './finite-diff.ts';
import { kernelHarness } from './harness.ts';
import { ints, mulberry32, uniform } from './random.ts';

describe('scatter-add CPU reference vs finite differences', () => {
  it('dtable of out = table[ids] with repeated ids', () => {
    const [V, C] = [6, 3];
    const ids = [4, 1, 4, 0, 4, 1];
    const rng = mulberry32(1);
    const table = Float64Array.from(uniform(rng, V * C));
    const g = Float64Array.from(uniform(rng, ids.length * C));
    const dt = new Float64Array(V * C);
    scatterAddCpu(dt, g, ids, C);
    expectMatchesFiniteDiff('dtable', dt, (t) => project(g, gather64(t, ids, C)), table);
  });

  it('the index groups rows by id in row order', () => {
    const t = scatterTable([5, 2, 5, 2, 9]);
    expect([...t.offsets]).toEqual([3, 0, 2, 4, 5, 0, 0]);
    expect([...t.uniq.subarray(0, 3)]).toEqual([2, 5, 9]);
    expect([...t.order]).toEqual([1, 3, 0, 2, 4]);
  });
});

const kh = kernelHarness();
const { params, upload, empty } = kh;

describe('scatter-add on the GPU', () => {
  it('37 rows over 9 ids into a 3-chunk table, overwrite then accumulate, twice the same bits', async () => {
    const [V, C, n] = [30, 7, 37];
    const rng = mulberry32(4);
    const ids = Array.from(ints(rng, n, 9), (i) => [0, 9, 10, 19, 20, 29, 5, 15, 25][i]); // chunk edges
    const g = uniform(rng, n * C);
    const mk = (k: number) => kh.gpu.device.createBuffer({ size: k * 4, usage: 0x80 | 0x08, label: 'scatter index' });
    const index: ScatterIndex = { uniq: mk(n), offsets: mk(n + 2), order: mk(n), n };
    writeScatterIndex(kh.gpu, index, ids);
    const prev = uniform(rng, V * C);
    const chunks = [0, 10, 20].map((row0) => ({ buffer: upload(prev.slice(row0 * C, (row0 + 10) * C), `chunk ${row0}`).buffer, row0, rows: 10 }));
    const gB = upload(g, 'dsrc').buffer;
    // Accumulate onto the previous share.
    submitSteps(kh.gpu, scatterAdd(kh.gpu, { dtable: chunks, dsrc: gB, index, C, accumulate: true, label: 'scatter acc' }, params), 'scatter');
    const read = async () => {
      const parts = await Promise.all(chunks.map((c) => readBuffer(kh.gpu, c.buffer, 0, 10 * C * 4)));
      const out = new Float32Array(V * C);
      parts.forEach((p, i) => out.set(p, i * 10 * C));
      return out;
    };
    const ref = Float64Array.from(prev);
    scatterAddCpu(ref, g, ids, C, true);
    const first = await read();
    expectNear('scatter accumulate', first, ref, { abs: gamma(n + 1) * (n * maxAbs(g) + maxAbs(prev)), rel: U });
    // Overwrite mode writes only the ids present; the rest keep their values.
    submitSteps(kh.gpu, scatterAdd(kh.gpu, { dtable: chunks, dsrc: gB, index, C, label: 'scatter' }, params), 'scatter');
    const over = await read();
    const refOver = new Float64Array(V * C);
    scatterAddCpu(refOver, g, ids, C);
    for (let v = 0; v < V; v++) if (!ids.includes(v)) refOver.set(first.subarray(v * C, (v + 1) * C), v * C);
    expectNear('scatter overwrite', over, refOver, { abs: gamma(n) * n * maxAbs(g), rel: U });
    submitSteps(kh.gpu, scatterAdd(kh.gpu, { dtable: chunks, dsrc: gB, index, C, label: 'scatter again' }, params), 'scatter');
    expect(Buffer.from((await read()).buffer).equals(Buffer.from(over.buffer))).toBe(true);
    for (const b of [index.uniq, index.offsets, index.order]) b.destroy();
  });
});

describe('residual backward: gradient fan-in', () => {
  it('y += x and y = 0 over 1001 values', async () => {
    const rng = mulberry32(8);
    const x = uniform(rng, 1001);
    const y0 = uniform(rng, 1001);
    const y = upload(y0, 'y');
    const z = empty(1001, 'z');
    submitSteps(kh.gpu, [accumulate(kh.gpu, { y: y.buffer, x: upload(x, 'x').buffer, n: 1001, label: 'acc' }, params), fill(kh.gpu, { y: z.buffer, n: 1001, label: 'fill' }, params)], 'acc');
    const ref = Float64Array.from(y0);
    accumulateCpu(ref, x, 1001);
    expectNear('y += x', await y.read(), ref, { abs: 0, rel: U });
    expect([...(await z.read())].every((v) => v === 0)).toBe(true);
  });

  it('CPU: the gradient of resid_post = resid_pre + branch(resid_pre) is the sum of both paths', () => {
    // y = x + x^2 elementwise: dy/dx = 1 + 2x = the skip path plus the branch path.
    const rng = mulberry32(9);
    const x = Float64Array.from(uniform(rng, 12));
    const g = Float64Array.from(uniform(rng, 12));
    const dx = Float64Array.from(g); // the skip path
    accumulateCpu(
      dx,
      g.map((v, i) => v * 2 * x[i]),
      12,
    ); // + the branch's backward
    expectMatchesFiniteDiff(
      'resid',
      dx,
      (xx) =>
        project(
          g,
          xx.map((v) => v + v * v),
        ),
      x,
    );
  });
});
