/** Error messages for hook names: the nearest real names by edit distance. */

/** "unknown hook point X; did you mean Y, Z?" with the nearest names by edit distance. */
export function unknownHookMessage(name: string, known: string[]): string {
  const near = known
    .map((k) => [k, editDistance(name, k)] as const)
    .sort((a, b) => a[1] - b[1])
    .slice(0, 3)
    .map(([k]) => k);
  return `unknown hook point "${name}"; did you mean ${near.join(', ')}?`;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length];
}
