/**
 * sparse_features_v1 (`synthetic.ts`) against `sparseFeaturesCpu`, bit for bit: the same hash of
 * (seed, update, counter) on both sides, on an odd shape (B = 33, I = 5, F = 7) at update 42 (the
 * clock's step 41 + 1). Then what the data must be: present with probability p[i] per instance and
 * uniform in [0, 1) when present (checked on 200,000 draws against binomial bounds), different at
 * the next update and for another seed.
 */
import { describe, expect, it } from 'vitest';
import { CLOCK_HEADER_WORDS } from '../../shaders/clock.wgsl.ts';
import { sparseFeaturesCpu } from '../../src/gpu/kernels/synthetic.cpu.ts';
import { sparseFeatures } from '../../src/gpu/kernels/synthetic.ts';
import { submitSteps } from '../../src/gpu/recorder.ts';
import { draw, pcgHash, uniform01 } from '../../src/util/random.ts';
import { kernelHarness } from './harness.ts';

const kh = kernelHarness();
const { params, upload, empty } = kh;

function clockAt(step: number): GPUBuffer {
  const words = new Uint32Array(CLOCK_HEADER_WORDS + 4);
  words[0] = step;
  words[1] = step;
  return upload(new Float32Array(words.buffer), 'clock').buffer;
}

async function gpuFeatures(B: number, I: number, F: number, prob: Float32Array, seed: number, step: number): Promise<Float32Array> {
  const x = empty(B * I * F, 'x');
  submitSteps(kh.gpu, [sparseFeatures(kh.gpu, { x: x.buffer, prob: upload(prob, 'p').buffer, B, I, F, seed, clock: clockAt(step), label: 'features' }, params)], 'features');
  return x.read();
}

describe('the hash', () => {
  it('is PCG: known values of the CPU twin', () => {
    // pcg_hash(0) = (w >> 22) ^ w with w = ((s >> ((s >> 28) + 4)) ^ s) * 277803737, s = 2891336453.
    const s = 2891336453;
    const w = Math.imul(((s >>> ((s >>> 28) + 4)) ^ s) >>> 0, 277803737) >>> 0;
    expect(pcgHash(0)).toBe(((w >>> 22) ^ w) >>> 0);
    expect(draw(1, 2, 3)).toBe(pcgHash((3 + pcgHash((2 + pcgHash(1)) >>> 0)) >>> 0));
    expect(uniform01(1, 2, 3)).toBe((draw(1, 2, 3) >>> 8) / 2 ** 24);
  });
});

describe('sparse_features_v1', () => {
  it('equals the CPU twin bit for bit (B 33, I 5, F 7, update 42)', async () => {
    const [B, I, F, seed] = [33, 5, 7, 1234];
    const prob = new Float32Array([1, 0.5, 0.2, 0.05, 0]);
    const got = await gpuFeatures(B, I, F, prob, seed, 41);
    const ref = new Float32Array(B * I * F);
    sparseFeaturesCpu(ref, prob, B, I, F, seed, 42);
    expect(Array.from(got)).toEqual(Array.from(ref));
    // Instance 0 (p = 1) is dense, instance 4 (p = 0) empty.
    for (let b = 0; b < B; b++)
      for (let f = 0; f < F; f++) {
        expect(got[(4 * B + b) * F + f]).toBe(0);
        expect(got[(0 * B + b) * F + f]).toBeGreaterThan(0); // value 0 exactly has probability 2^-24 per element
      }
  });

  it('presence rate p[i] and uniform values, per instance; fresh data each update and seed', async () => {
    const [B, I, F] = [2000, 3, 100];
    const prob = new Float32Array([0.5, 0.1, 0.01]);
    const x = await gpuFeatures(B, I, F, prob, 7, 0);
    for (let i = 0; i < I; i++) {
      let present = 0;
      let sum = 0;
      for (let b = 0; b < B; b++)
        for (let f = 0; f < F; f++) {
          const v = x[(i * B + b) * F + f]!;
          if (v > 0) {
            present++;
            sum += v;
            expect(v).toBeLessThan(1);
          }
        }
      const n = B * F;
      const p = prob[i]!;
      // 5 standard deviations of a binomial count; the mean of `present` uniforms within 5 sd (1/sqrt(12 k)).
      expect(Math.abs(present - n * p), `instance ${i} presence`).toBeLessThan(5 * Math.sqrt(n * p * (1 - p)));
      expect(Math.abs(sum / present - 0.5), `instance ${i} mean value`).toBeLessThan(5 / Math.sqrt(12 * present));
    }
    const next = await gpuFeatures(B, I, F, prob, 7, 1);
    const other = await gpuFeatures(B, I, F, prob, 8, 0);
    const same = (a: Float32Array, b: Float32Array) => a.every((v, k) => v === b[k]);
    expect(same(x, next)).toBe(false);
    expect(same(x, other)).toBe(false);
    expect(same(x, await gpuFeatures(B, I, F, prob, 7, 0))).toBe(true);
  });
});
