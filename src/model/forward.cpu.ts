/**
 * The forward on the CPU, composed of the kernels' CPU references, for every family the GPU
 * pass runs. An independent check of the GPU pass for shapes and configs no fixture covers
 * (synthetic configs, split embeddings, Qwen2 biases). Slow: for tests on tiny models only.
 * Returns every hook activation by name plus `logits`.
 */
import { attentionCpu } from '../gpu/kernels/attention.cpu.ts';
import { activationCpu, addCpu, softcapCpu } from '../gpu/kernels/elementwise.cpu.ts';
import { gatherCpu } from '../gpu/kernels/embed.cpu.ts';
import { affineCpu, layernormCpu, normalizeCpu, rmsnormCpu } from '../gpu/kernels/layernorm.cpu.ts';
import { matmulCpu } from '../gpu/kernels/matmul.cpu.ts';
import { rotaryCpu } from '../gpu/kernels/rotary.cpu.ts';
import { attentionScale, type ModelConfig } from './config.ts';
import type { HostMatrix, HostWeights } from './host-weights.ts';
import { rotaryTables } from './rotary-tables.ts';

/**
 * `edit`, if given, is called at each hook point with the activation (and may change it in
 * place) before the pass reads it, like a hook. Edits of hook_attn_scores / hook_pattern do not
 * reach z here (the reference computes attention in one step). A norm is TransformerLens' three
 * steps: the scale (hook_scale), the input normalized by it (hook_normalized), then the gain and
 * bias, so edits of either hook point reach the output.
 */
