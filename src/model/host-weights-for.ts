/** The weight mapper for a config's family. */
import type { TensorLookup } from './checkpoint.ts';
import type { ModelConfig } from './config.ts';
import { gpt2HostWeights } from './gpt2-weights.ts';
import type { HostWeights } from './host-weights.ts';
import { llamaHostWeights } from './llama-weights.ts';
import { neoxHostWeights } from './neox-weights.ts';
import { gemma3HostWeights } from './gemma3-weights.ts';
import { WeightsError } from './weight-lookup.ts';

/**
 * Reads the tensors the family uses (each from its file, one at a time) into host weights, and
 * refuses a checkpoint holding a bias the config leaves out (attention_bias or mlp_bias false
 * beside `X.bias` tensors): transformers would drop it without a word.
 */
export async function hostWeightsFor(t: TensorLookup, cfg: ModelConfig, hf: unknown): Promise<HostWeights> {
  const read = new Set<string>();
  const seen: TensorLookup = { ...t, names: t.names, has: (n) => t.has(n), info: (n) => t.info(n), read: (n) => (read.add(n), t.read(n)) };
  const hfc = hf as Record<string, unknown>;
  let w: HostWeights;
  switch (cfg.family) {
    case 'gpt2':
      w = await gpt2HostWeights(seen, cfg);
      break;
    case 'neox':
      w = await neoxHostWeights(seen, cfg, hfc);
      break;
    case 'llama':
      w = await llamaHostWeights(seen, cfg, hfc);
      break;
    case 'gemma3':
      w = await gemma3HostWeights(seen, cfg);
      break;
  }
  const unused = t.names.filter((n) => n.endsWith('.bias') && !read.has(n) && read.has(n.replace(/\.bias$/, '.weight')));
  if (unused.length) {
    const flags = ['attention_bias', 'mlp_bias'].filter((f) => f in hfc).map((f) => `${f} = ${JSON.stringify(hfc[f])}`);
    throw new WeightsError(
      `the checkpoint has biases the config leaves out (${unused
        .slice(0, 3)
        .map((n) => `"${n}"`)
        .join(', ')}${unused.length > 3 ? `, ${unused.length - 3} more` : ''}; ` + `config.json: ${flags.join(', ') || 'no bias flags'}): set the flag to true to use them, or remove them`,
    );
  }
  return w;
}
