/**
 * matmul with B taken from a slice of a larger buffer (`bStart`: one instance's weights out of a
 * stack, as the superposition toy's v2 does), every version, B as [K, N] and transposed, at odd
 * and 4-aligned element offsets (an offset that is a multiple of 4 keeps v3's vec4 path), against
 * `matmulCpu` on the slice. Tolerance as tests/kernels/matmul.test.ts: gamma_(K+1) K max|a| max|b|.
 */
import { expect, it } from 'vitest';
import { matmul, type MatmulVersion } from '../../src/gpu/kernels/matmul.ts';
import { matmulCpu } from '../../src/gpu/kernels/matmul.cpu.ts';
import { submitSteps } from '../../src/gpu/recorder.ts';
import { maxAbs } from '../helpers/compare.ts';
import { expectNear, gamma, U } from './check.ts';
import { kernelHarness } from './harness.ts';
import { mulberry32, uniform } from './random.ts';

const kh = kernelHarness();
const [M, N, K] = [21, 12, 17];

it.each([
  [3, false],
  [100, false],
  [37, true],
  [0, true],
])('B at element %i of its buffer (transB %s), every version', async (bStart, transB) => {
  const rng = mulberry32(bStart + (transB ? 1000 : 0));
  const a = uniform(rng, M * K);
  const big = uniform(rng, bStart + K * N + 9);
  const bSlice = big.slice(bStart, bStart + K * N);
  const ref = new Float32Array(M * N);
  matmulCpu(ref, a, bSlice, null, M, N, K, transB);
  const aT = kh.upload(a, 'a');
  const bT = kh.upload(big, 'b stack');
  for (const version of ['v1', 'v2', 'v3', 'v4', 'v5', 'v6'] as MatmulVersion[]) {
    const out = kh.empty(M * N, 'out');
    submitSteps(kh.gpu, [matmul(kh.gpu, { out: out.buffer, a: aT.buffer, b: bT.buffer, bStart, M, N, K, transB, label: `matmul ${version}` }, kh.params, version)], version);
    const got = await out.read();
    expectNear(`${version} bStart ${bStart}`, got, ref, { abs: gamma(K + 1) * K * maxAbs(a) * maxAbs(bSlice), rel: U });
    expect(got.every(Number.isFinite)).toBe(true);
  }
});
