/**
 * `grid1d`, the 1-D -> 2-D workgroup folding every elementwise, layernorm, attention and gather
 * dispatch uses, and the shaders' matching index recovery.
 *
 * Real folding needs more than 65,535 workgroups (4M+ elements), too slow on lavapipe. Instead
 * grid1d runs against a fake limit, and then the real kernels run on a `Gpu` that only pretends
 * its limit is 3 workgroups per dimension, so small shapes fold, with several idle workgroups in
 * the last row of the grid. Results must equal the unfolded run exactly (same arithmetic).
 */
import { describe, it, expect } from 'vitest';
import type { Gpu } from '../../src/gpu/device.ts';
import { attnScores, attnSoftmax, attnZ, type AttentionDims } from '../../src/gpu/kernels/attention.ts';
import { add, geluNew } from '../../src/gpu/kernels/elementwise.ts';
import { gather } from '../../src/gpu/kernels/embed.ts';
import { layernorm } from '../../src/gpu/kernels/layernorm.ts';
import { WeightArena } from '../../src/gpu/chunked.ts';
import { grid1d, submitSteps, type Dispatch } from '../../src/gpu/recorder.ts';
import type { Tensor } from '../../src/gpu/tensor.ts';
import { kernelHarness } from './harness.ts';
import { ints, mulberry32, normal } from './random.ts';

describe('grid1d', () => {
  const MAX = 10;
  const fake = { limits: { maxComputeWorkgroupsPerDimension: MAX } } as unknown as Gpu;

  it('covers n items exactly once within the limit, for every n up to MAX^2 groups', () => {
    for (const perGroup of [1, 3, 8]) {
      for (let n = 0; n <= MAX * MAX * perGroup; n++) {
        const [x, y, z] = grid1d(fake, n, perGroup);
        expect(z).toBe(1);
        expect(x).toBeGreaterThanOrEqual(1);
        expect(x).toBeLessThanOrEqual(MAX);
        expect(y).toBeGreaterThanOrEqual(1);
        expect(y).toBeLessThanOrEqual(MAX);
        const groups = Math.max(1, Math.ceil(n / perGroup));
        if (groups <= MAX) expect([x, y]).toEqual([groups, 1]); // unfolded while it fits
        // Few idle workgroups: less than one row of the grid.
        expect(x * y - groups).toBeLessThan(x);
        // The shaders' index: (wg.x + wg.y * num_workgroups.x) * perGroup + local index.
        const seen = new Uint8Array(n);
        for (let wy = 0; wy < y; wy++) {
          for (let wx = 0; wx < x; wx++) {
            for (let l = 0; l < perGroup; l++) {
              const i = (wx + wy * x) * perGroup + l;
              if (i < n) seen[i]++;
            }
          }
        }
        expect(
          seen.every((s) => s === 1),
          `n=${n} perGroup=${perGroup}`,
        ).toBe(true);
      }
    }
  });

  it('n = 0 still dispatches one (idle) workgroup', () => {
    expect(grid1d(fake, 0, 64)).toEqual([1, 1, 1]);
  });
});

