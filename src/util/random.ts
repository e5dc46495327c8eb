/**
 * Seeded random numbers for training, on the CPU.
 *
 * `draw` / `uniform01` are the CPU twins of `RANDOM_WGSL` (shaders/synthetic.wgsl.ts), bit for bit:
 * a counter-based hash of (seed, step, counter), so GPU-generated batches can be checked here.
 * `SeededRandom` is a sequential generator for initial weights (drawn on the CPU once, uploaded).
 */

/** PCG's output permutation on one u32 (Jarzynski and Olano 2020). */
export function pcgHash(v: number): number {
  const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** hash(counter + hash(step + hash(seed))), u32 arithmetic wrapping as in WGSL. */
export function draw(seed: number, step: number, counter: number): number {
  return pcgHash((counter + pcgHash((step + pcgHash(seed)) >>> 0)) >>> 0);
}

/** A float in [0, 1) with 24 random bits: exactly the f32 the GPU computes. */
export function uniform01(seed: number, step: number, counter: number): number {
  return (draw(seed, step, counter) >>> 8) * 2 ** -24;
}

/** A sequential generator (mulberry32) for initial weights: uniform, normal (Box-Muller). */
export class SeededRandom {
  private s: number;

  constructor(seed: number) {
    this.s = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** n values from N(mean, std^2). */
  normal(n: number, std = 1, mean = 0): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const u = 1 - this.next(); // (0, 1]: the log stays finite
      out[i] = mean + std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
    }
    return out;
  }

  /** An integer in [0, k). */
  int(k: number): number {
    return Math.floor(this.next() * k);
  }
}
