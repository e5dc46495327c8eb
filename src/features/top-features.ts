/** The most active SAE features at each position, from the activations `hook_sae_acts_post` holds. */

/** The k largest positive entries of each row of acts [T, F], largest first (ties: lower feature first). */
export function topFeatures(acts: Float32Array, T: number, F: number, k: number): Array<Array<{ feature: number; act: number }>> {
  return Array.from({ length: T }, (_, p) => {
    const row = acts.subarray(p * F, (p + 1) * F);
    const live: number[] = [];
    for (let f = 0; f < F; f++) if (row[f] > 0) live.push(f);
    return live
      .sort((a, b) => row[b] - row[a] || a - b)
      .slice(0, k)
      .map((f) => ({ feature: f, act: row[f] }));
  });
}
