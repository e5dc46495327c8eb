/**
 * kv_assemble (`kvAssemble`) against `kvAssembleCpu`: full [B, T, HD] = the cached prefix
 * past [q0, HD] (shared by every batch row, or per row from a table of past rows) for t < q0,
 * then the fresh rows [B, T - q0, HD].
 *
 * Shapes: B = 3, T = 7, HD = 15 (odd, distinct, B T HD = 315: five 64-wide workgroups with a
 * partial last one), q0 in {1, 3, 6} — one cached position, a split in the middle, one fresh
 * position — plus the edges q0 = 0 (nothing cached) and q0 = T (nothing fresh). past and fresh
 * hold disjoint value ranges (past in [10, 11), fresh in [-1, 1) with a distinct offset per
 * batch row), so an element copied from the wrong source, row or position shows.
 *
 * Tolerance: none. The kernel is a copy, so the output must equal the reference bit for bit,
 * compared as u32 words (one fresh value is -0, which must not come back as +0; every other
 * value is a normal float, so nothing may legitimately be flushed).
 * The output starts NaN-filled, so an element the kernel never writes fails.
 */
import { describe, it, expect } from 'vitest';
import { kvAssemble } from '../../src/gpu/kernels/kv-cache.ts';
import { kvAssembleCpu } from '../../src/gpu/kernels/kv-cache.cpu.ts';
import { submitSteps, type Dispatch } from '../../src/gpu/recorder.ts';
import type { Tensor } from '../../src/gpu/tensor.ts';
import { firstNaN } from './check.ts';
import { kernelHarness } from './harness.ts';
import { mulberry32, uniform } from './random.ts';

const B = 3,
  T = 7,
  HD = 15;

const kh = kernelHarness();
const { params, empty } = kh;

/** A zero-length tensor still needs a buffer to bind (q0 = 0 has no past, q0 = T no fresh rows). */
const upload = (data: Float32Array, label: string): Tensor => kh.upload(data.length ? data : new Float32Array(1), label);

interface Case {
  q0: number;
  past: Float32Array;
  fresh: Float32Array;
  ref: Float32Array;
  dispatch: Dispatch;
  out: Tensor;
}

function prepare(q0: number, seed: number): Case {
  const rng = mulberry32(seed);
  const past = uniform(rng, q0 * HD, 10, 11);
  const fresh = uniform(rng, B * (T - q0) * HD);
  for (let b = 0; b < B; b++) for (let i = 0; i < (T - q0) * HD; i++) fresh[b * (T - q0) * HD + i]! += 100 * b;
  if (fresh.length) fresh[fresh.length - 1] = -0; // sign of zero must survive the copy
  const ref = new Float32Array(B * T * HD);
  kvAssembleCpu(ref, past, fresh, B, T, q0, HD);
  const out = empty(B * T * HD, `full q0=${q0}`);
  const dispatch = kvAssemble(kh.gpu, { full: out.buffer, past: upload(past, 'past').buffer, fresh: upload(fresh, 'fresh').buffer, B, T, q0, HD, label: `kv q0=${q0}` }, params);
  return { q0, past, fresh, ref, dispatch, out };
}

async function check(c: Case): Promise<void> {
  const got = await c.out.read();
  expect(firstNaN(got), `q0=${c.q0}: an element never written`).toBe(-1);
  const gotBits = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const refBits = new Uint32Array(c.ref.buffer);
  let bad = -1;
  for (let i = 0; i < refBits.length && bad < 0; i++) if (gotBits[i] !== refBits[i]) bad = i;
  if (bad >= 0) {
    const [b, t, e] = [Math.floor(bad / (T * HD)), Math.floor(bad / HD) % T, bad % HD];
    expect.fail(`q0=${c.q0}: full[${b}, ${t}, ${e}] = ${got[bad]}, want ${c.ref[bad]}`);
  }
  // The reference itself: the prefix is past in every row, the rest fresh.
  for (let b = 0; b < B; b++) {
    expect(c.ref.subarray(b * T * HD, (b * T + c.q0) * HD)).toEqual(c.past);
    expect(c.ref.subarray((b * T + c.q0) * HD, (b + 1) * T * HD)).toEqual(c.fresh.subarray(b * (T - c.q0) * HD, (b + 1) * (T - c.q0) * HD));
  }
}

