/**
 * What Toy Models of Superposition reads off a trained W [I, F, H] (instance i's row f is feature
 * f's direction in the hidden space, W_f), all on the CPU (W is small):
 *
 *   gram           W W^T [F, F] of an instance: the paper's "W^T W" (its W is [H, F])
 *   norms          ||W_f||: how much of feature f the model represents
 *   superposition  sum_{g != f} (W^_f . W_g)^2, W^_f = W_f / ||W_f||: how much of the other features
 *                  shares f's direction (0: f has a dimension to itself); the paper's colour
 *   dimensionality D_f = ||W_f||^2 / sum_g (W^_f . W_g)^2: the fraction of a dimension f gets
 *   featuresPerDim ||W||_F^2 / H: features per hidden dimension (the paper's 1 / D*)
 */

/** W W^T of instance i: [F, F]. */
export function gram(W: Float32Array, i: number, F: number, H: number): Float32Array {
  const out = new Float32Array(F * F);
  const o = i * F * H;
  for (let f = 0; f < F; f++)
    for (let g = 0; g < F; g++) {
      let acc = 0;
      for (let k = 0; k < H; k++) acc += W[o + f * H + k]! * W[o + g * H + k]!;
      out[f * F + g] = acc;
    }
  return out;
}

/** ||W_f|| for every instance and feature: [I, F]. */
export function featureNorms(W: Float32Array, I: number, F: number, H: number): Float32Array {
  const out = new Float32Array(I * F);
  for (let r = 0; r < I * F; r++) {
    let acc = 0;
    for (let k = 0; k < H; k++) acc += W[r * H + k]! ** 2;
    out[r] = Math.sqrt(acc);
  }
  return out;
}

/** sum_{g != f} (W^_f . W_g)^2 for every instance and feature: [I, F] (0 for a feature not represented). */
export function superposition(W: Float32Array, I: number, F: number, H: number): Float32Array {
  const out = new Float32Array(I * F);
  for (let i = 0; i < I; i++) {
    const G = gram(W, i, F, H);
    for (let f = 0; f < F; f++) {
      const n = Math.sqrt(G[f * F + f]!);
      if (n < 1e-8) continue;
      let acc = 0;
      for (let g = 0; g < F; g++) if (g !== f) acc += (G[f * F + g]! / n) ** 2;
      out[i * F + f] = acc;
    }
  }
  return out;
}

/** D_f = ||W_f||^2 / sum_g (W^_f . W_g)^2 for every instance and feature: [I, F] (0 when not represented). */
export function featureDimensionality(W: Float32Array, I: number, F: number, H: number): Float32Array {
  const out = new Float32Array(I * F);
  for (let i = 0; i < I; i++) {
    const G = gram(W, i, F, H);
    for (let f = 0; f < F; f++) {
      const n2 = G[f * F + f]!;
      if (n2 < 1e-16) continue;
      let acc = 0;
      for (let g = 0; g < F; g++) acc += G[f * F + g]! ** 2 / n2;
      out[i * F + f] = n2 / acc;
    }
  }
  return out;
}

/** ||W||_F^2 / H per instance: features represented per hidden dimension. [I] */
export function featuresPerDimension(W: Float32Array, I: number, F: number, H: number): Float32Array {
  const out = new Float32Array(I);
  for (let i = 0; i < I; i++) {
    let acc = 0;
    for (let k = 0; k < F * H; k++) acc += W[i * F * H + k]! ** 2;
    out[i] = acc / H;
  }
  return out;
}
