/**
 * The weights under TransformerLens' names and shapes (`model.weight`, `stateDict`, the stacked
 * model-level getters, `model.blocks[L]`), on GPT-2, GPT-NeoX and Llama (grouped-query) fixtures:
 *  - equal, bit for bit, to the expectation built here straight from each checkpoint's tensors
 *    (GPT-2's Conv1D [in, out] c_attn split in three, NeoX's per-head interleaved
 *    query_key_value [H * 3 * d_head, d_model], Llama's [out, in] projections), in TL's layouts:
 *    W_Q [n_heads, d_model, d_head], W_O [n_heads, d_head, d_model], W_U [d_model, d_vocab], and
 *    under grouped-query attention `_W_K` [n_key_value_heads, d_model, d_head] stored, `W_K` with
 *    each key/value head repeated for its query heads;
 *  - laid out as TransformerLens' own einsums read them: layer 0's hook_q / hook_k / hook_v,
 *    hook_attn_out, mlp.hook_pre, hook_mlp_out and the logits of `tl/raw.safetensors`,
 *    recomputed from TL's cached inputs and these weights, match TL's (1e-4 of each tensor's
 *    scale).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import type { WeightTensor } from '../../src/model/tl-weights.ts';
import { expectClose, maxAbsDiff } from '../helpers/compare.ts';
import { FIXTURES, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';

const NAMES = ['tiny-gpt2-random', 'induction-attn-2l', 'tiny-neox-random', 'tiny-llama-random'] as const;

const st = (name: string, f: string) => new SafetensorsFile(new Uint8Array(readFileSync(join(FIXTURES, name, f))), f);

/** Bit-for-bit equality of two float arrays (a fast toEqual for large tensors). */
function expectSame(name: string, got: Float32Array, want: Float32Array | undefined): void {
  expect(want, `${name}: expected`).toBeDefined();
  expect(got.length, `${name}: length`).toBe(want!.length);
  expect(maxAbsDiff(got, want!), name).toBe(0);
}

/** out[i, j] = m[j, i] for m [rows, cols]. */
function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = m[r * cols + c];
  return out;
}

/** TL [heads, d_model, d_head] from a function giving element (head, i, j). */
function perHead(heads: number, C: number, dh: number, at: (h: number, i: number, j: number) => number): Float32Array {
  const out = new Float32Array(heads * C * dh);
  for (let h = 0; h < heads; h++) for (let i = 0; i < C; i++) for (let j = 0; j < dh; j++) out[(h * C + i) * dh + j] = at(h, i, j);
  return out;
}

