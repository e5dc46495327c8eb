/** CPU reference for `embed.ts`: out[r, :] = table[ids[r], :] * scale (one fp32 multiply). */
export function gatherCpu(out: Float32Array, ids: ArrayLike<number>, table: Float32Array, n: number, C: number, scale = 1): void {
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < C; c++) out[r * C + c] = table[ids[r] * C + c] * scale;
  }
}
