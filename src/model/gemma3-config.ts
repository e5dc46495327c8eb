/**
 * Hugging Face `Gemma3ForCausalLM` config.json -> `ModelConfig` (Gemma 3's text models: 270M, 1B,
 * and the text towers of the larger ones). What the forward must do differently from a Llama:
 *   - RMSNorm scales by (1 + w) (folded into the weights on load, as TransformerLens does);
 *   - norms after attention and after the MLP too (post_norms);
 *   - RMSNorm over each head's queries and keys (qk_norm);
 *   - GeGLU with gelu_pytorch_tanh; embeddings times sqrt(hidden_size);
 *   - scores divided by sqrt(query_pre_attn_scalar), not sqrt(head_dim);
 *   - layer_types: sliding-window layers (window sliding_window, rope theta of sliding_attention)
 *     and global ones (full_attention's theta);
 *   - final_logit_softcapping where set.
 * Both transformers 5's `rope_parameters` {full_attention, sliding_attention} and the older
 * `rope_theta` + `rope_local_base_freq` + `sliding_window_pattern` fields are read. Anything the
 * forward does not implement (attention logit soft-capping, bidirectional attention, rope
 * scaling on the sliding layers) is refused.
 */
import type { AttnType, ModelConfig, RopeScaling } from './config.ts';
import { ConfigError } from './normalize-config.ts';

function posInt(c: Record<string, unknown>, field: string, where: string): number {
  const v = c[field];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw new ConfigError(`${where}: "${field}" must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

function posNum(v: unknown, field: string, where: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new ConfigError(`${where}: "${field}" must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}

function ropeOf(p: Record<string, unknown> | null | undefined, fallbackTheta: unknown, what: string, where: string): { base: number; scaling: RopeScaling | null } {
  const base = posNum(p?.rope_theta ?? fallbackTheta, `${what} rope_theta`, where);
  const type = p?.rope_type ?? p?.type ?? 'default';
  if (type === 'default') return { base, scaling: null };
  if (type === 'linear') return { base, scaling: { type: 'linear', factor: posNum(p?.factor, `${what} rope factor`, where) } };
  throw new ConfigError(`${where}: ${what} rope type ${JSON.stringify(type)} is not supported for Gemma 3 (default, linear)`);
}

export function gemma3Config(c: Record<string, unknown>, arch: string, where: string): ModelConfig {
  if (c.attn_logit_softcapping !== null && c.attn_logit_softcapping !== undefined) {
    throw new ConfigError(`${where}: attn_logit_softcapping ${JSON.stringify(c.attn_logit_softcapping)} is not supported (Gemma 3 has none)`);
  }
  if (c.use_bidirectional_attention === true) throw new ConfigError(`${where}: use_bidirectional_attention = true is not supported (causal attention only)`);
  const act = c.hidden_activation ?? c.hidden_act ?? 'gelu_pytorch_tanh';
  if (act !== 'gelu_pytorch_tanh' && act !== 'gelu_new') throw new ConfigError(`${where}: hidden_activation ${JSON.stringify(act)} is not supported for Gemma 3 (gelu_pytorch_tanh)`);
  const d_model = posInt(c, 'hidden_size', where);
  const n_layers = posInt(c, 'num_hidden_layers', where);
  const n_heads = posInt(c, 'num_attention_heads', where);
  const n_kv = c.num_key_value_heads === undefined ? n_heads : posInt(c, 'num_key_value_heads', where);
  if (n_heads % n_kv !== 0) throw new ConfigError(`${where}: num_attention_heads ${n_heads} is not a multiple of num_key_value_heads ${n_kv}`);
  const d_head = posInt(c, 'head_dim', where);
  if (d_head % 2 !== 0) throw new ConfigError(`${where}: head_dim ${d_head} must be even for rotary embeddings`);

  // Layer types: transformers 5 lists them; older configs give a period (every Nth layer global).
  let types: AttnType[];
  if (Array.isArray(c.layer_types)) {
    if (c.layer_types.length !== n_layers) throw new ConfigError(`${where}: layer_types has ${c.layer_types.length} entries for ${n_layers} layers`);
    types = c.layer_types.map((t, i) => {
      if (t === 'sliding_attention') return 'local';
      if (t === 'full_attention') return 'global';
      throw new ConfigError(`${where}: layer_types[${i}] ${JSON.stringify(t)} is not sliding_attention or full_attention`);
    });
  } else {
    const period = posInt({ p: c.sliding_window_pattern ?? c._sliding_window_pattern ?? 6 }, 'p', where);
    types = Array.from({ length: n_layers }, (_, i) => ((i + 1) % period === 0 ? 'global' : 'local'));
  }
  const window = types.includes('local') ? posInt(c, 'sliding_window', where) : undefined;

  const params = (c.rope_parameters ?? null) as Record<string, Record<string, unknown>> | null;
  const global = ropeOf(params?.full_attention ?? (c.rope_scaling as Record<string, unknown> | null), c.rope_theta ?? 1_000_000, 'full_attention', where);
  const local = ropeOf(params?.sliding_attention ?? null, c.rope_local_base_freq ?? 10_000, 'sliding_attention', where);
  if (local.scaling) throw new ConfigError(`${where}: rope scaling on the sliding-window layers is not supported`);

  const qpas = posNum(c.query_pre_attn_scalar ?? d_head, 'query_pre_attn_scalar', where);
  const cap = c.final_logit_softcapping;
  const tied = c.tie_word_embeddings ?? true;
  return {
    architecture: arch,
    family: 'gemma3',
    d_model,
    n_layers,
    n_heads,
    d_head,
    n_key_value_heads: n_kv,
    d_mlp: posInt(c, 'intermediate_size', where),
    n_ctx: posInt(c, 'max_position_embeddings', where),
    d_vocab: posInt(c, 'vocab_size', where),
    act_fn: 'gelu_new', // gelu_pytorch_tanh is GPT-2's tanh form
    normalization: 'RMS',
    eps: posNum(c.rms_norm_eps ?? 1e-6, 'rms_norm_eps', where),
    positional: 'rotary',
    rotary_dim: d_head,
    rotary_base: global.base,
    rope_scaling: global.scaling,
    parallel_attn_mlp: false,
    gated_mlp: true,
    tied_embeddings: tied === true,
    post_norms: true,
    qk_norm: true,
    // Hugging Face multiplies by sqrt(hidden_size) in the weights' dtype; Patchbay runs fp32.
    embed_scale: Math.fround(Math.sqrt(d_model)),
    attn_scale: Math.sqrt(qpas),
    attn_types: types,
    ...(window !== undefined ? { window_size: window } : {}),
    rotary_base_local: local.base,
    ...(cap !== null && cap !== undefined ? { output_logits_soft_cap: posNum(cap, 'final_logit_softcapping', where) } : {}),
  };
}
