/**
 * GPT-2 checkpoint tensors -> `HostWeights` (TransformerLens names, fp32, [in, out]).
 *
 * Accepts both Hugging Face naming schemes:
 *   `transformer.h.0.ln_1.weight`  (GPT2LMHeadModel.save_pretrained)
 *   `h.0.ln_1.weight`              (the Hub's `gpt2` checkpoints, GPT2Model)
 * The `attn.bias` / `attn.masked_bias` causal-mask buffers and the tied `lm_head.weight` are
 * ignored. `attn.c_attn` [d_model, 3 d_model] is split into its Q, K, V column blocks.
 */
import type { TensorLookup } from './checkpoint.ts';
import type { ModelConfig } from './config.ts';
import type { HostLayer, HostMatrix, HostWeights } from './host-weights.ts';
import { WeightsError, shapedGetter } from './weight-lookup.ts';

export { WeightsError };

/** `transformer.` or '' depending on which naming scheme the checkpoint uses. */
export function gpt2Prefix(t: TensorLookup): string {
  if (t.has('transformer.wte.weight')) return 'transformer.';
  if (t.has('wte.weight')) return '';
  throw new WeightsError(
    `not a GPT-2 checkpoint: neither "transformer.wte.weight" nor "wte.weight" is present ` +
      `(first tensors: ${
        t.names
          .slice(0, 5)
          .map((n) => `"${n}"`)
          .join(', ') || 'none'
      })`,
  );
}

/**
 * Columns [c0, c0 + cols) of a row-major [rows, stride] matrix, as a new [rows, cols] matrix.
 * Row-major copy: out[r, c] = src[r, c0 + c].
 */
function columnBlock(src: Float32Array, rows: number, stride: number, c0: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) out.set(src.subarray(r * stride + c0, r * stride + c0 + cols), r * cols);
  return out;
}

export async function gpt2HostWeights(t: TensorLookup, cfg: ModelConfig): Promise<HostWeights> {
  if (cfg.family !== 'gpt2') throw new WeightsError(`gpt2HostWeights: config family is "${cfg.family}", not "gpt2"`);
  const p = gpt2Prefix(t);
  const { d_model: d, d_mlp, d_vocab, n_ctx, n_layers } = cfg;
  const hd = cfg.n_heads * cfg.d_head;
  if (hd !== d) throw new WeightsError(`GPT-2 config: n_heads ${cfg.n_heads} * d_head ${cfg.d_head} = ${hd}, not d_model ${d}`);

  const get = shapedGetter(t, 'GPT-2');

  if (t.has(`${p}h.${n_layers}.ln_1.weight`)) {
    throw new WeightsError(`checkpoint has a layer "${p}h.${n_layers}" but the config says n_layer = ${n_layers}`);
  }
  if (!cfg.tied_embeddings) {
    if (t.has('lm_head.weight')) {
      throw new WeightsError('untied unembedding (tie_word_embeddings = false with an lm_head.weight) not supported for GPT-2 yet');
    }
    throw new WeightsError('config has tie_word_embeddings = false but the checkpoint has no lm_head.weight');
  }

  const layers: HostLayer[] = [];
  for (let l = 0; l < n_layers; l++) {
    const h = `${p}h.${l}.`;
    const cAttnW = (await get(`${h}attn.c_attn.weight`, [d, 3 * d])).data; // [d_model, 3 d_model]
    const cAttnB = (await get(`${h}attn.c_attn.bias`, [3 * d])).data; // [3 d_model]
    const block = (i: number): [HostMatrix, HostMatrix] => [
      { data: columnBlock(cAttnW, d, 3 * d, i * d, d), shape: [d, d] },
      { data: cAttnB.slice(i * d, (i + 1) * d), shape: [d] },
    ];
    const [W_Q, b_Q] = block(0);
    const [W_K, b_K] = block(1);
    const [W_V, b_V] = block(2);
    layers.push({
      ln1_w: await get(`${h}ln_1.weight`, [d]),
      ln1_b: await get(`${h}ln_1.bias`, [d]),
      W_Q,
      b_Q,
      W_K,
      b_K,
      W_V,
      b_V,
      W_O: await get(`${h}attn.c_proj.weight`, [hd, d]),
      b_O: await get(`${h}attn.c_proj.bias`, [d]),
      ln2_w: await get(`${h}ln_2.weight`, [d]),
      ln2_b: await get(`${h}ln_2.bias`, [d]),
      W_in: await get(`${h}mlp.c_fc.weight`, [d, d_mlp]),
      b_in: await get(`${h}mlp.c_fc.bias`, [d_mlp]),
      W_out: await get(`${h}mlp.c_proj.weight`, [d_mlp, d]),
      b_out: await get(`${h}mlp.c_proj.bias`, [d]),
    });
  }

  return {
    W_E: await get(`${p}wte.weight`, [d_vocab, d]),
    W_pos: await get(`${p}wpe.weight`, [n_ctx, d]),
    layers,
    lnf_w: await get(`${p}ln_f.weight`, [d]),
    lnf_b: await get(`${p}ln_f.bias`, [d]),
  };
}
