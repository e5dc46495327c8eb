/**
 * GPU time per dispatch, from timestamp queries (adapters with the `timestamp-query` feature).
 *
 * While a profiler is attached (`gpu.profiler = new Profiler(gpu)`), `submitSteps` gives every
 * dispatch its own compute pass with begin/end timestamps; `collect()` reads them back and
 * sums the time per label family (digits in labels folded, so "L3 mlp in" and "L7 mlp in"
 * add up under "L# mlp in"). Separate passes cost a little on every adapter: profile to find
 * where time goes, time without it.
 */
import type { Gpu } from './device.ts';
import { readBuffer } from './tensor.ts';

/** Queries per set: 2 per dispatch; a forward has a few hundred dispatches. */
const QUERIES_PER_SET = 4096;

export interface ProfileRow {
  label: string;
  ms: number;
  count: number;
}

export class Profiler {
  private sets: Array<{ set: GPUQuerySet; labels: string[]; resolve: GPUBuffer }> = [];

  constructor(private readonly gpu: Gpu) {
    if (!gpu.features.has('timestamp-query')) throw new Error(`the adapter ${gpu.adapterName} has no timestamp-query feature`);
  }

  /** Timestamp writes for one more dispatch labelled `label`. */
  next(label: string): GPUComputePassTimestampWrites {
    let cur = this.sets[this.sets.length - 1];
    if (!cur || cur.labels.length * 2 >= QUERIES_PER_SET) {
      const set = this.gpu.device.createQuerySet({ type: 'timestamp', count: QUERIES_PER_SET });
      const resolve = this.gpu.device.createBuffer({ size: QUERIES_PER_SET * 8, usage: 0x0200 | 0x0004 | 0x0008 }); // QUERY_RESOLVE | COPY_SRC | COPY_DST
      cur = { set, labels: [], resolve };
      this.sets.push(cur);
    }
    const i = cur.labels.length * 2;
    cur.labels.push(label);
    return { querySet: cur.set, beginningOfPassWriteIndex: i, endOfPassWriteIndex: i + 1 };
  }

  /** Resolves the queries written so far into their buffers (call before submitting). */
  resolve(encoder: GPUCommandEncoder): void {
    for (const s of this.sets) if (s.labels.length) encoder.resolveQuerySet(s.set, 0, s.labels.length * 2, s.resolve, 0);
  }

  /** Time per label family, largest first; clears what was recorded. */
  async collect(): Promise<ProfileRow[]> {
    const byLabel = new Map<string, ProfileRow>();
    for (const { set, labels, resolve } of this.sets) {
      // Timestamps are u64 nanoseconds; read the words as u32 pairs.
      const f = await readBuffer(this.gpu, resolve, 0, labels.length * 16);
      const u = new Uint32Array(f.buffer, f.byteOffset, labels.length * 4);
      labels.forEach((label, j) => {
        const t0 = u[4 * j] + u[4 * j + 1] * 2 ** 32;
        const t1 = u[4 * j + 2] + u[4 * j + 3] * 2 ** 32;
        const key = label.replace(/\d+/g, '#');
        const row = byLabel.get(key) ?? { label: key, ms: 0, count: 0 };
        row.ms += (t1 - t0) / 1e6;
        row.count++;
        byLabel.set(key, row);
      });
      set.destroy();
      resolve.destroy();
    }
    this.sets = [];
    return [...byLabel.values()].sort((a, b) => b.ms - a.ms);
  }
}
