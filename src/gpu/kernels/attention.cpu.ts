/**
 * CPU reference for `attention.ts`. q, z: [B, T, H, dh]; k, v: [B, T, Hkv, dh]; scores, pattern: [B, H, T, T].
 * Masked scores are -Infinity, as TransformerLens' `hook_attn_scores` holds them; `window` > 0
 * lets query i see keys i - window + 1 .. i only.
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
  /** Sliding window: query i sees keys i - window + 1 .. i only (0: all). */
  window = 0,
): void {
  const seen = (i: number, j: number) => j <= i && (window === 0 || j > i - window);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < T; i++) {
        const row = ((b * H + h) * T + i) * T;
        let mx = -Infinity;
        for (let j = 0; j < T; j++) {
          if (!seen(i, j)) {
            scores[row + j] = -Infinity;
            continue;
          }
          let acc = 0;
          for (let d = 0; d < dh; d++) acc += q[((b * T + i) * H + h) * dh + d] * k[((b * T + j) * Hkv + Math.floor(h / (H / Hkv))) * dh + d];
          scores[row + j] = acc * scale;
          mx = Math.max(mx, scores[row + j]);
        }
        let sum = 0;
        for (let j = 0; j <= i; j++) if (seen(i, j)) sum += Math.exp(scores[row + j] - mx);
        for (let j = 0; j < T; j++) pattern[row + j] = seen(i, j) ? Math.exp(scores[row + j] - mx) / sum : 0;
        for (let d = 0; d < dh; d++) {
          let acc = 0;
          for (let j = 0; j <= i; j++) acc += pattern[row + j] * v[((b * T + j) * Hkv + Math.floor(h / (H / Hkv))) * dh + d];
          z[((b * T + i) * H + h) * dh + d] = acc;
        }
      }
    }
  }
}
