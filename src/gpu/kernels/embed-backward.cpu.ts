/** CPU reference for `embed-backward.ts`: dtable[ids[r]] += dsrc[r] over a whole (unchunked) table. */
export function scatterAddCpu(dtable: Float32Array | Float64Array, dsrc: ArrayLike<number>, ids: ArrayLike<number>, C: number, accumulate = false): void {
  if (!accumulate) dtable.fill(0);
  for (let r = 0; r < ids.length; r++) for (let c = 0; c < C; c++) dtable[ids[r] * C + c] += dsrc[r * C + c];
}

/** The gather's forward in float64 (out[r] = table[ids[r]]), for finite differences. */
export function gather64(table: ArrayLike<number>, ids: ArrayLike<number>, C: number): Float64Array {
  const out = new Float64Array(ids.length * C);
  for (let r = 0; r < ids.length; r++) for (let c = 0; c < C; c++) out[r * C + c] = table[ids[r] * C + c];
  return out;
}
