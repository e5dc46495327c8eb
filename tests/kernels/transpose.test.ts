/**
 * transpose_v1 against `transposeCpu`: exact (a copy), on odd shapes (1 x 1, 1 x 67, 67 x 1,
 * 13 x 29, 130 x 7: none a multiple of the 64-wide workgroup), into NaN-filled outputs so an
 * element never written fails.
 */
import { expect, it } from 'vitest';
import { submitSteps } from '../../src/gpu/recorder.ts';
import { transpose } from '../../src/gpu/kernels/transpose.ts';
import { transposeCpu } from '../../src/gpu/kernels/transpose.cpu.ts';
import { kernelHarness } from './harness.ts';
import { mulberry32, normal } from './random.ts';

const kh = kernelHarness();

it.each([
  [1, 1],
  [1, 67],
  [67, 1],
  [13, 29],
  [130, 7],
])('%i x %i', async (R, C) => {
  const x = normal(mulberry32(R * 100 + C), R * C);
  const out = kh.empty(R * C, 'out');
  submitSteps(kh.gpu, [transpose(kh.gpu, { out: out.buffer, x: kh.upload(x, 'x').buffer, R, C, label: 'transpose' }, kh.params)], 'transpose');
  const ref = new Float32Array(R * C);
  transposeCpu(ref, x, R, C);
  expect(Array.from(await out.read())).toEqual(Array.from(ref));
});
