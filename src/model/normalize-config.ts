/**
 * Hugging Face `config.json` -> Patchbay's `ModelConfig`, for GPT-2, GPT-NeoX (Pythia) and
 * Llama-style models (Llama, Mistral, Qwen2). Everything that would change the forward pass
 * beyond what `ModelConfig` can express is rejected here, so the forward pass never silently
 * computes the wrong model.
 */
import type { ModelConfig, RopeScaling } from './config.ts';
import { gemma3Config } from './gemma3-config.ts';

export const SUPPORTED_ARCHITECTURES = [
  'GPT2LMHeadModel',
  'GPT2Model',
  'GPTNeoXForCausalLM',
  'LlamaForCausalLM',
  'MistralForCausalLM',
  'Qwen2ForCausalLM',
  'Qwen3ForCausalLM',
  'Gemma3ForCausalLM',
] as const;

/**
 * The `model_type` each architecture's config has (transformers picks the config class by it).
 * A config naming another is refused; an architecture missing here is not checked.
 */
export const MODEL_TYPES: Readonly<Record<string, readonly string[]>> = {
  GPT2LMHeadModel: ['gpt2'],
  GPT2Model: ['gpt2'],
  GPTNeoXForCausalLM: ['gpt_neox'],
  LlamaForCausalLM: ['llama'],
  MistralForCausalLM: ['mistral'],
  Qwen2ForCausalLM: ['qwen2'],
  Qwen3ForCausalLM: ['qwen3'],
  Gemma3ForCausalLM: ['gemma3_text', 'gemma3'],
};

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

/**
 * A boolean flag: absent or null is `fallback`; anything but true or false (the string "false"
 * included, which transformers 5 also refuses) is an error naming the field.
 */
function flag(c: Record<string, unknown>, field: string, fallback: boolean, where: string): boolean {
  const v = c[field];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw new ConfigError(`${where}: "${field}" must be true or false, got ${JSON.stringify(v)}${typeof v === 'string' ? ' (a string)' : ''}`);
  return v;
}

export function normalizeConfig(hf: unknown, where = 'config.json'): ModelConfig {
  const c = asObject(hf, where);
  const arch = architectureOf(c, where);
  const types = MODEL_TYPES[arch];
  if (c.model_type !== undefined && types && !types.includes(c.model_type as string)) {
    throw new ConfigError(
      `${where}: model_type ${JSON.stringify(c.model_type)} does not match architectures ${JSON.stringify(c.architectures)} ` +
        `(a ${arch} config has model_type ${types.map((t) => JSON.stringify(t)).join(' or ')}); the config names two different models`,
    );
  }
  if (arch === 'GPTNeoXForCausalLM') return neoxConfig(c, arch, where);
  if (arch === 'LlamaForCausalLM' || arch === 'MistralForCausalLM' || arch === 'Qwen2ForCausalLM' || arch === 'Qwen3ForCausalLM') return llamaConfig(c, arch, where);
  if (arch === 'Gemma3ForCausalLM') return gemma3Config(c, arch, where);
  return gpt2Config(c, arch, where);
}

function asObject(hf: unknown, where: string): Record<string, unknown> {
  if (typeof hf !== 'object' || hf === null || Array.isArray(hf)) {
    throw new ConfigError(`${where}: expected a JSON object, got ${Array.isArray(hf) ? 'an array' : hf === null ? 'null' : typeof hf}`);
  }
  return hf as Record<string, unknown>;
}

function architectureOf(c: Record<string, unknown>, where: string): string {
  const archs = c.architectures;
  const arch = Array.isArray(archs) ? archs[0] : undefined;
  if (typeof arch !== 'string' || !(SUPPORTED_ARCHITECTURES as readonly string[]).includes(arch)) {
    const given = archs === undefined ? 'no "architectures" field' : `architectures ${JSON.stringify(archs)}`;
    throw new UnsupportedArchitectureError(`${where}: unsupported model (${given}); supported: ${SUPPORTED_ARCHITECTURES.join(', ')}`);
  }
  return arch;
}

