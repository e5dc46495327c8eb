/** CPU reference for `token-loss.ts` (float64): the loss over scored rows and d loss / d logits. */
import { NO_TARGET } from '../../../shaders/token-loss.wgsl.ts';

/**
 * logits [R, V], targets [R] (NO_TARGET: unscored). Returns the mean cross-entropy over scored rows
 * and writes dlogits [R, V] = (softmax - onehot) / N on scored rows, 0 elsewhere.
 */
export function tokenLossCpu(dlogits: Float32Array | Float64Array, logits: ArrayLike<number>, targets: ArrayLike<number>, R: number, V: number): number {
  let n = 0;
  for (let r = 0; r < R; r++) if (targets[r] !== NO_TARGET) n++;
  const scale = 1 / Math.max(n, 1);
  let sum = 0;
  for (let r = 0; r < R; r++) {
    const y = targets[r]!;
    if (y === NO_TARGET) {
      dlogits.fill(0, r * V, (r + 1) * V);
      continue;
    }
    let mx = -Infinity;
    for (let v = 0; v < V; v++) mx = Math.max(mx, logits[r * V + v]!);
    let z = 0;
    for (let v = 0; v < V; v++) z += Math.exp(logits[r * V + v]! - mx);
    const lse = mx + Math.log(z);
    sum += lse - logits[r * V + y]!;
    for (let v = 0; v < V; v++) dlogits[r * V + v] = (Math.exp(logits[r * V + v]! - lse) - (v === y ? 1 : 0)) * scale;
  }
  return sum * scale;
}
