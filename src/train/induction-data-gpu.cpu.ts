/**
 * The induction recipe's batches as the GPU draws them (`shaders/induction-data.wgsl.ts`), bit
 * for bit: the same distributions as `recallBatch` / `repeatedBatch` (induction-data.ts), drawn
 * from the counter-based hash `draw(seed, t, counter)` (util/random.ts) instead of a sequential
 * generator, so that sequence b of update t is computed by one GPU invocation with no state
 * carried between updates. Counter c of sequence b is b * COUNTERS + c. An integer in [0, k) is
 * ((draw >>> 16) * k) >>> 16 (exact in u32 for k <= 65536).
 *
 *   recall    BOS + T - 1 distinct tokens in 1..V-1 (the first T - 1 of a partial Fisher-Yates
 *             shuffle of 1..V-1), then K times: up to 20 tries of i in [1, T - 4), j in
 *             [i + 3, T) with i, i + 1, j unused; ids[j] = ids[i], scored: predict ids[i + 1] at j.
 *   repeated  BOS + tokens in 1..V-1, a segment of k in [6, 20] copied from s1 to s1 + d
 *             (s1 in [1, T - 2k), d in [k, T - s1 - k]); scored on every next token.
 *
 * This is the CPU reference of the GPU generator, and the recipe's data for the general path
 * (`recipeTraining` with engine 'general'), so both engines see the same batches.
 */
import { draw } from '../util/random.ts';
import type { TokenBatch, InductionTask } from './induction-data.ts';

/** Hash counters each sequence may use (a recall sequence uses at most V - 1 + 40 K). */
export const COUNTERS = 4096;

/** An integer in [0, k) from counter c of sequence b of update t. */
function randInt(seed: number, t: number, b: number, c: number, k: number): number {
  return (((draw(seed, t, b * COUNTERS + c) >>> 16) * k) >>> 16) >>> 0;
}

export interface GpuDataShape {
  T: number;
  V: number;
  /** Recall pairs per sequence (4). */
  K: number;
}

/** Sequence b of update t. */
export function gpuSequence(task: InductionTask, seed: number, t: number, b: number, { T, V, K }: GpuDataShape): { ids: number[]; targets: { pos: number; target: number }[] } {
  let c = 0;
  const rand = (k: number) => randInt(seed, t, b, c++, k);
  const ids = new Array<number>(T).fill(0);
  if (task === 'recall') {
    const pool = Array.from({ length: V - 1 }, (_, k) => k + 1);
    for (let k = 0; k < T - 1; k++) {
      const r = k + rand(V - 1 - k);
      [pool[k], pool[r]] = [pool[r]!, pool[k]!];
      ids[k + 1] = pool[k]!;
    }
    const used = new Array<boolean>(T).fill(false);
    const pairs: [number, number][] = [];
    for (let p = 0; p < K; p++) {
      for (let attempt = 0; attempt < 20; attempt++) {
        const i = 1 + rand(T - 5);
        const j = i + 3 + rand(T - i - 3);
        if (used[i] || used[i + 1] || used[j]) continue;
        used[i] = used[i + 1] = used[j] = true;
        ids[j] = ids[i]!;
        pairs.push([i, j]);
        break;
      }
    }
    pairs.sort((x, y) => x[1] - y[1]);
    return { ids, targets: pairs.map(([i, j]) => ({ pos: j, target: ids[i + 1]! })) };
  }
  for (let s = 1; s < T; s++) ids[s] = 1 + rand(V - 1);
  const k = 6 + rand(15);
  const s1 = 1 + rand(T - 2 * k - 1);
  const d = k + rand(T - s1 - 2 * k + 1);
  for (let s = s1 + d; s < Math.min(T, s1 + d + k); s++) ids[s] = ids[s - d]!;
  return { ids, targets: Array.from({ length: T - 1 }, (_, s) => ({ pos: s, target: ids[s + 1]! })) };
}

/** The batch of update t: n sequences. */
export function gpuBatch(task: InductionTask, seed: number, t: number, n: number, shape: GpuDataShape): TokenBatch {
  const ids: number[][] = [];
  const targets: TokenBatch['targets'] = [];
  for (let b = 0; b < n; b++) {
    const s = gpuSequence(task, seed, t, b, shape);
    ids.push(s.ids);
    for (const { pos, target } of s.targets) targets.push({ row: b, pos, target });
  }
  return { ids, targets };
}
