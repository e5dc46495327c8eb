/**
 * CPU reference for `attention.ts`. q, z: [B, T, H, dh]; k, v: [B, T, Hkv, dh]; scores, pattern: [B, H, T, T].
 * Masked scores are -Infinity, as TransformerLens' `hook_attn_scores` holds them.
 */
export function attentionCpu(
  scores: Float32Array,
  pattern: Float32Array,
  z: Float32Array,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  B: number,
  T: number,
  H: number,
  dh: number,
  /** Key/value heads (grouped-query attention): query head h reads head h / (H / Hkv). */
  Hkv = H,
  /** The scores' factor. */
  scale = 1 / Math.sqrt(dh),
): void {
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < T; i++) {
        const row = ((b * H + h) * T + i) * T;
        let mx = -Infinity;
        for (let j = 0; j < T; j++) {
          if (j > i) {
            scores[row + j] = -Infinity;
            continue;
          }
          let acc = 0;
          for (let d = 0; d < dh; d++) acc += q[((b * T + i) * H + h) * dh + d] * k[((b * T + j) * Hkv + Math.floor(h / (H / Hkv))) * dh + d];
          scores[row + j] = acc * scale;
          mx = Math.max(mx, scores[row + j]);
        }
        let sum = 0;
        for (let j = 0; j <= i; j++) sum += Math.exp(scores[row + j] - mx);
        for (let j = 0; j < T; j++) pattern[row + j] = j <= i ? Math.exp(scores[row + j] - mx) / sum : 0;
        for (let d = 0; d < dh; d++) {
          let acc = 0;
          for (let j = 0; j <= i; j++) acc += pattern[row + j] * v[((b * T + j) * Hkv + Math.floor(h / (H / Hkv))) * dh + d];
          z[((b * T + i) * H + h) * dh + d] = acc;
        }
      }
    }
  }
}