/** The TL state dict expected from the checkpoint itself, by family. */
function expected(name: string, model: Model): Map<string, Float32Array> {
  const cfg = model.config;
  const { d_model: C, n_heads: H, n_key_value_heads: Hkv, d_head: dh, d_mlp: M, d_vocab: V } = cfg;
  const t = st(name, 'model.safetensors');
  const g = (n: string) => t.float32(n);
  const e = new Map<string, Float32Array>();
  const zeros = (n: number) => new Float32Array(n);
  if (cfg.family === 'gpt2') {
    const p = t.names.includes('transformer.wte.weight') ? 'transformer.' : '';
    e.set('embed.W_E', g(`${p}wte.weight`));
    e.set('pos_embed.W_pos', g(`${p}wpe.weight`));
    for (let l = 0; l < cfg.n_layers; l++) {
      const h = `${p}h.${l}.`;
      const L = `blocks.${l}.`;
      const w = g(`${h}attn.c_attn.weight`); // [C, 3C], Conv1D [in, out]
      const b = g(`${h}attn.c_attn.bias`);
      ['Q', 'K', 'V'].forEach((x, k) => {
        e.set(
          `${L}attn.W_${x}`,
          perHead(H, C, dh, (hd, i, j) => w[i * 3 * C + k * C + hd * dh + j]),
        );
        e.set(`${L}attn.b_${x}`, b.slice(k * C, (k + 1) * C));
      });
      e.set(`${L}attn.W_O`, g(`${h}attn.c_proj.weight`)); // [H * dh, C] is [H, dh, C]
      e.set(`${L}attn.b_O`, g(`${h}attn.c_proj.bias`));
      e.set(`${L}mlp.W_in`, g(`${h}mlp.c_fc.weight`));
      e.set(`${L}mlp.b_in`, g(`${h}mlp.c_fc.bias`));
      e.set(`${L}mlp.W_out`, g(`${h}mlp.c_proj.weight`));
      e.set(`${L}mlp.b_out`, g(`${h}mlp.c_proj.bias`));
      for (const [tl, hf] of [
        ['ln1', 'ln_1'],
        ['ln2', 'ln_2'],
      ]) {
        e.set(`${L}${tl}.w`, g(`${h}${hf}.weight`));
        e.set(`${L}${tl}.b`, g(`${h}${hf}.bias`));
      }
    }
    e.set('ln_final.w', g(`${p}ln_f.weight`));
    e.set('ln_final.b', g(`${p}ln_f.bias`));
    e.set('unembed.W_U', transpose(g(`${p}wte.weight`), V, C));
  } else if (cfg.family === 'neox') {
    e.set('embed.W_E', g('gpt_neox.embed_in.weight'));
    for (let l = 0; l < cfg.n_layers; l++) {
      const h = `gpt_neox.layers.${l}.`;
      const L = `blocks.${l}.`;
      const w = g(`${h}attention.query_key_value.weight`); // [H * 3 * dh, C]: per head q, k, v rows
      const b = g(`${h}attention.query_key_value.bias`);
      ['Q', 'K', 'V'].forEach((x, k) => {
        e.set(
          `${L}attn.W_${x}`,
          perHead(H, C, dh, (hd, i, j) => w[(hd * 3 * dh + k * dh + j) * C + i]),
        );
        e.set(
          `${L}attn.b_${x}`,
          Float32Array.from({ length: H * dh }, (_, n) => b[Math.floor(n / dh) * 3 * dh + k * dh + (n % dh)]),
        );
      });
      e.set(`${L}attn.W_O`, transpose(g(`${h}attention.dense.weight`), C, H * dh));
      e.set(`${L}attn.b_O`, g(`${h}attention.dense.bias`));
      e.set(`${L}mlp.W_in`, transpose(g(`${h}mlp.dense_h_to_4h.weight`), M, C));
      e.set(`${L}mlp.b_in`, g(`${h}mlp.dense_h_to_4h.bias`));
      e.set(`${L}mlp.W_out`, transpose(g(`${h}mlp.dense_4h_to_h.weight`), C, M));
      e.set(`${L}mlp.b_out`, g(`${h}mlp.dense_4h_to_h.bias`));
      for (const [tl, hf] of [
        ['ln1', 'input_layernorm'],
        ['ln2', 'post_attention_layernorm'],
      ]) {
        e.set(`${L}${tl}.w`, g(`${h}${hf}.weight`));
        e.set(`${L}${tl}.b`, g(`${h}${hf}.bias`));
      }
    }
    e.set('ln_final.w', g('gpt_neox.final_layer_norm.weight'));
    e.set('ln_final.b', g('gpt_neox.final_layer_norm.bias'));
    e.set('unembed.W_U', transpose(g('embed_out.weight'), V, C));
  } else {
    e.set('embed.W_E', g('model.embed_tokens.weight'));
    for (let l = 0; l < cfg.n_layers; l++) {
      const h = `model.layers.${l}.`;
      const L = `blocks.${l}.`;
      const proj = (x: string, heads: number) => {
        const w = g(`${h}self_attn.${x}_proj.weight`); // [heads * dh, C]
        return perHead(heads, C, dh, (hd, i, j) => w[(hd * dh + j) * C + i]);
      };
      e.set(`${L}attn.W_Q`, proj('q', H));
      e.set(`${L}attn._W_K`, proj('k', Hkv));
      e.set(`${L}attn._W_V`, proj('v', Hkv));
      e.set(`${L}attn.b_Q`, zeros(H * dh));
      e.set(`${L}attn._b_K`, zeros(Hkv * dh));
      e.set(`${L}attn._b_V`, zeros(Hkv * dh));
      e.set(`${L}attn.W_O`, transpose(g(`${h}self_attn.o_proj.weight`), C, H * dh));
      e.set(`${L}attn.b_O`, zeros(C));
      e.set(`${L}mlp.W_in`, transpose(g(`${h}mlp.up_proj.weight`), M, C));
      e.set(`${L}mlp.W_gate`, transpose(g(`${h}mlp.gate_proj.weight`), M, C));
      e.set(`${L}mlp.b_in`, zeros(M));
      e.set(`${L}mlp.W_out`, transpose(g(`${h}mlp.down_proj.weight`), C, M));
      e.set(`${L}mlp.b_out`, zeros(C));
      e.set(`${L}ln1.w`, g(`${h}input_layernorm.weight`));
      e.set(`${L}ln2.w`, g(`${h}post_attention_layernorm.weight`));
    }
    e.set('ln_final.w', g('model.norm.weight'));
    e.set('unembed.W_U', transpose(g('lm_head.weight'), V, C));
  }
  e.set('unembed.b_U', zeros(V));
  return e;
}

