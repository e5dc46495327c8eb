/**
 * A stand-in for the Hub's `openai-community/gpt2` that tests can serve themselves: a small GPT-2
 * with random weights but GPT-2's full 50257-token vocabulary, saved as `save_pretrained` would
 * (config.json + model.safetensors, `transformer.`-prefixed names, Conv1D weights as [in, out]),
 * next to the committed GPT-2 tokenizer (tests/fixtures/gpt2-tokenizer). No real checkpoint can be
 * had offline, so the numbers differ from GPT-2's; a test compares the page with what the engine
 * computes in Node for the same files.
 */
import { copyFileSync, mkdirSync, openAsBlob, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadCheckpoint } from '../../src/model/checkpoint.ts';
import { forwardCpu } from '../../src/model/forward.cpu.ts';
import { hostWeightsFor } from '../../src/model/host-weights-for.ts';
import { writeSafetensors } from '../../src/model/safetensors.ts';
import { blobModelSource } from '../../src/model/source.ts';
import { FIXTURES } from './fixtures.ts';
import { mulberry32 } from './synthetic.ts';

export interface RandomGpt2Options {
  d_model?: number;
  n_layers?: number;
  n_heads?: number;
  n_ctx?: number;
  seed?: number;
}

export const GPT2_VOCAB = 50257;

/** Writes config.json, model.safetensors, tokenizer.json and tokenizer_config.json into `dir`. */
export function writeRandomGpt2Hub(dir: string, options: RandomGpt2Options = {}): { config: Record<string, unknown> } {
  const { d_model: d = 24, n_layers = 2, n_heads = 12, n_ctx = 64, seed = 5 } = options;
  mkdirSync(dir, { recursive: true });
  const rnd = mulberry32(seed);
  const tensors: Record<string, { data: Float32Array; shape: number[] }> = {};
  const put = (name: string, shape: number[], scale: number, center = 0) => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = center + (rnd() * 2 - 1) * scale;
    tensors[`transformer.${name}`] = { data, shape };
  };
  put('wte.weight', [GPT2_VOCAB, d], 0.3);
  put('wpe.weight', [n_ctx, d], 0.1);
  for (let l = 0; l < n_layers; l++) {
    const h = `h.${l}.`;
    put(`${h}ln_1.weight`, [d], 0.1, 1);
    put(`${h}ln_1.bias`, [d], 0.05);
    put(`${h}attn.c_attn.weight`, [d, 3 * d], 0.4);
    put(`${h}attn.c_attn.bias`, [3 * d], 0.05);
    put(`${h}attn.c_proj.weight`, [d, d], 0.3);
    put(`${h}attn.c_proj.bias`, [d], 0.05);
    put(`${h}ln_2.weight`, [d], 0.1, 1);
    put(`${h}ln_2.bias`, [d], 0.05);
    put(`${h}mlp.c_fc.weight`, [d, 4 * d], 0.3);
    put(`${h}mlp.c_fc.bias`, [4 * d], 0.05);
    put(`${h}mlp.c_proj.weight`, [4 * d, d], 0.2);
    put(`${h}mlp.c_proj.bias`, [d], 0.05);
  }
  put('ln_f.weight', [d], 0.1, 1);
  put('ln_f.bias', [d], 0.05);
  const config = {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    vocab_size: GPT2_VOCAB,
    n_positions: n_ctx,
    n_embd: d,
    n_layer: n_layers,
    n_head: n_heads,
    n_inner: null,
    activation_function: 'gelu_new',
    layer_norm_epsilon: 1e-5,
    bos_token_id: 50256,
    eos_token_id: 50256,
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  writeFileSync(join(dir, 'model.safetensors'), writeSafetensors(tensors, { format: 'pt' }));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(FIXTURES, 'gpt2-tokenizer', f), join(dir, f));
  return { config };
}

/** logits[pos, good] - logits[pos, bad] for `ids`, from the model folder, on the CPU reference forward. */
export async function referenceLogitDiff(dir: string, ids: number[], pos: number, good: number, bad: number): Promise<number> {
  const source = blobModelSource({ 'config.json': await openAsBlob(join(dir, 'config.json')), 'model.safetensors': await openAsBlob(join(dir, 'model.safetensors')) }, dir);
  const ck = await loadCheckpoint(source);
  const weights = await hostWeightsFor(ck.tensors, ck.config, ck.hfConfig);
  const logits = forwardCpu(ck.config, weights, [ids]).get('logits')!;
  const V = ck.config.d_vocab;
  return logits[pos * V + good] - logits[pos * V + bad];
}
