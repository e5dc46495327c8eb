/**
 * Rotary frequencies and the cos/sin tables the rotary kernel reads, computed as Hugging Face
 * computes them (float32 inverse frequencies, float32 angles), with the `rope_scaling` types
 * Patchbay supports: none, `linear`, and `llama3`.
 */
import type { ModelConfig, RopeScaling } from './config.ts';

const f = Math.fround;

/** inv_freq[i] = 1 / base^(2i / rot), i < rot / 2, then scaled. */
export function inverseFrequencies(rot: number, base: number, scaling: RopeScaling | null): Float32Array {
  const inv = new Float32Array(rot / 2);
  for (let i = 0; i < rot / 2; i++) inv[i] = f(1 / f(base ** f((2 * i) / rot)));
  if (!scaling) return inv;
  if (scaling.type === 'linear') return inv.map((w) => f(w / scaling.factor));
  // llama3: long wavelengths slowed by `factor`, short ones kept, a smooth blend between.
  const { factor, low_freq_factor: lo, high_freq_factor: hi, original_max_position_embeddings: n0 } = scaling;
  const lowWavelen = n0 / lo;
  const highWavelen = n0 / hi;
  return inv.map((w) => {
    const wavelen = (2 * Math.PI) / w;
    if (wavelen < highWavelen) return w;
    if (wavelen > lowWavelen) return f(w / factor);
    const smooth = (n0 / wavelen - lo) / (hi - lo);
    return f((1 - smooth) * (w / factor) + smooth * w);
  });
}

/** cos and sin of (position x inv_freq), [n_ctx, rot / 2] each. */
export function rotaryTables(cfg: ModelConfig): { cos: Float32Array; sin: Float32Array } {
  const half = cfg.rotary_dim / 2;
  const inv = inverseFrequencies(cfg.rotary_dim, cfg.rotary_base, cfg.rope_scaling);
  const cos = new Float32Array(cfg.n_ctx * half);
  const sin = new Float32Array(cfg.n_ctx * half);
  for (let p = 0; p < cfg.n_ctx; p++) {
    for (let i = 0; i < half; i++) {
      const angle = f(p * inv[i]);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}
