/** CPU reference for `rotary.ts` (rotate-half layout; dims >= rot pass through). */
export function rotaryCpu(y: Float32Array, x: Float32Array, cos: Float32Array, sin: Float32Array, B: number, T: number, H: number, dh: number, rot: number, pos0 = 0): void {
  const half = rot / 2;
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      for (let h = 0; h < H; h++) {
        const o = ((b * T + t) * H + h) * dh;
        const row = (pos0 + t) * half;
        for (let d = 0; d < dh; d++) {
          if (d >= rot) y[o + d] = x[o + d];
          else if (d < half) y[o + d] = x[o + d] * cos[row + d] - x[o + d + half] * sin[row + d];
          else y[o + d] = x[o + d] * cos[row + d - half] + x[o + d - half] * sin[row + d - half];
        }
      }
}