function gpt2Config(c: Record<string, unknown>, arch: string, where: string): ModelConfig {
  const act = c.activation_function ?? 'gelu_new'; // GPT2Config's default
  if (act !== 'gelu_new') {
    throw new ConfigError(`${where}: activation_function ${JSON.stringify(act)} is not supported for GPT-2; only "gelu_new"`);
  }
  // Attention variants: unscaled scores, and scores divided by the layer number as well.
  const scaleWeights = flag(c, 'scale_attn_weights', true, where);
  const byLayer = flag(c, 'scale_attn_by_inverse_layer_idx', false, where);
  // Upcasting and reordering only changes precision below fp32, which the forward already uses.
  flag(c, 'reorder_and_upcast_attn', false, where);
  if (flag(c, 'add_cross_attention', false, where)) {
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
  const tied = flag(c, 'tie_word_embeddings', true, where);

  return {
    architecture: arch,
    family: 'gpt2',
    d_model,
    n_layers,
    n_heads,
    d_head: d_model / n_heads,
    n_key_value_heads: n_heads,
    d_mlp,
    n_ctx,
    d_vocab,
    act_fn: 'gelu_new',
    normalization: 'LN',
    eps,
    positional: 'learned',
    rotary_dim: 0,
    rotary_base: 10000,
    rope_scaling: null,
    parallel_attn_mlp: false,
    gated_mlp: false,
    tied_embeddings: tied,
    // Set only when they differ from the default (sqrt(d_head), no per-layer division).
    ...(scaleWeights ? {} : { attn_scale: 1 }),
    ...(byLayer ? { scale_attn_by_inverse_layer_idx: true } : {}),
  };
}

function positiveNumber(c: Record<string, unknown>, field: string, where: string, fallback?: number): number {
  const v = c[field] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new ConfigError(`${where}: "${field}" must be a positive number, got ${JSON.stringify(c[field])}`);
  }
  return v;
}

function activation(name: unknown, where: string, field: string): ModelConfig['act_fn'] {
  switch (name) {
    case 'gelu':
      return 'gelu';
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
      return 'gelu_new';
    case 'silu':
    case 'swish':
      return 'silu';
    case 'relu':
      return 'relu';
  }
  throw new ConfigError(`${where}: ${field} ${JSON.stringify(name)} is not supported; supported: gelu, gelu_new, gelu_pytorch_tanh, silu, relu`);
}