/** x [rows, K] @ W [K, N] + b [N], float64 accumulation. */
function affine(x: Float32Array, rows: number, W: Float32Array, K: number, N: number, b?: Float32Array): Float32Array {
  const out = new Float32Array(rows * N);
  for (let r = 0; r < rows; r++) {
    for (let n = 0; n < N; n++) {
      let s = b ? b[n] : 0;
      for (let k = 0; k < K; k++) s += x[r * K + k] * W[k * N + n];
      out[r * N + n] = s;
    }
  }
  return out;
}

/** TL's per-head einsum: x [rows, C] with W [heads, C, dh] + b [heads, dh] -> [rows, heads, dh]. */
function headsIn(x: Float32Array, rows: number, W: WeightTensor, b: WeightTensor): Float32Array {
  const [heads, C, dh] = W.shape;
  const out = new Float32Array(rows * heads * dh);
  for (let h = 0; h < heads; h++) {
    const Wh = W.data.subarray(h * C * dh, (h + 1) * C * dh);
    const part = affine(x, rows, Wh, C, dh, b.data.subarray(h * dh, (h + 1) * dh));
    for (let r = 0; r < rows; r++) out.set(part.subarray(r * dh, (r + 1) * dh), (r * heads + h) * dh);
  }
  return out;
}

