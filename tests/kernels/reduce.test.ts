/**
 * batch_mean (`batchMean`) against `batchMeanCpu`: out[p, h, f] = mean over batch rows of
 * x[b, p, h, f] (per position), or out[0, h, f] = mean over batch rows and positions (pooled),
 * with x addressed as b sb + p sp + h sh + f (the `SiteLayout` of `shaders/reduce.wgsl.ts`).
 *
 * Layouts (B = 3, T = 7, H = 3, dh = 5, d = 37 — distinct and odd), each pooled and per position:
 *   [B, T, d]        resid-like: sh = 0, one "head"; also d = 131 (pooled output spans three
 *                    64-wide workgroups, per position fifteen)
 *   [B, T, H, dh]    per head (hook_z / q / k / v): sh = dh
 *   [B, T, H, C]     hook_result-like, C = 37: a head's features cross a workgroup boundary
 *   [B, H, T, T]     patterns: sb = H T T, sp = T, sh = T T, F = T
 *   [B, H, Tq, Tk]   a resumed pattern, Tq = 4 query rows against Tk = 9 keys (F = Tk != pos)
 *   [B, H, T, T]     attention scores with -Infinity above the diagonal (mean-ablating
 *                    hook_attn_scores): the masked means must be exactly -Infinity
 * plus B = 1, where the per-position mean is the input itself, bit for bit. Data are N(0.5, 1)
 * per element (a nonzero mean, so the relative part of the bound matters); every layout runs
 * in one submit into NaN-filled outputs, so an unwritten element fails.
 *
 * Tolerance (u = 2^-24, gamma_n = n u / (1 - n u)): each output is a serial fp32 sum of n = B
 * (per position) or B T (pooled) terms, off by at most gamma_(n-1) sum |x| <= gamma_n n max|x|
 * (Higham 4.2), then divided by n; after the divide that is gamma_n max|x| absolute. The
 * divide is within 2.5 ulp (WGSL's bound, <= 5u relative) and the reference is rounded to fp32
 * once (u): rel = 6u of max|ref|.
 */
import { describe, it, expect } from 'vitest';
import type { SiteLayout } from '../../src/gpu/kernels/intervene.ts';
import { batchMean } from '../../src/gpu/kernels/reduce.ts';
import { batchMeanCpu } from '../../src/gpu/kernels/reduce.cpu.ts';
import { submitSteps, type Dispatch } from '../../src/gpu/recorder.ts';
import type { Tensor } from '../../src/gpu/tensor.ts';
import { maxAbs } from '../helpers/compare.ts';
import { expectNear, firstNaN, gamma, U } from './check.ts';
import { kernelHarness } from './harness.ts';
import { mulberry32, normal } from './random.ts';

const B = 3,
  T = 7,
  H = 3,
  dh = 5,
  d = 37;

const kh = kernelHarness();
const { params, upload, empty } = kh;

const flat = (Bn: number, Fd: number): SiteLayout => ({ sb: T * Fd, sp: Fd, sh: 0, F: Fd, batch: Bn, pos: T, heads: 1 });
const perHead = (Bn: number, Fd: number): SiteLayout => ({ sb: T * H * Fd, sp: H * Fd, sh: Fd, F: Fd, batch: Bn, pos: T, heads: H });
const pattern = (Bn: number, Tq: number, Tk: number): SiteLayout => ({ sb: H * Tq * Tk, sp: Tk, sh: Tq * Tk, F: Tk, batch: Bn, pos: Tq, heads: H });

interface Case {
  name: string;
  L: SiteLayout;
  pooled: boolean;
  x: Float32Array;
  ref: Float32Array;
  out: Tensor;
  dispatch: Dispatch;
}

