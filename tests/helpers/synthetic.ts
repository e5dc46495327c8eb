/** Random GPT-2 weights for a given config (seeded), for shapes no fixture has. */
import { gpt2LikeConfig, type ModelConfig } from '../../src/model/config.ts';
import type { HostMatrix, HostWeights } from '../../src/model/host-weights.ts';
import { mulberry32 } from '../kernels/random.ts';

export { mulberry32 };

export function gpt2Config(over: Partial<ModelConfig>): ModelConfig {
  return gpt2LikeConfig({ d_model: 32, n_layers: 2, n_heads: 4, d_mlp: 128, n_ctx: 16, d_vocab: 100, ...over });
}

/** Weights uniform in [-scale, scale); LayerNorm gains around 1. */
export function randomWeights(cfg: ModelConfig, seed = 1, scale = 0.2): HostWeights {
  const rnd = mulberry32(seed);
  const m = (shape: number[], center = 0): HostMatrix => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = center + (rnd() * 2 - 1) * scale;
    return { data, shape };
  };
  const C = cfg.d_model;
  const HD = cfg.n_heads * cfg.d_head;
  return {
    W_E: m([cfg.d_vocab, C]),
    W_pos: m([cfg.n_ctx, C]),
    lnf_w: m([C], 1),
    lnf_b: m([C]),
    layers: Array.from({ length: cfg.n_layers }, () => ({
      ln1_w: m([C], 1),
      ln1_b: m([C]),
      W_Q: m([C, HD]),
      b_Q: m([HD]),
      W_K: m([C, HD]),
      b_K: m([HD]),
      W_V: m([C, HD]),
      b_V: m([HD]),
      W_O: m([HD, C]),
      b_O: m([C]),
      ln2_w: m([C], 1),
      ln2_b: m([C]),
      W_in: m([C, cfg.d_mlp]),
      b_in: m([cfg.d_mlp]),
      W_out: m([cfg.d_mlp, C]),
      b_out: m([C]),
    })),
  };
}