export function forwardCpu(cfg: ModelConfig, w: HostWeights, tokens: number[][], edit?: (name: string, act: Float32Array) => void): Map<string, Float32Array> {
  const B = tokens.length;
  const T = tokens[0].length;
  const { d_model: C, n_heads: H, n_key_value_heads: Hkv, d_head: dh, d_mlp: M, d_vocab: V, eps } = cfg;
  const BT = B * T;
  const acts = new Map<string, Float32Array>();
  const f = (n: number) => new Float32Array(n);
  const put = (name: string, act: Float32Array) => {
    edit?.(name, act);
    acts.set(name, act);
  };
  const rms = cfg.normalization === 'RMS';
  /**
   * The norm's output [B, T, C] (or, per head, [B, T, heads, dh]); its scale and normalized input
   * go through the hook points `prefix.*`. Per-head norms (q_norm, k_norm) are RMSNorms.
   */
  const norm = (prefix: string, x: Float32Array, wt: HostMatrix, b: HostMatrix | undefined, heads = 0) => {
    const [rows, width] = heads ? [BT * heads, dh] : [BT, C];
    const isRms = rms || heads > 0;
    const out = f(rows * width); // (B, T, C)
    const scale = f(rows); // (B, T, 1)
    if (isRms) rmsnormCpu(out, scale, x, wt.data, rows, width, eps);
    else layernormCpu(out, scale, x, wt.data, b!.data, rows, width, eps);
    put(`${prefix}.hook_scale`, scale);
    const normalized = f(rows * width); // (B, T, C)
    normalizeCpu(normalized, x, scale, rows, width, isRms);
    put(`${prefix}.hook_normalized`, normalized);
    affineCpu(out, normalized, wt.data, isRms ? null : b!.data, rows, width);
    return out;
  };
  const tables = cfg.positional === 'rotary' ? rotaryTables(cfg) : null;
  const localTables = tables && cfg.rotary_base_local !== undefined ? rotaryTables({ ...cfg, rotary_base: cfg.rotary_base_local, rope_scaling: null }) : null;

  let resid = f(BT * C); // (B, T, C)
  const embed = f(BT * C);
  gatherCpu(embed, tokens.flat(), w.W_E.data, BT, C, cfg.embed_scale ?? 1);
  put('hook_embed', embed);
  if (w.W_pos) {
    const posEmbed = f(BT * C); // (B, T, C)
    gatherCpu(
      posEmbed,
      Array.from({ length: BT }, (_, i) => i % T),
      w.W_pos.data,
      BT,
      C,
    );
    put('hook_pos_embed', posEmbed);
    addCpu(resid, embed, posEmbed, BT * C);
  } else {
    resid = embed;
  }

  for (let l = 0; l < cfg.n_layers; l++) {
    const p = w.layers[l];
    const L = `blocks.${l}`;
    put(`${L}.hook_resid_pre`, resid);
    const ln1 = norm(`${L}.ln1`, resid, p.ln1_w, p.ln1_b); // (B, T, C)
    let q: Float32Array = f(BT * H * dh); // (B, T, H, dh)
    let k: Float32Array = f(BT * Hkv * dh); // (B, T, Hkv, dh)
    const v = f(BT * Hkv * dh);
    matmulCpu(q, ln1, p.W_Q.data, p.b_Q.data, BT, H * dh, C);
    put(`${L}.attn.hook_q`, q);
    matmulCpu(k, ln1, p.W_K.data, p.b_K.data, BT, Hkv * dh, C);
    put(`${L}.attn.hook_k`, k);
    matmulCpu(v, ln1, p.W_V.data, p.b_V.data, BT, Hkv * dh, C);
    put(`${L}.attn.hook_v`, v);
    if (cfg.qk_norm) {
      q = norm(`${L}.attn.q_norm`, q, p.q_norm_w!, undefined, H); // (B, T, H, dh)
      k = norm(`${L}.attn.k_norm`, k, p.k_norm_w!, undefined, Hkv); // (B, T, Hkv, dh)
    }
    const local = cfg.attn_types?.[l] === 'local';
    if (tables) {
      const t = local && localTables ? localTables : tables;
      const rq = f(q.length);
      const rk = f(k.length);
      rotaryCpu(rq, q, t.cos, t.sin, B, T, H, dh, cfg.rotary_dim);
      put(`${L}.attn.hook_rot_q`, rq);
      rotaryCpu(rk, k, t.cos, t.sin, B, T, Hkv, dh, cfg.rotary_dim);
      put(`${L}.attn.hook_rot_k`, rk);
      q = rq;
      k = rk;
    }
    const scores = f(B * H * T * T); // (B, H, T, T)
    const pattern = f(B * H * T * T);
    const z = f(BT * H * dh); // (B, T, H, dh)
    attentionCpu(scores, pattern, z, q, k, v, B, T, H, dh, Hkv, attentionScale(cfg, l), local ? cfg.window_size : 0);
    put(`${L}.attn.hook_attn_scores`, scores);
    put(`${L}.attn.hook_pattern`, pattern);
    put(`${L}.attn.hook_z`, z);
    let attnOut = f(BT * C);
    matmulCpu(attnOut, z, p.W_O.data, p.b_O.data, BT, C, H * dh);
    if (cfg.post_norms) attnOut = norm(`${L}.ln1_post`, attnOut, p.ln1_post_w!, undefined);
    put(`${L}.hook_attn_out`, attnOut);
    const residMid = f(BT * C);
    addCpu(residMid, resid, attnOut, BT * C);
    if (!cfg.parallel_attn_mlp) put(`${L}.hook_resid_mid`, residMid);
    const ln2 = norm(`${L}.ln2`, cfg.parallel_attn_mlp ? resid : residMid, p.ln2_w, p.ln2_b); // (B, T, C)
    const pre = f(BT * M); // (B, T, d_mlp)
    const post = f(BT * M);
    if (p.W_gate) {
      matmulCpu(pre, ln2, p.W_gate.data, p.b_gate!.data, BT, M, C);
      put(`${L}.mlp.hook_pre`, pre);
      const up = f(BT * M);
      matmulCpu(up, ln2, p.W_in.data, p.b_in.data, BT, M, C);
      put(`${L}.mlp.hook_pre_linear`, up);
      activationCpu(cfg.act_fn, post, pre, BT * M, up);
    } else {
      matmulCpu(pre, ln2, p.W_in.data, p.b_in.data, BT, M, C);
      put(`${L}.mlp.hook_pre`, pre);
      activationCpu(cfg.act_fn, post, pre, BT * M);
    }
    put(`${L}.mlp.hook_post`, post);
    let mlpOut = f(BT * C);
    matmulCpu(mlpOut, post, p.W_out.data, p.b_out.data, BT, C, M);
    if (cfg.post_norms) mlpOut = norm(`${L}.ln2_post`, mlpOut, p.ln2_post_w!, undefined);
    put(`${L}.hook_mlp_out`, mlpOut);
    const residPost = f(BT * C);
    addCpu(residPost, residMid, mlpOut, BT * C);
    put(`${L}.hook_resid_post`, residPost);
    resid = residPost;
  }
  const lnf = norm('ln_final', resid, w.lnf_w, w.lnf_b); // (B, T, C)
  put('unembed.hook_in', lnf);
  const logits = f(BT * V); // (B, T, V)
  matmulCpu(logits, lnf, (w.W_U_rows ?? w.W_E).data, w.b_U?.data ?? null, BT, V, C, true);
  put('unembed.hook_out', logits);
  if (cfg.output_logits_soft_cap) {
    const capped = logits.slice();
    softcapCpu(capped, capped.length, cfg.output_logits_soft_cap);
    acts.set('logits', capped);
  } else acts.set('logits', logits);
  return acts;
}
