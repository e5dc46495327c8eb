/**
 * layernorm (v1, v2) against `layernormCpu`: 37 rows of C = 53 (neither a multiple of v2's 64
 * invocations per row nor of v1's 64 rows per workgroup), eps = 1e-5, both `out` and `scale`.
 *
 * Tolerance. The reference runs in float64 on the same fp32 inputs. The GPU's fp32 mean of C
 * values of size about |mu| is off by up to ~C u |mu| (u = 2^-24), which shifts every centred
 * value by that much, i.e. by C u |mu| / sigma in normalized units; the variance and the
 * normalization add a few u relative. So for output y = xhat * w + b:
 *   abs = 8 u (1 + C |mu| / sigma) max|w|,  rel = 8 u.
 * For centred data (mu = 0) that is ~5e-7 * max|w|; with mu = 1000, sigma = 1 it grows to ~3e-2 —
 * the rigorous worst case; the test also asserts the observed error is far inside it (a
 * one-pass E[x^2] - E[x]^2 variance would be off by ~|mu|^2 u / sigma^2 = 6e-2 in the variance).
 * `scale` = sqrt(var + eps): rel = 8 u (1 + C |mu| / sigma) as well.
 */
import { describe, it, expect } from 'vitest';
import { layernorm, type LayerNormVersion } from '../../src/gpu/kernels/layernorm.ts';
import { layernormCpu } from '../../src/gpu/kernels/layernorm.cpu.ts';
import { submitSteps } from '../../src/gpu/recorder.ts';
import { maxAbs, maxAbsDiff } from '../helpers/compare.ts';
import { expectNear, U } from './check.ts';
import { kernelHarness } from './harness.ts';
import { mulberry32, normal, uniform } from './random.ts';

const VERSIONS: LayerNormVersion[] = ['v1', 'v2'];
const ROWS = 37;
const C = 53;
const EPS = 1e-5;

const kh = kernelHarness();
const { params, upload, empty } = kh;

/** Runs one layernorm on the GPU and the CPU; returns both outputs and scales. */
async function run(version: LayerNormVersion, x: Float32Array, w: Float32Array, b: Float32Array, rows: number) {
  const out = empty(rows * C, 'out');
  const scale = empty(rows, 'scale');
  const d = layernorm(
    kh.gpu,
    { out: out.buffer, scale: scale.buffer, x: upload(x, 'x').buffer, w: upload(w, 'w').buffer, b: upload(b, 'b').buffer, rows, C, eps: EPS, label: `ln ${version}` },
    params,
    version,
  );
  submitSteps(kh.gpu, [d], `ln ${version}`);
  const refOut = new Float32Array(rows * C);
  const refScale = new Float32Array(rows);
  layernormCpu(refOut, refScale, x, w, b, rows, C, EPS);
  return { out: await out.read(), scale: await scale.read(), refOut, refScale };
}

describe.each(VERSIONS)('layernorm %s', (version) => {
  it(`${ROWS} rows x C=${C}, distinct mean and spread per row`, async () => {
    const rng = mulberry32(101);
    // Each row its own offset and spread, so a row index bug reads visibly wrong statistics.
    const x = new Float32Array(ROWS * C);
    for (let r = 0; r < ROWS; r++) x.set(normal(rng, C, r - 18, 0.5 + r / 10), r * C);
    const w = uniform(rng, C, 0.5, 1.5);
    const b = uniform(rng, C, -1, 1);
    const g = await run(version, x, w, b, ROWS);
    // |mu| <= 18 and sigma >= 0.5 here: the bound above with |mu| / sigma <= 36.
    const k = 8 * U * (1 + C * 36);
    expectNear(`${version} out`, g.out, g.refOut, { abs: k * maxAbs(w), rel: 8 * U });
    expectNear(`${version} scale`, g.scale, g.refScale, { abs: 0, rel: k });
  });

  it('rows with mean 1000 (sigma 1): stable two-pass statistics', async () => {
    const rng = mulberry32(202);
    const x = normal(rng, ROWS * C, 1000, 1);
    const w = uniform(rng, C, 0.5, 1.5);
    const b = uniform(rng, C, -1, 1);
    const g = await run(version, x, w, b, ROWS);
    const k = 8 * U * (1 + C * 1000);
    const ratio = expectNear(`${version} out, mean 1000`, g.out, g.refOut, { abs: k * maxAbs(w), rel: 8 * U });
    expectNear(`${version} scale, mean 1000`, g.scale, g.refScale, { abs: 0, rel: k });
    // Observed error is typically ~sqrt(C) rather than C roundings of |mu|; well inside the bound.
    expect(ratio).toBeLessThan(0.25);
    // The scale is ~sigma = 1, nowhere near the ~1000 a naive variance would produce.
    for (const s of g.scale) expect(Math.abs(s - 1)).toBeLessThan(0.5);
  });

  it('constant rows: variance 0 gives scale sqrt(eps) and y = b, no NaN', async () => {
    const rows = 3;
    const x = new Float32Array(rows * C);
    for (let r = 0; r < rows; r++) x.fill([0, 7.25, -1000][r]!, r * C, (r + 1) * C);
    const rng = mulberry32(303);
    const w = uniform(rng, C, 0.5, 1.5);
    const b = uniform(rng, C, -1, 1);
    const g = await run(version, x, w, b, rows);
    expect(maxAbsDiff(g.scale, new Float32Array(rows).fill(Math.sqrt(EPS)))).toBeLessThanOrEqual(8 * U * Math.sqrt(EPS));
    expectNear(`${version} constant rows`, g.out, g.refOut, { abs: 1e-6, rel: 8 * U });
  });
});
