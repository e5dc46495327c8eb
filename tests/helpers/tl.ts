/**
 * TransformerLens' references (tests/fixtures/<name>/tl/, made by TransformerLens itself; see
 * tests/fixtures/README.md) and the mapping of Patchbay's host weights to TransformerLens'
 * state-dict names and shapes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import type { ModelConfig } from '../../src/model/config.ts';
import type { HostWeights } from '../../src/model/host-weights.ts';
import { FIXTURES } from './fixtures.ts';

/**
 * Every fixture with a `tl/` folder: the five shared ones, and two checkpoints they do not cover,
 * made with tests/fixtures/make/tl_refs.py: Qwen2 (q/k/v biases with grouped-query attention, a
 * tied unembedding under RMSNorm) and GPT-NeoX with sequential blocks (use_parallel_residual false).
 */
export const TL_FIXTURES = ['tiny-gpt2-random', 'induction-2l', 'induction-attn-2l', 'tiny-neox-random', 'tiny-llama-random', 'tiny-qwen2-random', 'tiny-neox-sequential-random'] as const;

export function tlSafetensors(name: string, file: string): SafetensorsFile {
  const path = join(FIXTURES, name, 'tl', file);
  return new SafetensorsFile(new Uint8Array(readFileSync(path)), path);
}

export function tlJson<T = Record<string, unknown>>(name: string, file: string): T {
  return JSON.parse(readFileSync(join(FIXTURES, name, 'tl', file), 'utf8')) as T;
}

/** A grid as TransformerLens' patching functions return it, flattened. */
export interface TlGrid {
  shape: number[];
  values: number[];
}

/** `tl/patching.json`: the metric spec, then `get_act_patch_*` -> a grid, or an error TransformerLens raised. */
export type TlPatching = { metric: string; note: string } & Record<string, TlGrid | { error: string } | string>;

/** `tl/helpers.json`: cache helpers on the clean prompt's processed cache. */
export interface TlHelpers {
  position: number;
  tokens: { good: number; bad: number };
  clean_logit_diff: number;
  [entry: string]: unknown;
}

export interface TlStack {
  shape: number[];
  labels: string[];
  values: number[];
}

/**
 * `host` under TransformerLens' names and shapes: `blocks.L.attn.W_Q` [n_heads, d_model, d_head],
 * `W_O` [n_heads, d_head, d_model], `b_Q` [n_heads, d_head], `unembed.W_U` [d_model, d_vocab];
 * with grouped-query attention the key/value ones are `_W_K`, `_b_V`, … over the key/value heads.
 * Also the norms' gains and biases, which TransformerLens drops once folded (LNPre / RMSPre).
 */
export function tlStateDict(cfg: ModelConfig, w: HostWeights): Map<string, { shape: number[]; data: Float32Array }> {
  const { d_model: C, n_heads: H, n_key_value_heads: Hkv, d_head: dh, d_vocab: V } = cfg;
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  const kv = Hkv !== H ? '_' : '';
  // [C, heads * dh] -> [heads, C, dh]
  const perHeadIn = (data: Float32Array, heads: number) => {
    const o = new Float32Array(data.length);
    for (let h = 0; h < heads; h++) for (let c = 0; c < C; c++) for (let e = 0; e < dh; e++) o[(h * C + c) * dh + e] = data[c * heads * dh + h * dh + e];
    return { shape: [heads, C, dh], data: o };
  };
  out.set('embed.W_E', { shape: [V, C], data: w.W_E.data });
  if (w.W_pos) out.set('pos_embed.W_pos', { shape: w.W_pos.shape, data: w.W_pos.data });
  w.layers.forEach((p, l) => {
    const A = `blocks.${l}.attn.`;
    out.set(`${A}W_Q`, perHeadIn(p.W_Q.data, H));
    out.set(`${A}${kv}W_K`, perHeadIn(p.W_K.data, Hkv));
    out.set(`${A}${kv}W_V`, perHeadIn(p.W_V.data, Hkv));
    out.set(`${A}b_Q`, { shape: [H, dh], data: p.b_Q.data });
    out.set(`${A}${kv}b_K`, { shape: [Hkv, dh], data: p.b_K.data });
    out.set(`${A}${kv}b_V`, { shape: [Hkv, dh], data: p.b_V.data });
    out.set(`${A}W_O`, { shape: [H, dh, C], data: p.W_O.data });
    out.set(`${A}b_O`, { shape: [C], data: p.b_O.data });
    const M = `blocks.${l}.mlp.`;
    out.set(`${M}W_in`, { shape: p.W_in.shape, data: p.W_in.data });
    out.set(`${M}b_in`, { shape: p.b_in.shape, data: p.b_in.data });
    if (p.W_gate) out.set(`${M}W_gate`, { shape: p.W_gate.shape, data: p.W_gate.data });
    if (p.b_gate) out.set(`${M}b_gate`, { shape: p.b_gate.shape, data: p.b_gate.data });
    out.set(`${M}W_out`, { shape: p.W_out.shape, data: p.W_out.data });
    out.set(`${M}b_out`, { shape: p.b_out.shape, data: p.b_out.data });
    out.set(`blocks.${l}.ln1.w`, { shape: [C], data: p.ln1_w.data });
    if (p.ln1_b) out.set(`blocks.${l}.ln1.b`, { shape: [C], data: p.ln1_b.data });
    out.set(`blocks.${l}.ln2.w`, { shape: [C], data: p.ln2_w.data });
    if (p.ln2_b) out.set(`blocks.${l}.ln2.b`, { shape: [C], data: p.ln2_b.data });
  });
  out.set('ln_final.w', { shape: [C], data: w.lnf_w.data });
  if (w.lnf_b) out.set('ln_final.b', { shape: [C], data: w.lnf_b.data });
  const rows = (w.W_U_rows ?? w.W_E).data; // [V, C]
  const W_U = new Float32Array(C * V);
  for (let v = 0; v < V; v++) for (let c = 0; c < C; c++) W_U[c * V + v] = rows[v * C + c];
  out.set('unembed.W_U', { shape: [C, V], data: W_U });
  out.set('unembed.b_U', { shape: [V], data: w.b_U?.data ?? new Float32Array(V) });
  return out;
}

/**
 * Masked attention scores are -inf in both TransformerLens and Patchbay: equal infinities are
 * replaced by 0 in both (after checking they sit at the same places) so the finite entries
 * compare under the usual rule.
 */
export function finiteParts(got: Float32Array, want: Float32Array, name: string): [Float32Array, Float32Array] {
  const g = got.slice();
  const w = want.slice();
  for (let i = 0; i < w.length; i++) {
    if (Number.isFinite(w[i]) && Number.isFinite(g[i])) continue;
    if (g[i] !== w[i]) throw new Error(`${name}: element ${i} is ${g[i]}, TransformerLens has ${w[i]}`);
    g[i] = 0;
    w[i] = 0;
  }
  return [g, w];
}
