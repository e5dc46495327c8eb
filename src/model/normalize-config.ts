/**
 * Hugging Face `config.json` -> Patchbay's `ModelConfig`. Only GPT-2 for now; everything that
 * would change the forward pass beyond what `ModelConfig` can express is rejected here, so the
 * forward pass never silently computes the wrong model.
 */
import type { ModelConfig } from './config.ts';

export const SUPPORTED_ARCHITECTURES = ['GPT2LMHeadModel', 'GPT2Model'] as const;

/** The checkpoint's architecture is not one Patchbay runs. */
export class UnsupportedArchitectureError extends Error {
  override name = 'UnsupportedArchitectureError';
}

/** The config is malformed or asks for something the GPT-2 forward pass does not implement. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

function positiveInt(hf: Record<string, unknown>, field: string, where: string): number {
  const v = hf[field];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw new ConfigError(`${where}: "${field}" must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

export function normalizeConfig(hf: unknown, where = 'config.json'): ModelConfig {
  if (typeof hf !== 'object' || hf === null || Array.isArray(hf)) {
    throw new ConfigError(`${where}: expected a JSON object, got ${Array.isArray(hf) ? 'an array' : hf === null ? 'null' : typeof hf}`);
  }
  const c = hf as Record<string, unknown>;
  const supported = SUPPORTED_ARCHITECTURES.join(', ');

  const archs = c.architectures;
  const arch = Array.isArray(archs) ? archs[0] : undefined;
  if (typeof arch !== 'string' || !(SUPPORTED_ARCHITECTURES as readonly string[]).includes(arch)) {
    const given = archs === undefined ? 'no "architectures" field' : `architectures ${JSON.stringify(archs)}`;
    throw new UnsupportedArchitectureError(`${where}: unsupported model (${given}); supported: ${supported}`);
  }

  const act = c.activation_function ?? 'gelu_new'; // GPT2Config's default
  if (act !== 'gelu_new') {
    throw new ConfigError(`${where}: activation_function ${JSON.stringify(act)} is not supported for GPT-2; only "gelu_new"`);
  }
  // Attention variants GPT2Config allows but ModelConfig cannot express.
  if (c.scale_attn_weights === false) {
    throw new ConfigError(`${where}: scale_attn_weights = false (unscaled attention) is not supported`);
  }
  if (c.scale_attn_by_inverse_layer_idx === true) {
    throw new ConfigError(`${where}: scale_attn_by_inverse_layer_idx = true is not supported`);
  }
  if (c.add_cross_attention === true) {
    throw new ConfigError(`${where}: add_cross_attention = true (encoder-decoder GPT-2) is not supported`);
  }

  const d_model = positiveInt(c, 'n_embd', where);
  const n_layers = positiveInt(c, 'n_layer', where);
  const n_heads = positiveInt(c, 'n_head', where);
  if (d_model % n_heads !== 0) {
    throw new ConfigError(`${where}: n_embd ${d_model} is not divisible by n_head ${n_heads}`);
  }
  const d_mlp = c.n_inner === null || c.n_inner === undefined ? 4 * d_model : positiveInt(c, 'n_inner', where);
  const n_ctx = positiveInt(c, c.n_positions !== undefined ? 'n_positions' : 'n_ctx', where);
  const d_vocab = positiveInt(c, 'vocab_size', where);

  const eps = c.layer_norm_epsilon ?? 1e-5; // GPT2Config's default
  if (typeof eps !== 'number' || !Number.isFinite(eps) || eps <= 0) {
    throw new ConfigError(`${where}: "layer_norm_epsilon" must be a positive number, got ${JSON.stringify(eps)}`);
  }
  const tied = c.tie_word_embeddings ?? true;
  if (typeof tied !== 'boolean') {
    throw new ConfigError(`${where}: "tie_word_embeddings" must be true or false, got ${JSON.stringify(tied)}`);
  }

  return {
    architecture: arch,
    family: 'gpt2',
    d_model,
    n_layers,
    n_heads,
    d_head: d_model / n_heads,
    d_mlp,
    n_ctx,
    d_vocab,
    act_fn: 'gelu_new',
    eps,
    tied_embeddings: tied,
  };
}
