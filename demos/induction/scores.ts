/**
 * Attention-pattern scores for the induction demo, from `blocks.L.attn.hook_pattern`
 * ([batch, head, query, key]) of sequences BOS + x + x, where x is `half` tokens long.
 * The definitions are those of the fixture (tests/fixtures/make/make_fixtures.py):
 *
 *   previous-token score  mean of A[i, i-1] over queries i = 1 .. 2·half
 *   induction score       mean of A[i, i-half+1] over queries i = half+1 .. 2·half: the query is
 *                         in the repeat, its token also stands at i-half, and the key is the
 *                         token that followed that earlier occurrence (the one to copy next)
 *   mean look-back        mean over the same repeat queries of sum_j A[i, j]·(i-j): how far back,
 *                         in tokens, the head's attention lands on average
 *
 * each averaged over every sequence in the batch.
 */
export interface HeadScores {
  prevToken: number;
  induction: number;
  meanLookBack: number;
  /** The look-back distance i-j holding the most attention over the repeat queries, and its share. */
  peakOffset: number;
  peakShare: number;
}

/** Scores of every head of one layer's pattern, [B, H, T, T] with T = 2·half + 1. */
export function headScores(pattern: Float32Array, shape: readonly number[], half: number): HeadScores[] {
  const [B, H, T, T2] = shape;
  if (T !== T2 || T !== 2 * half + 1) throw new Error(`pattern shape [${shape.join(', ')}] is not [batch, head, ${2 * half + 1}, ${2 * half + 1}]`);
  const at = (b: number, h: number, i: number, j: number) => pattern[((b * H + h) * T + i) * T + j];
  const out: HeadScores[] = [];
  for (let h = 0; h < H; h++) {
    let prev = 0;
    let ind = 0;
    let back = 0;
    const byOffset = new Float64Array(T);
    for (let b = 0; b < B; b++) {
      for (let i = 1; i <= 2 * half; i++) prev += at(b, h, i, i - 1);
      for (let i = half + 1; i <= 2 * half; i++) {
        ind += at(b, h, i, i - half + 1);
        for (let j = 0; j <= i; j++) {
          back += at(b, h, i, j) * (i - j);
          byOffset[i - j] += at(b, h, i, j);
        }
      }
    }
    let peakOffset = 0;
    for (let d = 1; d < T; d++) if (byOffset[d] > byOffset[peakOffset]) peakOffset = d;
    out.push({
      prevToken: prev / (B * 2 * half),
      induction: ind / (B * half),
      meanLookBack: back / (B * half),
      peakOffset,
      peakShare: byOffset[peakOffset] / (B * half),
    });
  }
  return out;
}

/**
 * Mean cross-entropy of the repeat: positions half .. 2·half-1 predicting tokens half+1 .. 2·half,
 * over every sequence (the fixture's `repeated_half_loss`; the metric spec `loss:half:2·half`).
 * `logits` are [B, T, V].
 */
export function repeatLoss(logits: Float32Array, shape: readonly number[], seqs: readonly (readonly number[])[], half: number): number {
  const [B, T, V] = shape;
  let sum = 0;
  for (let b = 0; b < B; b++) {
    for (let t = half; t < 2 * half; t++) {
      const row = logits.subarray((b * T + t) * V, (b * T + t + 1) * V);
      let mx = -Infinity;
      for (const v of row) mx = Math.max(mx, v);
      let z = 0;
      for (const v of row) z += Math.exp(v - mx);
      sum -= row[seqs[b][t + 1]] - mx - Math.log(z);
    }
  }
  return sum / (B * half);
}
