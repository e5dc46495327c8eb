/**
 * head_result and sum_heads (the hook_result path of attention's output projection) against
 * `headResultCpu` / `sumHeadsCpu`, and the identity the model relies on when a run asks for
 * hook_result: sum_h result[.., h, :] + b_O = z_flat @ W_O + b_O, the attn_out the plain
 * matmul path computes (`matmulCpu` reference, and the model's GPU `matmul` too).
 *
 * Shapes: BT = 3 * 7, H = 3, dh = 5, C = 37 — all distinct and odd, C no multiple of the
 * 64-wide workgroup, BT * H * C many workgroups with the last one partly idle — and BT = 1,
 * H = 1 (one row, one head, a single partly idle workgroup). Data is distinct per row and head.
 *
 * Tolerance (u = 2^-24, gamma_n = n u / (1 - n u), Higham 3.1):
 *   head_result: a dh-term dot product: abs = gamma_dh * dh * max|z| max|W_O|, rel = u (the
 *           reference's own rounding to fp32).
 *   sum_heads alone (on the reference result): H + 1 terms: abs = gamma_(H+1) (H max|result| +
 *           max|b_O|), rel = u.
 *   sum_heads chained (on the GPU result): plus the H results' own errors, H * head_result abs.
 *   identity: the same H dh products and the bias summed in a tree of depth dh + H + 1 (dh
 *           within a head, then H heads and b_O), whatever the order: abs = gamma_(dh+H+1)
 *           (H dh max|z| max|W_O| + max|b_O|), rel = u for matmulCpu's rounding to fp32. The CPU
 *           references themselves (each head's result rounded to fp32, then summed) obey it too.
 */
import { describe, it, expect } from 'vitest';
import { headResult, sumHeads } from '../../src/gpu/kernels/head-result.ts';
import { headResultCpu, sumHeadsCpu } from '../../src/gpu/kernels/head-result.cpu.ts';
import { matmul } from '../../src/gpu/kernels/matmul.ts';
import { matmulCpu } from '../../src/gpu/kernels/matmul.cpu.ts';
import { submitSteps } from '../../src/gpu/recorder.ts';
import { maxAbs } from '../helpers/compare.ts';
import { expectNear, firstNaN, gamma, U } from './check.ts';
import { kernelHarness } from './harness.ts';
import { mulberry32, normal, uniform } from './random.ts';

const kh = kernelHarness();
const { params, upload, empty } = kh;

interface Dims {
  BT: number;
  H: number;
  dh: number;
  C: number;
}