describe('kv_assemble', () => {
  it('B=3 T=7 HD=15, q0 = 1, 3, 6 in one submit: bit-exact copy', async () => {
    const cases = [1, 3, 6].map((q0, i) => prepare(q0, 100 + i));
    submitSteps(
      kh.gpu,
      cases.map((c) => c.dispatch),
      'kv assemble',
    );
    for (const c of cases) await check(c);
  });

  it('edges: q0 = 0 (all fresh) and q0 = T (all cached)', async () => {
    const cases = [0, T].map((q0, i) => prepare(q0, 200 + i));
    submitSteps(
      kh.gpu,
      cases.map((c) => c.dispatch),
      'kv assemble edges',
    );
    for (const c of cases) await check(c);
  });

  it('per-row starts: row b takes past below its own start; fresh rows before it are never read', async () => {
    const rng = mulberry32(300);
    const q0 = 2;
    const starts = [2, 5, 7]; // one row at q0, one mid-way, one wholly from past (start = T)
    const pastLen = Math.max(...starts);
    const past = uniform(rng, pastLen * HD, 10, 11);
    const fresh = uniform(rng, B * (T - q0) * HD);
    // Fresh rows before each row's start hold NaN: reading one would show.
    for (let b = 0; b < B; b++) for (let t = q0; t < starts[b]; t++) fresh.fill(NaN, (b * (T - q0) + t - q0) * HD, (b * (T - q0) + t - q0 + 1) * HD);
    const ref = new Float32Array(B * T * HD);
    kvAssembleCpu(ref, past, fresh, B, T, q0, HD, starts);
    expect(firstNaN(ref), 'the reference reads no NaN row').toBe(-1);
    const startsBuf = kh.gpu.device.createBuffer({ size: 16, usage: 0x80 | 0x08 });
    kh.gpu.device.queue.writeBuffer(startsBuf, 0, new Uint32Array(starts));
    const out = empty(B * T * HD, 'full starts');
    submitSteps(
      kh.gpu,
      [kvAssemble(kh.gpu, { full: out.buffer, past: upload(past, 'past').buffer, fresh: upload(fresh, 'fresh').buffer, B, T, q0, HD, starts: startsBuf, pastLen, label: 'kv starts' }, params)],
      'kv starts',
    );
    const got = await out.read();
    expect(firstNaN(got), 'a fresh row before its start was read').toBe(-1);
    expect(got).toEqual(ref);
    // The reference: row b is past up to starts[b], fresh after.
    for (let b = 0; b < B; b++) {
      expect(ref.subarray(b * T * HD, (b * T + starts[b]) * HD)).toEqual(past.subarray(0, starts[b] * HD));
    }
    startsBuf.destroy();
  });

  it("per-row past rows with per-row starts: row b takes its own cached prompt's prefix", async () => {
    const rng = mulberry32(400);
    const q0 = 1;
    const starts = [3, 1, 6];
    const rows = [2, 0, 2]; // two batch rows read the same cached prompt, one row unused
    const pastLen = Math.max(...starts);
    const past = uniform(rng, 3 * pastLen * HD, 10, 11);
    for (let r = 0; r < 3; r++) for (let i = 0; i < pastLen * HD; i++) past[r * pastLen * HD + i]! += 10 * r; // rows in disjoint ranges
    const fresh = uniform(rng, B * (T - q0) * HD);
    const ref = new Float32Array(B * T * HD);
    kvAssembleCpu(ref, past, fresh, B, T, q0, HD, starts, rows, pastLen);
    const table = (v: number[]) => {
      const buf = kh.gpu.device.createBuffer({ size: 16, usage: 0x80 | 0x08 });
      kh.gpu.device.queue.writeBuffer(buf, 0, new Uint32Array(v));
      return buf;
    };
    const [startsBuf, rowsBuf] = [table(starts), table(rows)];
    const out = empty(B * T * HD, 'full rows');
    submitSteps(
      kh.gpu,
      [
        kvAssemble(
          kh.gpu,
          { full: out.buffer, past: upload(past, 'past').buffer, fresh: upload(fresh, 'fresh').buffer, B, T, q0, HD, starts: startsBuf, pastLen, pastRows: rowsBuf, pastBatch: 3, label: 'kv rows' },
          params,
        ),
      ],
      'kv rows',
    );
    const got = await out.read();
    expect(firstNaN(got)).toBe(-1);
    expect(got).toEqual(ref);
    for (let b = 0; b < B; b++) {
      expect(ref.subarray(b * T * HD, (b * T + starts[b]) * HD)).toEqual(past.subarray(rows[b] * pastLen * HD, (rows[b] * pastLen + starts[b]) * HD));
    }
    startsBuf.destroy();
    rowsBuf.destroy();
  });
});
