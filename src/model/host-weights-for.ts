/** The weight mapper for a config's family. */
import type { TensorLookup } from './checkpoint.ts';
import type { ModelConfig } from './config.ts';
import { gpt2HostWeights } from './gpt2-weights.ts';
import type { HostWeights } from './host-weights.ts';
import { llamaHostWeights } from './llama-weights.ts';
import { neoxHostWeights } from './neox-weights.ts';
import { gemma3HostWeights } from './gemma3-weights.ts';

export function hostWeightsFor(t: TensorLookup, cfg: ModelConfig, hf: unknown): HostWeights {
  switch (cfg.family) {
    case 'gpt2':
      return gpt2HostWeights(t, cfg);
    case 'neox':
      return neoxHostWeights(t, cfg);
    case 'llama':
      return llamaHostWeights(t, cfg, hf as Record<string, unknown>);
    case 'gemma3':
      return gemma3HostWeights(t, cfg);
  }
}
