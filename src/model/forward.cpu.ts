/**
 * The GPT-2 forward on the CPU, composed of the kernels' CPU references. An independent check
 * of the GPU pass for shapes no fixture covers (synthetic configs, split embeddings). Slow:
 * for tests on tiny models only. Returns every hook activation by name plus `logits`.
 */
import { attentionCpu } from '../gpu/kernels/attention.cpu.ts';
import { addCpu, geluNewCpu } from '../gpu/kernels/elementwise.cpu.ts';
import { gatherCpu } from '../gpu/kernels/embed.cpu.ts';
import { layernormCpu } from '../gpu/kernels/layernorm.cpu.ts';
import { matmulCpu } from '../gpu/kernels/matmul.cpu.ts';
import type { ModelConfig } from './config.ts';
import type { HostWeights } from './host-weights.ts';

/**
 * `edit`, if given, is called at each hook point with the activation (and may change it in
 * place) before the pass reads it, like a hook. Edits of hook_attn_scores / hook_pattern do not
 * reach z here (the reference computes attention in one step).
 */
export function forwardCpu(
  cfg: ModelConfig,
  w: HostWeights,
  tokens: number[][],
  edit?: (name: string, act: Float32Array) => void,
): Map<string, Float32Array> {
  const B = tokens.length;
  const T = tokens[0].length;
  const { d_model: C, n_heads: H, d_head: dh, d_mlp: M, d_vocab: V, eps } = cfg;
  const BT = B * T;
  const acts = new Map<string, Float32Array>();
  const f = (n: number) => new Float32Array(n);
  const put = (name: string, act: Float32Array) => {
    edit?.(name, act);
    acts.set(name, act);
  };

  const embed = f(BT * C); // (B, T, C)
  gatherCpu(embed, tokens.flat(), w.W_E.data, BT, C);
  put('hook_embed', embed);
  const posEmbed = f(BT * C); // (B, T, C)
  gatherCpu(posEmbed, Array.from({ length: BT }, (_, i) => i % T), w.W_pos.data, BT, C);
  put('hook_pos_embed', posEmbed);
  let resid = f(BT * C); // (B, T, C)
  addCpu(resid, embed, posEmbed, BT * C);

  for (let l = 0; l < cfg.n_layers; l++) {
    const p = w.layers[l];
    const L = `blocks.${l}`;
    put(`${L}.hook_resid_pre`, resid);
    const ln1 = f(BT * C);
    const ln1Scale = f(BT);
    layernormCpu(ln1, ln1Scale, resid, p.ln1_w.data, p.ln1_b.data, BT, C, eps);
    put(`${L}.ln1.hook_scale`, ln1Scale);
    put(`${L}.ln1.hook_normalized`, ln1);
    const q = f(BT * H * dh); // (B, T, H, dh)
    const k = f(BT * H * dh);
    const v = f(BT * H * dh);
    matmulCpu(q, ln1, p.W_Q.data, p.b_Q.data, BT, H * dh, C);
    put(`${L}.attn.hook_q`, q);
    matmulCpu(k, ln1, p.W_K.data, p.b_K.data, BT, H * dh, C);
    put(`${L}.attn.hook_k`, k);
    matmulCpu(v, ln1, p.W_V.data, p.b_V.data, BT, H * dh, C);
    put(`${L}.attn.hook_v`, v);
    const scores = f(B * H * T * T); // (B, H, T, T)
    const pattern = f(B * H * T * T);
    const z = f(BT * H * dh); // (B, T, H, dh)
    attentionCpu(scores, pattern, z, q, k, v, B, T, H, dh);
    put(`${L}.attn.hook_attn_scores`, scores);
    put(`${L}.attn.hook_pattern`, pattern);
    put(`${L}.attn.hook_z`, z);
    const attnOut = f(BT * C);
    matmulCpu(attnOut, z, p.W_O.data, p.b_O.data, BT, C, H * dh);
    put(`${L}.hook_attn_out`, attnOut);
    const residMid = f(BT * C);
    addCpu(residMid, resid, attnOut, BT * C);
    put(`${L}.hook_resid_mid`, residMid);
    const ln2 = f(BT * C);
    const ln2Scale = f(BT);
    layernormCpu(ln2, ln2Scale, residMid, p.ln2_w.data, p.ln2_b.data, BT, C, eps);
    put(`${L}.ln2.hook_scale`, ln2Scale);
    put(`${L}.ln2.hook_normalized`, ln2);
    const pre = f(BT * M); // (B, T, d_mlp)
    matmulCpu(pre, ln2, p.W_in.data, p.b_in.data, BT, M, C);
    put(`${L}.mlp.hook_pre`, pre);
    const post = f(BT * M);
    geluNewCpu(post, pre, BT * M);
    put(`${L}.mlp.hook_post`, post);
    const mlpOut = f(BT * C);
    matmulCpu(mlpOut, post, p.W_out.data, p.b_out.data, BT, C, M);
    put(`${L}.hook_mlp_out`, mlpOut);
    const residPost = f(BT * C);
    addCpu(residPost, residMid, mlpOut, BT * C);
    put(`${L}.hook_resid_post`, residPost);
    resid = residPost;
  }
  const lnf = f(BT * C);
  const lnfScale = f(BT);
  layernormCpu(lnf, lnfScale, resid, w.lnf_w.data, w.lnf_b.data, BT, C, eps);
  put('ln_final.hook_scale', lnfScale);
  put('ln_final.hook_normalized', lnf);
  const logits = f(BT * V); // (B, T, V)
  matmulCpu(logits, lnf, w.W_E.data, null, BT, V, C, true);
  put('logits', logits);
  return acts;
}
