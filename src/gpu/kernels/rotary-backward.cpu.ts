/** CPU reference for `rotary-backward.ts`: dy rotated back (the transpose of the forward's rotation). */
export function rotaryBackwardCpu(
  dx: Float32Array | Float64Array,
  dy: ArrayLike<number>,
  cos: ArrayLike<number>,
  sin: ArrayLike<number>,
  B: number,
  T: number,
  H: number,
  dh: number,
  rot: number,
  pos0 = 0,
): void {
  const half = rot / 2;
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      for (let h = 0; h < H; h++) {
        const o = ((b * T + t) * H + h) * dh;
        const row = (pos0 + t) * half;
        for (let d = 0; d < dh; d++) {
          if (d >= rot) dx[o + d] = dy[o + d];
          else if (d < half) dx[o + d] = dy[o + d] * cos[row + d] + dy[o + d + half] * sin[row + d];
          else dx[o + d] = dy[o + d] * cos[row + d - half] - dy[o + d - half] * sin[row + d - half];
        }
      }
}
