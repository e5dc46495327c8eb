/**
 * CPU reference for `attention-backward.ts` in float64, full passes (query row i = position i):
 * q, z [B, T, H, dh]; k, v [B, T, Hkv, dh]; pattern, scores [B, H, T, T]. Also the float64
 * forward that finite differences differentiate.
 */
type Out = Float32Array | Float64Array;

const g = (h: number, H: number, Hkv: number) => Math.floor(h / (H / Hkv));

/** A layer's attention scale (default 1 / sqrt(dh)) and sliding window (query i sees keys i - window < j <= i; default all). */
export interface AttentionOpts {
  scale?: number;
  window?: number;
}

/** scores (masked -Infinity), pattern and z in float64. */
export function attentionForward64(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, B: number, T: number, H: number, dh: number, Hkv = H, opts: AttentionOpts = {}) {
  const scores = new Float64Array(B * H * T * T);
  const pattern = new Float64Array(B * H * T * T);
  const z = new Float64Array(B * T * H * dh);
  const scale = opts.scale ?? 1 / Math.sqrt(dh);
  const window = opts.window ?? T;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < T; i++) {
        const row = ((b * H + h) * T + i) * T;
        let mx = -Infinity;
        for (let j = 0; j < T; j++) {
          if (j > i || j <= i - window) {
            scores[row + j] = -Infinity;
            continue;
          }
          let s = 0;
          for (let d = 0; d < dh; d++) s += q[((b * T + i) * H + h) * dh + d] * k[((b * T + j) * Hkv + g(h, H, Hkv)) * dh + d];
          scores[row + j] = s * scale;
          mx = Math.max(mx, scores[row + j]);
        }
        let sum = 0;
        for (let j = 0; j <= i; j++) sum += Math.exp(scores[row + j] - mx); // masked: exp(-inf) = 0
        for (let j = 0; j <= i; j++) pattern[row + j] = Math.exp(scores[row + j] - mx) / sum;
        for (let d = 0; d < dh; d++) {
          let s = 0;
          for (let j = 0; j <= i; j++) s += pattern[row + j] * v[((b * T + j) * Hkv + g(h, H, Hkv)) * dh + d];
          z[((b * T + i) * H + h) * dh + d] = s;
        }
      }
  return { scores, pattern, z };
}

/** dpattern[b, h, i, j] = sum_d dz[b, i, h, d] v[b, j, g(h), d] for every j. */
export function attnDPatternCpu(dpattern: Out, dz: ArrayLike<number>, v: ArrayLike<number>, B: number, T: number, H: number, dh: number, Hkv = H): void {
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < T; i++)
        for (let j = 0; j < T; j++) {
          let s = 0;
          for (let d = 0; d < dh; d++) s += dz[((b * T + i) * H + h) * dh + d] * v[((b * T + j) * Hkv + g(h, H, Hkv)) * dh + d];
          dpattern[((b * H + h) * T + i) * T + j] = s;
        }
}

/** dv[b, j, g, d] = sum over g's query heads and i >= j of pattern dz. */
export function attnDVCpu(dv: Out, pattern: ArrayLike<number>, dz: ArrayLike<number>, B: number, T: number, H: number, dh: number, Hkv = H): void {
  dv.fill(0);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < T; i++)
        for (let j = 0; j <= i; j++) for (let d = 0; d < dh; d++) dv[((b * T + j) * Hkv + g(h, H, Hkv)) * dh + d] += pattern[((b * H + h) * T + i) * T + j] * dz[((b * T + i) * H + h) * dh + d];
}

/** dscores = pattern (dpattern - sum pattern dpattern) below the diagonal, 0 above. */
export function attnSoftmaxBackwardCpu(dscores: Out, pattern: ArrayLike<number>, dpattern: ArrayLike<number>, B: number, T: number, H: number): void {
  for (let r = 0; r < B * H * T; r++) {
    const i = r % T;
    const base = r * T;
    let dot = 0;
    for (let j = 0; j <= i; j++) dot += pattern[base + j] * dpattern[base + j];
    for (let j = 0; j < T; j++) dscores[base + j] = j <= i ? pattern[base + j] * (dpattern[base + j] - dot) : 0;
  }
}

/** dq and dk from dscores (times the scores' scale, default 1/sqrt(dh)). */
export function attnDQKCpu(
  dq: Out,
  dk: Out,
  dscores: ArrayLike<number>,
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  B: number,
  T: number,
  H: number,
  dh: number,
  Hkv = H,
  scale = 1 / Math.sqrt(dh),
): void {
  dq.fill(0);
  dk.fill(0);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < T; i++)
        for (let j = 0; j <= i; j++) {
          const s = dscores[((b * H + h) * T + i) * T + j] * scale;
          for (let d = 0; d < dh; d++) {
            dq[((b * T + i) * H + h) * dh + d] += s * k[((b * T + j) * Hkv + g(h, H, Hkv)) * dh + d];
            dk[((b * T + j) * Hkv + g(h, H, Hkv)) * dh + d] += s * q[((b * T + i) * H + h) * dh + d];
          }
        }
}
