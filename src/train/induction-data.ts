/**
 * Training data for the induction models, drawn on the CPU from a seed (`SeededRandom`), with the
 * distributions of the fixtures' training scripts:
 *
 *   recall    (make/train_induction_pairs.py, which trained induction-attn-2l) BOS + T - 1 distinct
 *             random tokens in 1..V-1; K times, a position i in [1, T - 4) and j in [i + 3, T) whose
 *             i, i + 1, j are unused (20 tries, else that pair is skipped) get ids[j] = ids[i], and
 *             the model is scored only on predicting ids[i + 1] at j: associative recall with no
 *             positional shortcut, so it needs a previous-token head and an induction head.
 *   repeated  (make/make_fixtures.py's repeat_batch, which trained induction-2l) BOS + random tokens
 *             in 1..V-1, with one segment of k in [6, 20] tokens copied to a random later place;
 *             scored on every next-token prediction. A fixed-offset look-back can copy it.
 *
 * The draws are not numpy's or PyTorch's bit for bit (different generators); the distributions are
 * the scripts'. The recipe now trains on `gpuBatch` (induction-data-gpu.cpu.ts), the same
 * distributions drawn from a counter hash so that the GPU can draw them too.
 */
import { SeededRandom } from '../util/random.ts';

export interface TokenBatch {
  /** [n][T] token ids. */
  ids: number[][];
  /** The loss terms: predicting `target` from position `pos` of row `row` (the logits at pos). */
  targets: { row: number; pos: number; target: number }[];
}

export type InductionTask = 'recall' | 'repeated';

export interface InductionDataOptions {
  /** Tokens per sequence (48). */
  T: number;
  /** Vocabulary (256); token 0 is BOS. */
  V: number;
  /** Recall pairs per sequence (4). */
  K?: number;
}

/** n distinct integers in [lo, hi), in random order (partial Fisher-Yates). */
function distinct(rng: SeededRandom, n: number, lo: number, hi: number): number[] {
  const pool = Array.from({ length: hi - lo }, (_, k) => lo + k);
  for (let k = 0; k < n; k++) {
    const r = k + rng.int(pool.length - k);
    [pool[k], pool[r]] = [pool[r]!, pool[k]!];
  }
  return pool.slice(0, n);
}

/** A recall batch (see the header). */
export function recallBatch(rng: SeededRandom, n: number, o: InductionDataOptions): TokenBatch {
  const { T, V } = o;
  const K = o.K ?? 4;
  if (T - 1 > V - 1) throw new Error(`recall data: ${T - 1} distinct tokens need a vocabulary of at least ${T}`);
  const ids: number[][] = [];
  const targets: TokenBatch['targets'] = [];
  for (let b = 0; b < n; b++) {
    const row = [0, ...distinct(rng, T - 1, 1, V)];
    const used = new Set<number>();
    const pairs: [number, number][] = [];
    for (let p = 0; p < K; p++) {
      for (let attempt = 0; attempt < 20; attempt++) {
        const i = 1 + rng.int(T - 5); // [1, T - 4)
        const j = i + 3 + rng.int(T - i - 3); // [i + 3, T)
        if (used.has(i) || used.has(i + 1) || used.has(j)) continue;
        used
          .add(i)
          .add(i + 1)
          .add(j);
        row[j] = row[i]!;
        pairs.push([i, j]);
        break;
      }
    }
    for (const [i, j] of pairs.sort((a, c) => a[1] - c[1])) targets.push({ row: b, pos: j, target: row[i + 1]! });
    ids.push(row);
  }
  return { ids, targets };
}

/** A repeated-segment batch (see the header). */
export function repeatedBatch(rng: SeededRandom, n: number, o: InductionDataOptions): TokenBatch {
  const { T, V } = o;
  const ids: number[][] = [];
  const targets: TokenBatch['targets'] = [];
  for (let b = 0; b < n; b++) {
    const row = [0, ...Array.from({ length: T - 1 }, () => 1 + rng.int(V - 1))];
    const k = 6 + rng.int(15); // [6, 20]
    const s1 = 1 + Math.floor(rng.next() * (T - 2 * k - 1));
    const d = k + Math.floor(rng.next() * (T - s1 - 2 * k + 1));
    for (let t = s1 + d; t < Math.min(T, s1 + d + k); t++) row[t] = row[t - d]!;
    for (let t = 0; t + 1 < T; t++) targets.push({ row: b, pos: t, target: row[t + 1]! });
    ids.push(row);
  }
  return { ids, targets };
}

export function inductionBatch(task: InductionTask, rng: SeededRandom, n: number, o: InductionDataOptions): TokenBatch {
  return task === 'recall' ? recallBatch(rng, n, o) : repeatedBatch(rng, n, o);
}

/** The score set of train_induction_pairs.py: n sequences BOS + x + x, x `half` distinct random tokens. */
export function repeatSequences(rng: SeededRandom, n: number, half: number, V: number): number[][] {
  return Array.from({ length: n }, () => {
    const x = distinct(rng, half, 1, V);
    return [0, ...x, ...x];
  });
}
