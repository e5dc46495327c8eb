/**
 * Embedding `gather` against `gatherCpu`, with the table split into several RowChunks: this file's
 * device pretends to bind at most 1024 bytes, so a [100, 7] table (2800 bytes) becomes chunks of
 * 36, 36 and 28 rows, one dispatch each, and the ids hit the first and last row of every chunk.
 *
 * Tolerance: zero. A gather copies fp32 values; any difference is a wrong row or column.
 */
import { describe, it, expect } from 'vitest';
import { WeightArena, type RowChunk } from '../../src/gpu/chunked.ts';
import { gather } from '../../src/gpu/kernels/embed.ts';
import { gatherCpu } from '../../src/gpu/kernels/embed.cpu.ts';
import { submitSteps } from '../../src/gpu/recorder.ts';
import { expectNear } from './check.ts';
import { kernelHarness } from './harness.ts';
import { ints, mulberry32, normal } from './random.ts';

const MAX_BINDING = 1024;

let arena: WeightArena;
const kh = kernelHarness({
  gpu: { maxBindingBytes: MAX_BINDING },
  setup: (gpu) => {
    arena = new WeightArena(gpu);
  },
  teardown: () => arena?.destroy(),
});
const { params, upload, empty } = kh;

/** Gathers `ids` from `table` [rows, C] split into chunks; returns GPU and CPU results. */
async function run(table: Float32Array, rows: number, C: number, ids: Uint32Array, scale = 1): Promise<{ got: Float32Array; ref: Float32Array; chunks: RowChunk[] }> {
  const chunks = arena.uploadRows(table, rows, C, 'table');
  const n = ids.length;
  const idsT = upload(new Float32Array(ids.buffer), 'ids'); // u32 bits, uploaded as-is
  const out = empty([n, C], 'out');
  submitSteps(kh.gpu, gather(kh.gpu, { out: out.buffer, ids: idsT.buffer, table: chunks, n, C, f16Table: false, scale, label: 'gather' }, params), 'gather');
  const ref = new Float32Array(n * C);
  gatherCpu(ref, ids, table, n, C, scale);
  return { got: await out.read(), ref, chunks };
}

describe('gather over a row-chunked table', () => {
  it('token ids spanning every chunk (first and last row of each), repeats, random order', async () => {
    const rng = mulberry32(77);
    const V = 100,
      C = 7;
    const table = normal(rng, V * C);
    const edges = [0, 35, 36, 71, 72, 99];
    const ids = new Uint32Array([...edges, ...ints(rng, 24, V), 99, 0, 36]);
    const { got, ref, chunks } = await run(table, V, C, ids);
    expect(chunks.map((c) => [c.row0, c.rows])).toEqual([
      [0, 36],
      [36, 36],
      [72, 28],
    ]);
    // Every chunk is hit, so each dispatch both writes rows and skips rows.
    for (const c of chunks) expect(ids.some((id) => id >= c.row0 && id < c.row0 + c.rows)).toBe(true);
    expectNear('gather tokens', got, ref, { abs: 0, rel: 0 });
  });

  it('position embeddings: ids 0..n-1 over a [40, 7] table in two chunks', async () => {
    const rng = mulberry32(78);
    const P = 40,
      C = 7,
      n = 30;
    const table = normal(rng, P * C);
    // Positions 5..32 (first chunk, rows 0..35), then 36 and 39: the first and last row of the second.
    const ids = new Uint32Array(n).map((_, i) => i + 5);
    ids[n - 2] = 36;
    ids[n - 1] = 39;
    const { got, ref, chunks } = await run(table, P, C, ids);
    expect(chunks.length).toBe(2);
    expectNear('gather positions', got, ref, { abs: 0, rel: 0 });
  });

  it("scaled by sqrt(640) (Gemma 3 270M's embedding scale): one fp32 multiply, bit-exact", async () => {
    const rng = mulberry32(79);
    const table = normal(rng, 100 * 7);
    const { got, ref } = await run(table, 100, 7, new Uint32Array([0, 99, 36, 71, 5]), Math.fround(Math.sqrt(640)));
    expectNear('gather scaled', got, ref.map(Math.fround), { abs: 0, rel: 0 });
  });

  it('a single id and C = 1', async () => {
    const table = new Float32Array(300).map((_, i) => i + 0.5); // 300 rows of 1: chunks of 256 and 44
    const { got, ref, chunks } = await run(table, 300, 1, new Uint32Array([257]));
    expect(chunks.length).toBe(2);
    expect(Array.from(got)).toEqual([257.5]);
    expectNear('gather C=1', got, ref, { abs: 0, rel: 0 });
  });
});