/** x ~ N(0.5, 1) over the layout's B sb floats; `mask` sets causal -Infinity (pattern layouts). */
function prepare(name: string, L: SiteLayout, pooled: boolean, seed: number, mask = false): Case {
  const x = normal(mulberry32(seed), L.batch * L.sb, 0.5, 1);
  if (mask) {
    for (let b = 0; b < L.batch; b++) for (let h = 0; h < L.heads; h++) for (let i = 0; i < L.pos; i++) for (let j = i + 1; j < L.F; j++) x[b * L.sb + h * L.sh + i * L.sp + j] = -Infinity;
  }
  const n = (pooled ? 1 : L.pos) * L.heads * L.F;
  const ref = new Float32Array(n);
  batchMeanCpu(ref, x, L, pooled);
  const out = empty(n, `${name} mean`);
  const label = `${name}${pooled ? ' pooled' : ''}`;
  const dispatch = batchMean(kh.gpu, { out: out.buffer, x: upload(x, name).buffer, layout: L, pooled, label }, params);
  return { name: label, L, pooled, x, ref, out, dispatch };
}

async function check(c: Case): Promise<Float32Array> {
  const got = await c.out.read();
  expect(firstNaN(got), `${c.name}: NaN (unwritten?) at ${firstNaN(got)}`).toBe(-1);
  // Non-finite reference entries (masked scores) must match exactly; the rest under the bound.
  const fin = { got: [] as number[], ref: [] as number[], x: [] as number[] };
  let badInf = 0;
  for (let i = 0; i < c.ref.length; i++) {
    if (Number.isFinite(c.ref[i]!)) {
      fin.got.push(got[i]!);
      fin.ref.push(c.ref[i]!);
    } else if (got[i] !== c.ref[i]) badInf++;
  }
  expect(badInf, `${c.name}: non-finite means that differ from the reference`).toBe(0);
  const n = c.L.batch * (c.pooled ? c.L.pos : 1);
  const xmax = maxAbs(c.x.filter(Number.isFinite));
  expectNear(c.name, fin.got, fin.ref, { abs: gamma(n) * xmax, rel: 6 * U });
  return got;
}

describe('batch_mean', () => {
  const layouts: [string, SiteLayout][] = [
    ['[B,T,d] d=37', flat(B, d)],
    ['[B,T,d] d=131', flat(B, 131)],
    ['[B,T,H,dh]', perHead(B, dh)],
    ['[B,T,H,C] C=37', perHead(B, 37)],
    ['[B,H,T,T]', pattern(B, T, T)],
    ['[B,H,Tq,Tk] Tq=4 Tk=9', pattern(B, 4, 9)],
  ];

  it('every layout, pooled and per position, in one submit', async () => {
    const cases = layouts.flatMap(([name, L], i) => [prepare(name, L, false, 300 + i), prepare(name, L, true, 400 + i)]);
    submitSteps(
      kh.gpu,
      cases.map((c) => c.dispatch),
      'batch mean',
    );
    for (const c of cases) {
      expect(c.ref.length).toBe((c.pooled ? 1 : c.L.pos) * c.L.heads * c.L.F);
      await check(c);
    }
  });

  it('attention scores with -Infinity above the diagonal: masked means are exactly -Infinity', async () => {
    const cases = [prepare('scores', pattern(B, T, T), false, 500, true), prepare('scores', pattern(B, T, T), true, 501, true)];
    submitSteps(
      kh.gpu,
      cases.map((c) => c.dispatch),
      'batch mean scores',
    );
    for (const c of cases) await check(c);
    // Per position: -Infinity exactly above the diagonal; pooled: every key but j = 0 is masked
    // for some query, so only column 0 is finite.
    const [perPos, pooled] = [cases[0]!.ref, cases[1]!.ref];
    expect(perPos.filter((v) => v === -Infinity).length).toBe((H * T * (T - 1)) / 2);
    expect(Array.from(pooled).filter(Number.isFinite).length).toBe(H);
  });

  it('B = 1: the per-position mean is the input bit for bit; pooled matches', async () => {
    const cases = [prepare('B=1 [B,T,H,dh]', perHead(1, dh), false, 600), prepare('B=1 [B,T,H,dh]', perHead(1, dh), true, 601)];
    submitSteps(
      kh.gpu,
      cases.map((c) => c.dispatch),
      'batch mean B=1',
    );
    const got = await check(cases[0]!);
    expect(Array.from(got)).toEqual(Array.from(cases[0]!.x));
    await check(cases[1]!);
  });
});
