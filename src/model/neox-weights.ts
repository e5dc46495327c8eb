/**
 * GPT-NeoX / Pythia checkpoint tensors -> `HostWeights` (TransformerLens names, fp32, [in, out]).
 *
 * `attention.query_key_value` [3 H dh, d_model] interleaves per head: rows h*3dh + [0, dh) are
 * head h's query, then its key, then its value (Hugging Face views the output as
 * [.., H, 3 dh] and chunks the last axis). Linear weights are transposed to [in, out].
 * Rotary `inv_freq` and attention-mask buffers are ignored.
 */
import type { TensorLookup } from './checkpoint.ts';
import type { ModelConfig } from './config.ts';
import type { HostLayer, HostMatrix, HostWeights } from './host-weights.ts';
import { WeightsError, shapedGetter, transposed, zeros } from './weight-lookup.ts';

/** Rows of head-interleaved q/k/v: part 0 = q, 1 = k, 2 = v; result [H dh, cols]. */
function qkvPart(m: HostMatrix, H: number, dh: number, part: number): HostMatrix {
  const cols = m.shape.length > 1 ? m.shape[1] : 1;
  const out = new Float32Array(H * dh * cols);
  for (let h = 0; h < H; h++) {
    const src = (h * 3 * dh + part * dh) * cols;
    out.set(m.data.subarray(src, src + dh * cols), h * dh * cols);
  }
  return { data: out, shape: m.shape.length > 1 ? [H * dh, cols] : [H * dh] };
}

export async function neoxHostWeights(t: TensorLookup, cfg: ModelConfig, hf: Record<string, unknown> = {}): Promise<HostWeights> {
  const get = shapedGetter(t, 'GPT-NeoX');
  // attention_bias = false: query_key_value and dense have no biases (zeros here).
  const attnBias = hf.attention_bias !== false;
  const bias = async (name: string, n: number): Promise<HostMatrix> => (attnBias ? get(name, [n]) : zeros(n));
  const { d_model: d, d_mlp, d_vocab, n_layers, n_heads: H, d_head: dh } = cfg;
  const p = t.has('gpt_neox.embed_in.weight') ? 'gpt_neox.' : '';
  if (!t.has(`${p}embed_in.weight`)) throw new WeightsError('not a GPT-NeoX checkpoint: "gpt_neox.embed_in.weight" is missing');
  if (t.has(`${p}layers.${n_layers}.input_layernorm.weight`)) {
    throw new WeightsError(`checkpoint has a layer "${p}layers.${n_layers}" but the config says num_hidden_layers = ${n_layers}`);
  }
  const layers: HostLayer[] = [];
  for (let l = 0; l < n_layers; l++) {
    const h = `${p}layers.${l}.`;
    const qkvW = await get(`${h}attention.query_key_value.weight`, [3 * H * dh, d]);
    const qkvB = await bias(`${h}attention.query_key_value.bias`, 3 * H * dh);
    layers.push({
      ln1_w: await get(`${h}input_layernorm.weight`, [d]),
      ln1_b: await get(`${h}input_layernorm.bias`, [d]),
      W_Q: transposed(qkvPart(qkvW, H, dh, 0)),
      b_Q: qkvPart(qkvB, H, dh, 0),
      W_K: transposed(qkvPart(qkvW, H, dh, 1)),
      b_K: qkvPart(qkvB, H, dh, 1),
      W_V: transposed(qkvPart(qkvW, H, dh, 2)),
      b_V: qkvPart(qkvB, H, dh, 2),
      W_O: transposed(await get(`${h}attention.dense.weight`, [d, H * dh])),
      b_O: await bias(`${h}attention.dense.bias`, d),
      ln2_w: await get(`${h}post_attention_layernorm.weight`, [d]),
      ln2_b: await get(`${h}post_attention_layernorm.bias`, [d]),
      W_in: transposed(await get(`${h}mlp.dense_h_to_4h.weight`, [d_mlp, d])),
      b_in: await get(`${h}mlp.dense_h_to_4h.bias`, [d_mlp]),
      W_out: transposed(await get(`${h}mlp.dense_4h_to_h.weight`, [d, d_mlp])),
      b_out: await get(`${h}mlp.dense_4h_to_h.bias`, [d]),
    });
  }
  const W_E = await get(`${p}embed_in.weight`, [d_vocab, d]);
  return {
    W_E,
    layers,
    lnf_w: await get(`${p}final_layer_norm.weight`, [d]),
    lnf_b: await get(`${p}final_layer_norm.bias`, [d]),
    ...(cfg.tied_embeddings ? {} : { W_U_rows: await get('embed_out.weight', [d_vocab, d]) }),
  };
}