/** z ~ N(0, 1) with head h of row bt offset by (bt + h) / 4 (so a read from the wrong row or head shows), W_O, b_O in [-1, 1). */
async function check(name: string, { BT, H, dh, C }: Dims, seed: number): Promise<void> {
  const rng = mulberry32(seed);
  const z = normal(rng, BT * H * dh);
  for (let i = 0; i < z.length; i++) z[i] += Math.floor(i / dh / H) / 4 + (Math.floor(i / dh) % H) / 4;
  const W_O = uniform(rng, H * dh * C);
  const b_O = uniform(rng, C);

  const refResult = new Float32Array(BT * H * C);
  headResultCpu(refResult, z, W_O, BT, H, dh, C);
  const refOut = new Float32Array(BT * C);
  sumHeadsCpu(refOut, refResult, b_O, BT, H, C);
  const refMatmul = new Float32Array(BT * C);
  matmulCpu(refMatmul, z, W_O, b_O, BT, C, H * dh); // z [BT, H, dh] is z_flat [BT, H * dh]

  const nan = (n: number) => empty(n, 'out');
  const [zT, wT, bT, refResultT] = [upload(z, 'z'), upload(W_O, 'W_O'), upload(b_O, 'b_O'), upload(refResult, 'ref result')];
  const [resultT, outT, outAloneT, mmT] = [nan(BT * H * C), nan(BT * C), nan(BT * C), nan(BT * C)];
  submitSteps(
    kh.gpu,
    [
      headResult(kh.gpu, { result: resultT.buffer, z: zT.buffer, W_O: wT.buffer, BT, H, dh, C, label: `${name} result` }, params),
      sumHeads(kh.gpu, { out: outT.buffer, result: resultT.buffer, b_O: bT.buffer, BT, H, C, label: `${name} sum` }, params),
      sumHeads(kh.gpu, { out: outAloneT.buffer, result: refResultT.buffer, b_O: bT.buffer, BT, H, C, label: `${name} sum alone` }, params),
      matmul(kh.gpu, { out: mmT.buffer, a: zT.buffer, b: wT.buffer, bias: bT.buffer, M: BT, N: C, K: H * dh, label: `${name} attn out` }, params),
    ],
    name,
  );
  const [result, out, outAlone, mm] = [await resultT.read(), await outT.read(), await outAloneT.read(), await mmT.read()];
  for (const [what, a] of [
    ['result', result],
    ['sum', out],
    ['sum alone', outAlone],
    ['matmul', mm],
  ] as const) {
    expect(firstNaN(a), `${name}: NaN in ${what}`).toBe(-1);
  }

  const zw = maxAbs(z) * maxAbs(W_O);
  const resultAbs = gamma(dh) * dh * zw;
  expectNear(`${name} head_result`, result, refResult, { abs: resultAbs, rel: U });
  const sumAbs = gamma(H + 1) * (H * maxAbs(refResult) + maxAbs(b_O));
  expectNear(`${name} sum_heads alone`, outAlone, refOut, { abs: sumAbs, rel: U });
  expectNear(`${name} sum_heads chained`, out, refOut, { abs: H * resultAbs + sumAbs, rel: U });

  // The identity: the per-head path's attn_out is the plain path's, on the CPU and on the GPU.
  const identity = { abs: gamma(dh + H + 1) * (H * dh * zw + maxAbs(b_O)), rel: U };
  expectNear(`${name} CPU: sum_h result + b_O vs z_flat @ W_O + b_O`, refOut, refMatmul, identity);
  expectNear(`${name} GPU: sum_h result + b_O vs z_flat @ W_O + b_O`, out, refMatmul, identity);
  expectNear(`${name} GPU matmul attn_out vs z_flat @ W_O + b_O`, mm, refMatmul, identity);
}

describe('head_result, sum_heads', () => {
  it('BT = 3*7, H = 3, dh = 5, C = 37', async () => {
    await check('BT=21 H=3', { BT: 3 * 7, H: 3, dh: 5, C: 37 }, 21);
  });

  it('BT = 1, H = 1 (one row, one head)', async () => {
    await check('BT=1 H=1', { BT: 1, H: 1, dh: 5, C: 37 }, 22);
  });

  it('dh = 1, C = 3, H = 4 (one term per head, fewer columns than heads)', async () => {
    await check('dh=1', { BT: 5, H: 4, dh: 1, C: 3 }, 23);
  });

  it('heads differ: each head contributes its own block of W_O', async () => {
    // z one-hot in head 1 only: result is W_O's row block of head 1 and zero elsewhere, exactly.
    const d: Dims = { BT: 2, H: 3, dh: 5, C: 37 };
    const z = new Float32Array(d.BT * d.H * d.dh);
    z[(1 * d.H + 1) * d.dh + 2] = 1; // row 1, head 1, feature 2
    const W_O = uniform(mulberry32(24), d.H * d.dh * d.C);
    const resultT = empty(d.BT * d.H * d.C, 'result');
    submitSteps(
      kh.gpu,
      [headResult(kh.gpu, { result: resultT.buffer, z: upload(z, 'z').buffer, W_O: upload(W_O, 'W_O').buffer, BT: d.BT, H: d.H, dh: d.dh, C: d.C, label: 'one-hot' }, params)],
      'one-hot',
    );
    const got = await resultT.read();
    const want = new Float32Array(got.length);
    want.set(W_O.subarray((1 * d.dh + 2) * d.C, (1 * d.dh + 3) * d.C), (1 * d.H + 1) * d.C);
    expectNear('one-hot head_result', got, want, { abs: 0, rel: 0 });
  });
});
