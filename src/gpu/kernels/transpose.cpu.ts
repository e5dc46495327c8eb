/** CPU reference for `transpose.ts`: out [C, R] = x [R, C] transposed. */
export function transposeCpu(out: Float32Array, x: Float32Array, R: number, C: number): void {
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) out[c * R + r] = x[r * C + c]!;
}
