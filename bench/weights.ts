/**
 * The bench's models: GPT-2-shaped random weights, and writing weights back out as a Hugging
 * Face GPT-2 folder (config.json + model.safetensors with `transformer.h.N.attn.c_attn.weight`
 * names, the inverse of src/model/gpt2-weights.ts) so that a second engine can load the same ones.
 */
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelConfig } from '../src/model/config.ts';
import { normalizeConfig } from '../src/model/normalize-config.ts';
import type { HostMatrix, HostWeights } from '../src/model/host-weights.ts';
import { writeSafetensors } from '../src/model/safetensors.ts';

/** GPT-2 small's `config.json` fields that shape the model. */
const GPT2_SMALL_HF = {
  architectures: ['GPT2LMHeadModel'],
  model_type: 'gpt2',
  activation_function: 'gelu_new',
  n_embd: 768,
  n_layer: 12,
  n_head: 12,
  n_inner: 3072,
  n_positions: 1024,
  vocab_size: 50257,
  layer_norm_epsilon: 1e-5,
  tie_word_embeddings: true,
};

/** GPT-2 small's config (12 layers, 12 heads, d_model 768, d_mlp 3072, vocab 50257, n_ctx 1024), optionally with fewer layers. */
export function gpt2SmallConfig(nLayers = 12): ModelConfig {
  return normalizeConfig({ ...GPT2_SMALL_HF, n_layer: nLayers }, 'GPT-2 small shape');
}

/** Deterministic random weights of `cfg`'s shape: uniform ±0.02 (LayerNorm gains around 1). */
export function randomGpt2(cfg: ModelConfig, seed = 1): HostWeights {
  let s = seed >>> 0;
  const m = (shape: number[], center = 0): HostMatrix => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      data[i] = center + (s / 2 ** 32 - 0.5) * 0.04;
    }
    return { shape, data };
  };
  const C = cfg.d_model;
  return {
    W_E: m([cfg.d_vocab, C]),
    W_pos: m([cfg.n_ctx, C]),
    layers: Array.from({ length: cfg.n_layers }, () => ({
      ln1_w: m([C], 1),
      ln1_b: m([C]),
      W_Q: m([C, C]),
      b_Q: m([C]),
      W_K: m([C, C]),
      b_K: m([C]),
      W_V: m([C, C]),
      b_V: m([C]),
      W_O: m([C, C]),
      b_O: m([C]),
      ln2_w: m([C], 1),
      ln2_b: m([C]),
      W_in: m([C, cfg.d_mlp]),
      b_in: m([cfg.d_mlp]),
      W_out: m([cfg.d_mlp, C]),
      b_out: m([C]),
    })),
    lnf_w: m([C], 1),
    lnf_b: m([C]),
  };
}

/** Hugging Face `config.json` for `cfg` (what normalizeConfig reads back). */
export function hfConfig(cfg: ModelConfig): Record<string, unknown> {
  if (cfg.family !== 'gpt2') throw new Error(`hfConfig writes GPT-2 configs only, not ${cfg.architecture}`);
  return {
    ...GPT2_SMALL_HF,
    n_embd: cfg.d_model,
    n_layer: cfg.n_layers,
    n_head: cfg.n_heads,
    n_inner: cfg.d_mlp,
    n_positions: cfg.n_ctx,
    vocab_size: cfg.d_vocab,
    layer_norm_epsilon: cfg.eps,
    tie_word_embeddings: true,
  };
}

/** Columns of c_attn: [d_model, 3 d_model] from W_Q | W_K | W_V ([d_model, d_model] each). */
function concatColumns(ms: HostMatrix[], rows: number): Float32Array {
  const widths = ms.map((m) => m.shape[1]);
  const stride = widths.reduce((a, b) => a + b, 0);
  const out = new Float32Array(rows * stride);
  for (let r = 0; r < rows; r++) {
    let c0 = 0;
    ms.forEach((m, i) => {
      out.set(m.data.subarray(r * widths[i], (r + 1) * widths[i]), r * stride + c0);
      c0 += widths[i];
    });
  }
  return out;
}

/** HostWeights -> HF GPT-2 tensors (`transformer.` names, Conv1D [in, out] layout). */
export function hfTensors(cfg: ModelConfig, w: HostWeights): Array<{ name: string; shape: number[]; data: Float32Array }> {
  const C = cfg.d_model;
  const out: Array<{ name: string; shape: number[]; data: Float32Array }> = [];
  const put = (name: string, m: HostMatrix) => out.push({ name: `transformer.${name}`, shape: m.shape, data: m.data });
  put('wte.weight', w.W_E);
  const need = (m: HostMatrix | undefined, what: string): HostMatrix => {
    if (!m) throw new Error(`GPT-2 weights need ${what}`);
    return m;
  };
  put('wpe.weight', need(w.W_pos, 'learned positions (W_pos)'));
  w.layers.forEach((l, i) => {
    const h = `h.${i}.`;
    put(`${h}ln_1.weight`, l.ln1_w);
    put(`${h}ln_1.bias`, need(l.ln1_b, 'LayerNorm biases'));
    put(`${h}attn.c_attn.weight`, { shape: [C, 3 * C], data: concatColumns([l.W_Q, l.W_K, l.W_V], C) });
    put(`${h}attn.c_attn.bias`, {
      shape: [3 * C],
      data: concatColumns(
        [l.b_Q, l.b_K, l.b_V].map((b) => ({ shape: [1, b.data.length], data: b.data })),
        1,
      ),
    });
    put(`${h}attn.c_proj.weight`, l.W_O);
    put(`${h}attn.c_proj.bias`, l.b_O);
    put(`${h}ln_2.weight`, l.ln2_w);
    put(`${h}ln_2.bias`, need(l.ln2_b, 'LayerNorm biases'));
    put(`${h}mlp.c_fc.weight`, l.W_in);
    put(`${h}mlp.c_fc.bias`, l.b_in);
    put(`${h}mlp.c_proj.weight`, l.W_out);
    put(`${h}mlp.c_proj.bias`, l.b_out);
  });
  put('ln_f.weight', w.lnf_w);
  put('ln_f.bias', need(w.lnf_b, 'LayerNorm biases'));
  return out;
}

/** Writes `dir`/config.json and `dir`/model.safetensors (atomically: a half-written folder is never reused). */
export function writeHfFolder(dir: string, cfg: ModelConfig, w: HostWeights): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(hfConfig(cfg), null, 1));
  const tmp = join(dir, 'model.safetensors.tmp');
  writeFileSync(tmp, writeSafetensors(hfTensors(cfg, w), { format: 'pt', source: 'patchbay bench random weights' }));
  renameSync(tmp, join(dir, 'model.safetensors'));
}

export const hfFolderComplete = (dir: string) => existsSync(join(dir, 'config.json')) && existsSync(join(dir, 'model.safetensors'));