/** rope_theta and rope_scaling, from the old top-level fields or transformers 5's `rope_parameters`. */
function rope(c: Record<string, unknown>, where: string, thetaField = 'rope_theta'): { base: number; scaling: RopeScaling | null; partial?: number } {
  for (const field of ['rope_parameters', 'rope_scaling']) {
    const v = c[field];
    if (v !== undefined && v !== null && (typeof v !== 'object' || Array.isArray(v))) {
      throw new ConfigError(`${where}: "${field}" must be an object such as {"rope_type": "linear", "factor": 2}, got ${JSON.stringify(v)}`);
    }
  }
  const params = (c.rope_parameters ?? null) as Record<string, unknown> | null;
  const scaling = (c.rope_scaling ?? params ?? null) as Record<string, unknown> | null;
  const base = Number(params?.rope_theta ?? c[thetaField] ?? c.rope_theta ?? 10000);
  if (!Number.isFinite(base) || base <= 0) throw new ConfigError(`${where}: rope theta ${JSON.stringify(params?.rope_theta ?? c[thetaField])} is not a positive number`);
  const partial = params?.partial_rotary_factor as number | undefined;
  const type = scaling ? (scaling.rope_type ?? scaling.type ?? 'default') : 'default';
  if (type === 'default') return { base, scaling: null, partial };
  const num = (k: string) => {
    const v = scaling![k];
    if (typeof v !== 'number' || !(v > 0)) throw new ConfigError(`${where}: rope_scaling.${k} must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  };
  if (type === 'linear') return { base, scaling: { type: 'linear', factor: num('factor') }, partial };
  if (type === 'llama3') {
    return {
      base,
      scaling: {
        type: 'llama3',
        factor: num('factor'),
        low_freq_factor: num('low_freq_factor'),
        high_freq_factor: num('high_freq_factor'),
        original_max_position_embeddings: num('original_max_position_embeddings'),
      },
      partial,
    };
  }
  throw new ConfigError(`${where}: rope_scaling type ${JSON.stringify(type)} is not supported; supported: default, linear, llama3`);
}

function neoxConfig(c: Record<string, unknown>, arch: string, where: string): ModelConfig {
  const d_model = positiveInt(c, 'hidden_size', where);
  const n_heads = positiveInt(c, 'num_attention_heads', where);
  if (d_model % n_heads !== 0) throw new ConfigError(`${where}: hidden_size ${d_model} is not divisible by num_attention_heads ${n_heads}`);
  const d_head = d_model / n_heads;
  const r = rope(c, where, 'rotary_emb_base');
  const pct = r.partial ?? (c.rotary_pct as number | undefined) ?? 1;
  if (!(pct > 0 && pct <= 1)) throw new ConfigError(`${where}: rotary_pct ${JSON.stringify(pct)} must be in (0, 1]`);
  const rotary_dim = Math.floor(d_head * pct);
  if (rotary_dim % 2 !== 0) throw new ConfigError(`${where}: rotary dims ${rotary_dim} (d_head x rotary_pct) must be even`);
  const tied = flag(c, 'tie_word_embeddings', false, where);
  // attention_bias (query_key_value and dense biases, default true) is read by the weight mapper.
  flag(c, 'attention_bias', true, where);
  return {
    architecture: arch,
    family: 'neox',
    d_model,
    n_layers: positiveInt(c, 'num_hidden_layers', where),
    n_heads,
    d_head,
    n_key_value_heads: n_heads,
    d_mlp: positiveInt(c, 'intermediate_size', where),
    n_ctx: positiveInt(c, 'max_position_embeddings', where),
    d_vocab: positiveInt(c, 'vocab_size', where),
    act_fn: activation(c.hidden_act ?? 'gelu', where, 'hidden_act'),
    normalization: 'LN',
    eps: positiveNumber(c, 'layer_norm_eps', where, 1e-5),
    positional: 'rotary',
    rotary_dim,
    rotary_base: r.base,
    rope_scaling: r.scaling,
    parallel_attn_mlp: flag(c, 'use_parallel_residual', true, where),
    gated_mlp: false,
    tied_embeddings: tied,
  };
}

function llamaConfig(c: Record<string, unknown>, arch: string, where: string): ModelConfig {
  const d_model = positiveInt(c, 'hidden_size', where);
  const n_heads = positiveInt(c, 'num_attention_heads', where);
  const n_kv = c.num_key_value_heads === undefined || c.num_key_value_heads === null ? n_heads : positiveInt(c, 'num_key_value_heads', where);
  if (n_heads % n_kv !== 0) throw new ConfigError(`${where}: num_attention_heads ${n_heads} is not a multiple of num_key_value_heads ${n_kv}`);
  const d_head = c.head_dim === undefined || c.head_dim === null ? d_model / n_heads : positiveInt(c, 'head_dim', where);
  if (!Number.isInteger(d_head)) throw new ConfigError(`${where}: hidden_size ${d_model} is not divisible by num_attention_heads ${n_heads} and no head_dim is given`);
  if (d_head % 2 !== 0) throw new ConfigError(`${where}: head_dim ${d_head} must be even for rotary embeddings`);
  const r = rope(c, where);
  // Biases are read by the weight mapper; the flags must be booleans.
  flag(c, 'attention_bias', false, where);
  flag(c, 'mlp_bias', false, where);
  let n_ctx = positiveInt(c, 'max_position_embeddings', where);
  if (arch === 'Qwen3ForCausalLM' && c.use_sliding_window === true) {
    throw new ConfigError(`${where}: use_sliding_window = true (sliding attention on some Qwen3 layers) is not supported`);
  }
  // Mistral's sliding window only differs from full attention past the window: cap the context there.
  const window = c.sliding_window;
  if (typeof window === 'number' && window > 0 && window < n_ctx && flag(c, 'use_sliding_window', true, where)) n_ctx = window;
  return {
    architecture: arch,
    family: 'llama',
    d_model,
    n_layers: positiveInt(c, 'num_hidden_layers', where),
    n_heads,
    d_head,
    n_key_value_heads: n_kv,
    d_mlp: positiveInt(c, 'intermediate_size', where),
    n_ctx,
    d_vocab: positiveInt(c, 'vocab_size', where),
    act_fn: activation(c.hidden_act ?? 'silu', where, 'hidden_act'),
    normalization: 'RMS',
    eps: positiveNumber(c, 'rms_norm_eps', where, 1e-6),
    positional: 'rotary',
    rotary_dim: d_head,
    rotary_base: r.base,
    rope_scaling: r.scaling,
    parallel_attn_mlp: false,
    gated_mlp: true,
    tied_embeddings: flag(c, 'tie_word_embeddings', false, where),
    // Qwen3 normalizes each head's queries and keys (RMSNorm over head_dim) before rotary.
    ...(arch === 'Qwen3ForCausalLM' ? { qk_norm: true } : {}),
  };
}
