/**
 * Gemma 3 checkpoint tensors -> `HostWeights` (TransformerLens names, fp32, [in, out]).
 *
 * Gemma's RMSNorm multiplies by (1 + w): every norm weight (input, post-attention, pre- and
 * post-feedforward, the final norm, and the per-head q/k norms) is stored here as 1 + w, so the
 * forward's RMSNorm is the plain one, as TransformerLens folds it. `nn.Linear` weights [out, in]
 * are transposed; Gemma has no biases (zeros). Tensor names may carry the multimodal models'
 * prefixes (`language_model.model.`, `model.language_model.`) as well as `model.`.
 */
import type { TensorLookup } from './checkpoint.ts';
import type { ModelConfig } from './config.ts';
import type { HostLayer, HostMatrix, HostWeights } from './host-weights.ts';
import { WeightsError, shapedGetter, transposed, zeros } from './weight-lookup.ts';

const PREFIXES = ['model.', 'model.language_model.', 'language_model.model.'];

export async function gemma3HostWeights(t: TensorLookup, cfg: ModelConfig): Promise<HostWeights> {
  const get = shapedGetter(t, cfg.architecture);
  const prefix = PREFIXES.find((p) => t.has(`${p}embed_tokens.weight`));
  if (prefix === undefined) throw new WeightsError(`not a ${cfg.architecture} checkpoint: no embed_tokens.weight under ${PREFIXES.join(', ')}`);
  const { d_model: d, d_mlp, d_vocab, n_layers, n_heads: H, n_key_value_heads: Hkv, d_head: dh } = cfg;
  if (t.has(`${prefix}layers.${n_layers}.input_layernorm.weight`)) {
    throw new WeightsError(`checkpoint has a layer "${prefix}layers.${n_layers}" but the config says num_hidden_layers = ${n_layers}`);
  }
  // Gemma's RMSNorm scales by (1 + w).
  const norm = async (name: string, n: number): Promise<HostMatrix> => {
    const m = await get(name, [n]);
    return { data: m.data.map((w) => w + 1), shape: m.shape };
  };
  const layers: HostLayer[] = [];
  for (let l = 0; l < n_layers; l++) {
    const h = `${prefix}layers.${l}.`;
    layers.push({
      ln1_w: await norm(`${h}input_layernorm.weight`, d),
      W_Q: transposed(await get(`${h}self_attn.q_proj.weight`, [H * dh, d])),
      b_Q: zeros(H * dh),
      W_K: transposed(await get(`${h}self_attn.k_proj.weight`, [Hkv * dh, d])),
      b_K: zeros(Hkv * dh),
      W_V: transposed(await get(`${h}self_attn.v_proj.weight`, [Hkv * dh, d])),
      b_V: zeros(Hkv * dh),
      W_O: transposed(await get(`${h}self_attn.o_proj.weight`, [d, H * dh])),
      b_O: zeros(d),
      q_norm_w: await norm(`${h}self_attn.q_norm.weight`, dh),
      k_norm_w: await norm(`${h}self_attn.k_norm.weight`, dh),
      ln1_post_w: await norm(`${h}post_attention_layernorm.weight`, d),
      ln2_w: await norm(`${h}pre_feedforward_layernorm.weight`, d),
      W_gate: transposed(await get(`${h}mlp.gate_proj.weight`, [d_mlp, d])),
      b_gate: zeros(d_mlp),
      W_in: transposed(await get(`${h}mlp.up_proj.weight`, [d_mlp, d])),
      b_in: zeros(d_mlp),
      W_out: transposed(await get(`${h}mlp.down_proj.weight`, [d, d_mlp])),
      b_out: zeros(d),
      ln2_post_w: await norm(`${h}post_feedforward_layernorm.weight`, d),
    });
  }
  const lmHead = ['lm_head.weight', 'language_model.lm_head.weight'].find((n) => t.has(n));
  if (!cfg.tied_embeddings && !lmHead) throw new WeightsError('config has tie_word_embeddings = false but the checkpoint has no lm_head.weight');
  return {
    W_E: await get(`${prefix}embed_tokens.weight`, [d_vocab, d]),
    layers,
    lnf_w: await norm(`${prefix}norm.weight`, d),
    ...(cfg.tied_embeddings ? {} : { W_U_rows: await get(lmHead!, [d_vocab, d]) }),
  };
}
