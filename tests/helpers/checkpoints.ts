/**
 * Synthetic Hugging Face checkpoints (config.json + model.safetensors, HF tensor names and
 * layouts) for architectures no fixture covers: Qwen2 biases, Mistral, F16/BF16 weights, NeoX
 * variants. Random weights, seeded.
 */
import { writeSafetensors, type StWriteTensor } from '../../src/model/safetensors.ts';
import { blobModelSource, type ModelSource } from '../../src/model/source.ts';
import { mulberry32 } from './synthetic.ts';

export interface Checkpoint {
  config: Record<string, unknown>;
  tensors: StWriteTensor[];
}

function random(seed: number, scale = 0.1) {
  const rnd = mulberry32(seed);
  return (shape: number[], center = 0): Float32Array => Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => center + (rnd() * 2 - 1) * scale);
}

/** A Llama-family checkpoint; `arch` picks Llama, Mistral or Qwen2 (q/k/v biases). */
export function llamaCheckpoint(over: Record<string, unknown> = {}, arch = 'LlamaForCausalLM', seed = 1): Checkpoint {
  const config: Record<string, unknown> = {
    architectures: [arch],
    hidden_size: 48,
    intermediate_size: 80,
    num_attention_heads: 6,
    num_key_value_heads: 2,
    num_hidden_layers: 2,
    vocab_size: 300,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    hidden_act: 'silu',
    tie_word_embeddings: false,
    ...over,
  };
  const r = random(seed);
  const d = config.hidden_size as number;
  const H = config.num_attention_heads as number;
  const Hkv = config.num_key_value_heads as number;
  const dh = (config.head_dim as number | undefined) ?? d / H;
  const M = config.intermediate_size as number;
  const V = config.vocab_size as number;
  const qkvBias = arch === 'Qwen2ForCausalLM' || config.attention_bias === true;
  const t: StWriteTensor[] = [{ name: 'model.embed_tokens.weight', shape: [V, d], data: r([V, d]) }];
  for (let l = 0; l < (config.num_hidden_layers as number); l++) {
    const p = `model.layers.${l}.`;
    t.push(
      { name: `${p}input_layernorm.weight`, shape: [d], data: r([d], 1) },
      { name: `${p}self_attn.q_proj.weight`, shape: [H * dh, d], data: r([H * dh, d]) },
      { name: `${p}self_attn.k_proj.weight`, shape: [Hkv * dh, d], data: r([Hkv * dh, d]) },
      { name: `${p}self_attn.v_proj.weight`, shape: [Hkv * dh, d], data: r([Hkv * dh, d]) },
      { name: `${p}self_attn.o_proj.weight`, shape: [d, H * dh], data: r([d, H * dh]) },
      { name: `${p}post_attention_layernorm.weight`, shape: [d], data: r([d], 1) },
      { name: `${p}mlp.gate_proj.weight`, shape: [M, d], data: r([M, d]) },
      { name: `${p}mlp.up_proj.weight`, shape: [M, d], data: r([M, d]) },
      { name: `${p}mlp.down_proj.weight`, shape: [d, M], data: r([d, M]) },
    );
    if (qkvBias) {
      // Large biases so a bias that is dropped or misplaced moves the logits visibly.
      t.push(
        { name: `${p}self_attn.q_proj.bias`, shape: [H * dh], data: r([H * dh]).map((x) => x * 10) },
        { name: `${p}self_attn.k_proj.bias`, shape: [Hkv * dh], data: r([Hkv * dh]).map((x) => x * 10) },
        { name: `${p}self_attn.v_proj.bias`, shape: [Hkv * dh], data: r([Hkv * dh]).map((x) => x * 10) },
      );
    }
  }
  t.push({ name: 'model.norm.weight', shape: [d], data: r([d], 1) });
  if (config.tie_word_embeddings !== true) t.push({ name: 'lm_head.weight', shape: [V, d], data: r([V, d]) });
  return { config, tensors: t };
}

/** A GPT-NeoX checkpoint with the given config overrides. */
export function neoxCheckpoint(over: Record<string, unknown> = {}, seed = 2): Checkpoint {
  const config: Record<string, unknown> = {
    architectures: ['GPTNeoXForCausalLM'],
    hidden_size: 40,
    intermediate_size: 96,
    num_attention_heads: 5,
    num_hidden_layers: 2,
    vocab_size: 200,
    max_position_embeddings: 64,
    layer_norm_eps: 1e-5,
    rotary_pct: 0.5,
    rotary_emb_base: 10000,
    hidden_act: 'gelu',
    use_parallel_residual: false,
    tie_word_embeddings: false,
    ...over,
  };
  const r = random(seed);
  const d = config.hidden_size as number;
  const M = config.intermediate_size as number;
  const V = config.vocab_size as number;
  const t: StWriteTensor[] = [{ name: 'gpt_neox.embed_in.weight', shape: [V, d], data: r([V, d]) }];
  for (let l = 0; l < (config.num_hidden_layers as number); l++) {
    const p = `gpt_neox.layers.${l}.`;
    t.push(
      { name: `${p}input_layernorm.weight`, shape: [d], data: r([d], 1) },
      { name: `${p}input_layernorm.bias`, shape: [d], data: r([d]) },
      { name: `${p}attention.query_key_value.weight`, shape: [3 * d, d], data: r([3 * d, d]) },
      { name: `${p}attention.query_key_value.bias`, shape: [3 * d], data: r([3 * d]) },
      { name: `${p}attention.dense.weight`, shape: [d, d], data: r([d, d]) },
      { name: `${p}attention.dense.bias`, shape: [d], data: r([d]) },
      { name: `${p}post_attention_layernorm.weight`, shape: [d], data: r([d], 1) },
      { name: `${p}post_attention_layernorm.bias`, shape: [d], data: r([d]) },
      { name: `${p}mlp.dense_h_to_4h.weight`, shape: [M, d], data: r([M, d]) },
      { name: `${p}mlp.dense_h_to_4h.bias`, shape: [M], data: r([M]) },
      { name: `${p}mlp.dense_4h_to_h.weight`, shape: [d, M], data: r([d, M]) },
      { name: `${p}mlp.dense_4h_to_h.bias`, shape: [d], data: r([d]) },
    );
  }
  t.push(
    { name: 'gpt_neox.final_layer_norm.weight', shape: [d], data: r([d], 1) },
    { name: 'gpt_neox.final_layer_norm.bias', shape: [d], data: r([d]) },
    { name: 'embed_out.weight', shape: [V, d], data: r([V, d]) },
  );
  return { config, tensors: t };
}

/** The checkpoint as files, with every tensor stored as `dtype`. */
export function checkpointFiles(c: Checkpoint, dtype: 'F32' | 'F16' | 'BF16' = 'F32'): Record<string, Uint8Array> {
  return {
    'config.json': new TextEncoder().encode(JSON.stringify(c.config)),
    'model.safetensors': writeSafetensors(c.tensors.map((t) => ({ ...t, dtype }))),
  };
}

export function checkpointSource(c: Checkpoint, dtype: 'F32' | 'F16' | 'BF16' = 'F32'): ModelSource {
  return blobModelSource(checkpointFiles(c, dtype), `synthetic ${(c.config.architectures as string[])[0]}`);
}