describe.each(NAMES)('%s weights under TransformerLens names', (name) => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource(name));
  });
  afterAll(() => model?.destroy());

  it("the state dict equals the checkpoint in TL's layouts, bit for bit", async () => {
    const want = expected(name, model);
    const sd = await model.stateDict();
    expect([...sd.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [n, t] of sd) {
      expect(t.data.length, n).toBe(t.shape.reduce((a, b) => a * b, 1));
      expectSame(n, t.data, want.get(n));
    }
    const { n_layers: L, n_heads: H, n_key_value_heads: Hkv, d_model: C, d_head: dh, d_mlp: M } = model.config;
    expect(sd.get('blocks.0.attn.W_Q')!.shape).toEqual([H, C, dh]);
    expect(sd.get('blocks.0.attn.W_O')!.shape).toEqual([H, dh, C]);
    expect(sd.get('unembed.W_U')!.shape).toEqual([C, model.config.d_vocab]);
    // Model-level stacks and model.blocks.
    const WQ = await model.W_Q;
    expect(WQ.shape).toEqual([L, H, C, dh]);
    expectSame('W_Q[1]', WQ.data.subarray(H * C * dh), want.get('blocks.1.attn.W_Q'));
    expect((await model.W_out).shape).toEqual([L, M, C]);
    expectSame('blocks[1].mlp.W_in', (await model.blocks[1].mlp.W_in).data, want.get('blocks.1.mlp.W_in'));
    expectSame('W_E', (await model.W_E).data, want.get('embed.W_E'));
    if (Hkv !== H) {
      // TL's W_K property: key/value head g serves query heads g * (H / Hkv) ...
      const stored = want.get('blocks.0.attn._W_K')!;
      const WK = await model.blocks[0].attn.W_K;
      expect(WK.shape).toEqual([H, C, dh]);
      for (let h = 0; h < H; h++) {
        const g = Math.floor(h / (H / Hkv));
        expectSame(`W_K head ${h}`, WK.data.subarray(h * C * dh, (h + 1) * C * dh), stored.subarray(g * C * dh, (g + 1) * C * dh));
      }
      expect((await model.blocks[0].attn._W_K!).shape).toEqual([Hkv, C, dh]);
      expect((await model.b_K).shape).toEqual([L, H, dh]);
    }
  });

  it("is laid out as TransformerLens' einsums read it: layer 0 and the logits from TL's raw cache", async () => {
    const tl = st(name, 'tl/raw.safetensors');
    const cfg = model.config;
    const { d_model: C, d_mlp: M, d_vocab: V } = cfg;
    const [B, T] = tl.info('hook_embed').shape;
    const rows = B * T;
    const w = (n: string) => model.weight(n);
    // ln1's output: TL's hook_normalized times the gain, plus the bias.
    const norm = async (ln: string) => {
      const n = tl.float32(`blocks.0.${ln}.hook_normalized`);
      const gain = (await w(`blocks.0.${ln}.w`)).data;
      const bias = cfg.normalization === 'LN' ? (await w(`blocks.0.${ln}.b`)).data : new Float32Array(C);
      return n.map((x, i) => x * gain[i % C] + bias[i % C]);
    };
    const x1 = await norm('ln1');
    for (const k of ['q', 'k', 'v'] as const) {
      const K = k.toUpperCase();
      expectClose(
        `hook_${k}`,
        headsIn(x1, rows, await w(`blocks.0.attn.W_${K}`), await w(`blocks.0.attn.b_${K}`)),
        expandKv(tl.float32(`blocks.0.attn.hook_${k}`), tl.info(`blocks.0.attn.hook_${k}`).shape, cfg.n_heads),
      );
    }
    // attn_out = sum_h z[h] @ W_O[h] + b_O: W_O [H, dh, C] flattens to [H * dh, C].
    const WO = await w('blocks.0.attn.W_O');
    expectClose('hook_attn_out', affine(tl.float32('blocks.0.attn.hook_z'), rows, WO.data, WO.shape[0] * WO.shape[1], C, (await w('blocks.0.attn.b_O')).data), tl.float32('blocks.0.hook_attn_out'));
    const x2 = await norm('ln2');
    const pre = cfg.gated_mlp ? 'blocks.0.mlp.W_gate' : 'blocks.0.mlp.W_in';
    expectClose('mlp.hook_pre', affine(x2, rows, (await w(pre)).data, C, M, cfg.gated_mlp ? undefined : (await w('blocks.0.mlp.b_in')).data), tl.float32('blocks.0.mlp.hook_pre'));
    expectClose(
      'hook_mlp_out',
      affine(tl.float32('blocks.0.mlp.hook_post'), rows, (await w('blocks.0.mlp.W_out')).data, M, C, (await w('blocks.0.mlp.b_out')).data),
      tl.float32('blocks.0.hook_mlp_out'),
    );
    expectClose('logits', affine(tl.float32('unembed.hook_in'), rows, (await model.W_U).data, C, V, (await model.b_U).data), tl.float32('logits'));
  });

  it('an unknown name suggests real ones', async () => {
    await expect(model.weight('blocks.0.attn.W_q')).rejects.toThrow(/unknown weight "blocks.0.attn.W_q"; did you mean .*blocks.0.attn.W_Q/);
    await expect(model.weight('blocks.9.attn.W_Q')).rejects.toThrow(/unknown weight/);
  });
});

/** TL's hook_k / hook_v [B, T, Hkv, dh] with each key/value head repeated for its query heads: [B, T, H, dh]. */
function expandKv(x: Float32Array, shape: readonly number[], H: number): Float32Array {
  const [B, T, Hx, dh] = shape;
  if (Hx === H) return x;
  const out = new Float32Array(B * T * H * dh);
  for (let r = 0; r < B * T; r++) for (let h = 0; h < H; h++) out.set(x.subarray((r * Hx + Math.floor(h / (H / Hx))) * dh, (r * Hx + Math.floor(h / (H / Hx)) + 1) * dh), (r * H + h) * dh);
  return out;
}
