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
 *
 * RMSNorm (v1, v2): no mean, so abs = 8 u max|w| and rel = 8 u; scale rel = 8 u.
 *
 * The split kernels, on the same 37 x 53 rows: `normalize` with a scale per row that is not the
 * row's own (as after an intervention on hook_scale): (x - mu) / s is off by the mean's error
 * over s plus a few u relative, abs = 8 u (1 + C |mu| / s_min), rel = 8 u. `affine`: one product
 * and one sum per element, abs = 2 u (max|n| max|w| + max|b|). And normalize (with the fused
 * kernel's scale) then affine gives the fused v2's output bit for bit, LayerNorm and RMSNorm:
 * the plan relies on that when an intervention touches only some rows.
 */
import { describe, it, expect } from 'vitest';
import { layernorm, layernormAffine, layernormNormalize, type LayerNormVersion } from '../../src/gpu/kernels/layernorm.ts';
import { affineCpu, layernormCpu, normalizeCpu, rmsnormCpu } from '../../src/gpu/kernels/layernorm.cpu.ts';
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

/** Runs one layernorm (RMSNorm when b is null) on the GPU and the CPU; returns both outputs and scales. */
async function run(version: LayerNormVersion, x: Float32Array, w: Float32Array, b: Float32Array | null, rows: number) {
  const out = empty(rows * C, 'out');
  const scale = empty(rows, 'scale');
  const d = layernorm(
    kh.gpu,
    { out: out.buffer, scale: scale.buffer, x: upload(x, 'x').buffer, w: upload(w, 'w').buffer, b: b && upload(b, 'b').buffer, rows, C, eps: EPS, label: `ln ${version}` },
    params,
    version,
  );
  submitSteps(kh.gpu, [d], `ln ${version}`);
  const refOut = new Float32Array(rows * C);
  const refScale = new Float32Array(rows);
  if (b) layernormCpu(refOut, refScale, x, w, b, rows, C, EPS);
  else rmsnormCpu(refOut, refScale, x, w, rows, C, EPS);
  return { out: await out.read(), scale: await scale.read(), refOut, refScale };
}

/** Rows with their own offset and spread, so a row index bug reads visibly wrong statistics. */
function offsetRows(seed: number): Float32Array {
  const rng = mulberry32(seed);
  const x = new Float32Array(ROWS * C);
  for (let r = 0; r < ROWS; r++) x.set(normal(rng, C, r - 18, 0.5 + r / 10), r * C);
  return x;
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

describe.each(VERSIONS)('rmsnorm %s', (version) => {
  it(`${ROWS} rows x C=${C}, distinct spread per row`, async () => {
    const x = offsetRows(404);
    const rng = mulberry32(405);
    const w = uniform(rng, C, 0.5, 1.5);
    const g = await run(version, x, w, null, ROWS);
    expectNear(`rms ${version} out`, g.out, g.refOut, { abs: 8 * U * maxAbs(w), rel: 8 * U });
    expectNear(`rms ${version} scale`, g.scale, g.refScale, { abs: 0, rel: 8 * U });
  });
});

describe.each([
  ['layernorm', false],
  ['rmsnorm', true],
] as const)('%s split at hook_scale and hook_normalized', (_, rms) => {
  it(`normalize: ${ROWS} rows x C=${C} with a changed scale per row`, async () => {
    const x = offsetRows(505);
    const rng = mulberry32(506);
    const scale = uniform(rng, ROWS, 0.5, 2); // not the rows' own: as after an intervention
    const normalized = empty(ROWS * C, 'normalized');
    const d = layernormNormalize(kh.gpu, { normalized: normalized.buffer, x: upload(x, 'x').buffer, scale: upload(scale, 'scale').buffer, rms, rows: ROWS, C, label: 'normalize' }, params);
    submitSteps(kh.gpu, [d], 'normalize');
    const ref = new Float32Array(ROWS * C);
    normalizeCpu(ref, x, scale, ROWS, C, rms);
    // |mu| <= 18, s >= 0.5.
    expectNear(`normalize rms=${rms}`, await normalized.read(), ref, { abs: 8 * U * (1 + (rms ? 0 : (C * 18) / 0.5)), rel: 8 * U });
  });

  it(`affine: ${ROWS} rows x C=${C}`, async () => {
    const rng = mulberry32(606);
    const n = normal(rng, ROWS * C, 0, 1.5);
    const w = uniform(rng, C, -2, 2);
    const b = rms ? null : uniform(rng, C, -1, 1);
    const out = empty(ROWS * C, 'out');
    const d = layernormAffine(kh.gpu, { out: out.buffer, normalized: upload(n, 'n').buffer, w: upload(w, 'w').buffer, b: b && upload(b, 'b').buffer, rows: ROWS, C, label: 'affine' }, params);
    submitSteps(kh.gpu, [d], 'affine');
    const ref = new Float32Array(ROWS * C);
    affineCpu(ref, n, w, b, ROWS, C);
    expectNear(`affine rms=${rms}`, await out.read(), ref, { abs: 2 * U * (maxAbs(n) * maxAbs(w) + (b ? maxAbs(b) : 0)), rel: 0 });
  });

  it('normalize with the fused scale, then affine, gives the fused v2 output bit for bit', async () => {
    const x = upload(offsetRows(707), 'x');
    const rng = mulberry32(708);
    const w = upload(uniform(rng, C, 0.5, 1.5), 'w');
    const b = rms ? null : upload(uniform(rng, C, -1, 1), 'b');
    const fused = empty(ROWS * C, 'fused');
    const scale = empty(ROWS, 'scale');
    const normalized = empty(ROWS * C, 'normalized');
    const split = empty(ROWS * C, 'split');
    const common = { rows: ROWS, C };
    submitSteps(
      kh.gpu,
      [
        layernorm(kh.gpu, { out: fused.buffer, scale: scale.buffer, x: x.buffer, w: w.buffer, b: b?.buffer ?? null, eps: EPS, label: 'fused', ...common }, params, 'v2'),
        layernormNormalize(kh.gpu, { normalized: normalized.buffer, x: x.buffer, scale: scale.buffer, rms, label: 'normalize', ...common }, params),
        layernormAffine(kh.gpu, { out: split.buffer, normalized: normalized.buffer, w: w.buffer, b: b?.buffer ?? null, label: 'affine', ...common }, params),
      ],
      'fused vs split',
    );
    expect(maxAbsDiff(await split.read(), await fused.read())).toBe(0);
  });
});
