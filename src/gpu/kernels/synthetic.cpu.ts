/** CPU reference for `synthetic.ts`, bit for bit (the same hash, `src/util/random.ts`). */
import { uniform01 } from '../../util/random.ts';

/**
 * Toy Models of Superposition's features for update number t: x [I, B, F], element idx present
 * with probability prob[i] (uniform in [0, 1) when present, else 0).
 */
export function sparseFeaturesCpu(x: Float32Array, prob: Float32Array, B: number, I: number, F: number, seed: number, t: number): void {
  for (let idx = 0; idx < B * I * F; idx++) {
    const i = Math.floor(idx / (B * F));
    const value = uniform01(seed, t, 2 * idx);
    x[idx] = uniform01(seed, t, 2 * idx + 1) <= prob[i]! ? value : 0;
  }
}
