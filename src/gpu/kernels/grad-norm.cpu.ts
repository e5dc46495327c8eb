/** CPU reference for `grad-norm.ts`: the global L2 norm of several gradients and the clipping factor. */

/** sqrt(sum of squares over every tensor), in float64; scale = min(1, maxNorm / (norm + 1e-6)), or 1 without clipping. */
export function gradNormCpu(grads: readonly Float32Array[], maxNorm: number): { norm: number; scale: number } {
  let ss = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) ss += g[i]! * g[i]!;
  const norm = Math.sqrt(ss);
  return { norm, scale: maxNorm > 0 ? Math.min(1, maxNorm / (norm + 1e-6)) : 1 };
}
