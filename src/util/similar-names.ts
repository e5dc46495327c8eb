/** "Did you mean …" for error messages: the names nearest to a wrong one by edit distance. */

/** Levenshtein distance (insert, delete, substitute, each costing 1). */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

/** Up to `k` of `names` closest to `want`, nearest first (ties alphabetical). */
export function similarNames(want: string, names: readonly string[], k = 3): string[] {
  return names
    .map((n) => ({ n, d: editDistance(want, n) }))
    .sort((x, y) => x.d - y.d || (x.n < y.n ? -1 : 1))
    .slice(0, k)
    .map((x) => x.n);
}
