/**
 * CPU reference for `kv-cache.ts`: row b takes positions before starts[b] (default q0) from
 * past row pastRows[b] (default 0) of past [rows, pastLen, HD].
 */
export function kvAssembleCpu(
  full: Float32Array,
  past: Float32Array,
  fresh: Float32Array,
  B: number,
  T: number,
  q0: number,
  HD: number,
  starts?: readonly number[],
  pastRows?: readonly number[],
  pastLen = starts ? Math.max(q0, ...starts) : q0,
): void {
  for (let b = 0; b < B; b++) {
    const s = starts?.[b] ?? q0;
    const r = pastRows?.[b] ?? 0;
    for (let t = 0; t < T; t++) for (let e = 0; e < HD; e++) full[(b * T + t) * HD + e] = t < s ? past[(r * pastLen + t) * HD + e] : fresh[(b * (T - q0) + t - q0) * HD + e];
  }
}
