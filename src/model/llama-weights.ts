/**
 * Llama-style checkpoint tensors (Llama, Mistral, Qwen2, Qwen3) -> `HostWeights` (TransformerLens
 * names, fp32, [in, out]). `nn.Linear` weights [out, in] are transposed. Which biases exist
 * follows the config: Qwen2 has q/k/v biases; Llama's `attention_bias` adds q/k/v/o biases and
 * `mlp_bias` the MLP's; absent biases are zeros. Qwen3 adds per-head q/k RMSNorm weights. Rotary `inv_freq` buffers are ignored.
 */
import type { TensorLookup } from './checkpoint.ts';
import type { ModelConfig } from './config.ts';
import type { HostLayer, HostMatrix, HostWeights } from './host-weights.ts';
import { WeightsError, shapedGetter, transposed, zeros } from './weight-lookup.ts';

export async function llamaHostWeights(t: TensorLookup, cfg: ModelConfig, hf: Record<string, unknown>): Promise<HostWeights> {
  const get = shapedGetter(t, cfg.architecture);
  const { d_model: d, d_mlp, d_vocab, n_layers, n_heads: H, n_key_value_heads: Hkv, d_head: dh } = cfg;
  if (!t.has('model.embed_tokens.weight')) throw new WeightsError(`not a ${cfg.architecture} checkpoint: "model.embed_tokens.weight" is missing`);
  if (t.has(`model.layers.${n_layers}.input_layernorm.weight`)) {
    throw new WeightsError(`checkpoint has a layer "model.layers.${n_layers}" but the config says num_hidden_layers = ${n_layers}`);
  }
  const qkvBias = cfg.architecture === 'Qwen2ForCausalLM' || hf.attention_bias === true;
  const oBias = cfg.architecture !== 'Qwen2ForCausalLM' && hf.attention_bias === true;
  const mlpBias = hf.mlp_bias === true;
  const bias = async (name: string, n: number, present: boolean): Promise<HostMatrix> => (present ? get(name, [n]) : zeros(n));

  const layers: HostLayer[] = [];
  for (let l = 0; l < n_layers; l++) {
    const h = `model.layers.${l}.`;
    layers.push({
      ln1_w: await get(`${h}input_layernorm.weight`, [d]),
      W_Q: transposed(await get(`${h}self_attn.q_proj.weight`, [H * dh, d])),
      b_Q: await bias(`${h}self_attn.q_proj.bias`, H * dh, qkvBias),
      W_K: transposed(await get(`${h}self_attn.k_proj.weight`, [Hkv * dh, d])),
      b_K: await bias(`${h}self_attn.k_proj.bias`, Hkv * dh, qkvBias),
      W_V: transposed(await get(`${h}self_attn.v_proj.weight`, [Hkv * dh, d])),
      b_V: await bias(`${h}self_attn.v_proj.bias`, Hkv * dh, qkvBias),
      W_O: transposed(await get(`${h}self_attn.o_proj.weight`, [d, H * dh])),
      b_O: await bias(`${h}self_attn.o_proj.bias`, d, oBias),
      ln2_w: await get(`${h}post_attention_layernorm.weight`, [d]),
      W_gate: transposed(await get(`${h}mlp.gate_proj.weight`, [d_mlp, d])),
      b_gate: await bias(`${h}mlp.gate_proj.bias`, d_mlp, mlpBias),
      W_in: transposed(await get(`${h}mlp.up_proj.weight`, [d_mlp, d])),
      b_in: await bias(`${h}mlp.up_proj.bias`, d_mlp, mlpBias),
      W_out: transposed(await get(`${h}mlp.down_proj.weight`, [d, d_mlp])),
      b_out: await bias(`${h}mlp.down_proj.bias`, d, mlpBias),
      ...(cfg.qk_norm ? { q_norm_w: await get(`${h}self_attn.q_norm.weight`, [dh]), k_norm_w: await get(`${h}self_attn.k_norm.weight`, [dh]) } : {}),
    });
  }
  if (!cfg.tied_embeddings && !t.has('lm_head.weight')) {
    throw new WeightsError('config has tie_word_embeddings = false but the checkpoint has no lm_head.weight');
  }
  return {
    W_E: await get('model.embed_tokens.weight', [d_vocab, d]),
    layers,
    lnf_w: await get('model.norm.weight', [d]),
    ...(cfg.tied_embeddings ? {} : { W_U_rows: await get('lm_head.weight', [d_vocab, d]) }),
  };
}