describe('kernels on a 2-D folded grid (pretend limit: 3 workgroups per dimension)', () => {
  let folded: Gpu;
  let arena: WeightArena;
  const kh = kernelHarness({
    setup: (gpu) => {
      // Same device, pipelines and pool; only the limit grid1d reads differs.
      folded = Object.create(gpu, { limits: { value: { ...gpu.limits, maxComputeWorkgroupsPerDimension: 3 } } }) as Gpu;
      arena = new WeightArena(gpu);
    },
    teardown: () => arena?.destroy(),
  });
  const { params } = kh;
  const upload = (data: Float32Array) => kh.upload(data, 'in');
  const empty = (n: number) => kh.empty(n, 'in');

  /** Runs `make` on the real and the folded device; the outputs must be identical. */
  async function same(what: string, outLen: number, make: (g: Gpu, out: GPUBuffer) => Dispatch[]): Promise<void> {
    const a = empty(outLen);
    const b = empty(outLen);
    const plain = make(kh.gpu, a.buffer);
    const fold = make(folded, b.buffer);
    expect(
      fold.some((d) => d.workgroups[1] > 1),
      `${what} folds`,
    ).toBe(true);
    expect(fold.every((d) => d.workgroups[0] <= 3)).toBe(true);
    submitSteps(kh.gpu, [...plain, ...fold], what);
    const [x, y] = [await a.read(), await b.read()];
    expect(Array.from(x).some(Number.isNaN), `${what}: unwritten output`).toBe(false);
    expect(Array.from(y), what).toEqual(Array.from(x));
  }

  it('add and gelu_new (n = 1001: 16 workgroups -> 3 x 6)', async () => {
    const rng = mulberry32(31);
    const n = 1001;
    const a = upload(normal(rng, n));
    const b = upload(normal(rng, n));
    await same('add', n, (g, out) => [add(g, { out, a: a.buffer, b: b.buffer, n, label: 'add' }, params)]);
    await same('gelu', n, (g, out) => [geluNew(g, { y: out, x: a.buffer, n, label: 'gelu' }, params)]);
  });

  it('layernorm v1 (300 rows: 5 workgroups of 64) and v2 (37 rows: 37 workgroups -> 3 x 13)', async () => {
    const rng = mulberry32(32);
    const C = 13;
    for (const [version, rows] of [
      ['v1', 300],
      ['v2', 37],
    ] as const) {
      const x = upload(normal(rng, rows * C, 2, 3));
      const w = upload(normal(rng, C));
      const bb = upload(normal(rng, C));
      const scales: Tensor[] = [];
      await same(`layernorm ${version}`, rows * C, (g, out) => {
        const scale = empty(rows);
        scales.push(scale);
        return [layernorm(g, { out, scale: scale.buffer, x: x.buffer, w: w.buffer, b: bb.buffer, rows, C, eps: 1e-5, label: 'ln' }, params, version)];
      });
      expect(Array.from(await scales[1]!.read())).toEqual(Array.from(await scales[0]!.read()));
    }
  });

  it('attention scores, softmax, z (B=3, T=7, H=3, dh=5)', async () => {
    const rng = mulberry32(33);
    const d: AttentionDims = { B: 3, T: 7, H: 3, dh: 5 };
    const n = d.B * d.T * d.H * d.dh;
    const s = d.B * d.H * d.T * d.T;
    const [q, k, v] = [upload(normal(rng, n)), upload(normal(rng, n)), upload(normal(rng, n))];
    const scores = upload(normal(rng, s)); // stand-in scores for the softmax and z inputs
    await same('scores', s, (g, out) => [attnScores(g, { dims: d, scores: out, q: q.buffer, k: k.buffer, label: 'scores' }, params)]);
    // 63 softmax rows: a single workgroup even with the fake limit; z folds (315 items).
    const pattern = empty(s);
    submitSteps(kh.gpu, [attnSoftmax(kh.gpu, { dims: d, pattern: pattern.buffer, scores: scores.buffer, label: 'softmax' }, params)], 'softmax');
    await same('z', n, (g, out) => [attnZ(g, { dims: d, z: out, pattern: pattern.buffer, v: v.buffer, label: 'z' }, params)]);
  });

  it('gather (30 ids x C = 37: 18 workgroups -> 3 x 6)', async () => {
    const rng = mulberry32(34);
    const V = 50,
      C = 37,
      n = 30;
    const table = arena.uploadRows(normal(rng, V * C), V, C, 'table');
    const ids = upload(new Float32Array(ints(rng, n, V).buffer));
    await same('gather', n * C, (g, out) => gather(g, { out, ids: ids.buffer, table, n, C, label: 'gather' }, params));
  });
});
