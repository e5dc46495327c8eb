/**
 * The most probable next tokens from a row of logits, for figures that list them
 * (`<pb-top-tokens>`, `<pb-logit-lens>`). The softmax is over the whole vocabulary; selection
 * keeps a sorted list of k, so a 50257-token row costs one pass.
 */
export interface TokenProb {
  id: number;
  /** Probability (softmax of the row). */
  p: number;
}

/** The k most probable tokens of `logits` (one row, [d_vocab]), most probable first. */
export function topTokens(logits: ArrayLike<number>, k: number): TokenProb[] {
  const V = logits.length;
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < V; i++) sum += Math.exp(logits[i] - max);
  const best: { id: number; x: number }[] = [];
  for (let i = 0; i < V; i++) {
    const x = logits[i];
    if (best.length === k && x <= best[k - 1].x) continue;
    let at = best.length;
    while (at > 0 && best[at - 1].x < x) at--;
    best.splice(at, 0, { id: i, x });
    if (best.length > k) best.pop();
  }
  return best.map((b) => ({ id: b.id, p: Math.exp(b.x - max) / sum }));
}

/** p(token) under the softmax of one logits row. */
export function probabilityOf(logits: ArrayLike<number>, token: number): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return Math.exp(logits[token] - max) / sum;
}
