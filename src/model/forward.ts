/**
 * The GPT-2 forward pass, top to bottom, for one (batch, pos) shape.
 *
 * `buildForward` allocates every activation once, prepares every dispatch (pipeline, bind group,
 * uniforms) and returns a plan: a flat list of kernel dispatches interleaved with named hook
 * sites. A run replays the plan into one command encoder; at a site it may copy the activation
 * into a cache (and, from the next issue on, overwrite it). With nothing asked of a site, the
 * site costs nothing. Activation buffers are scratch shared by all layers, so memory does not
 * grow with depth; what a caller wants to keep is copied out at its site.
 *
 * Names of the sites are TransformerLens' hook points for GPT-2.
 */
import type { Gpu } from '../gpu/device.ts';
import type { Dispatch, Params } from '../gpu/recorder.ts';
import { matmul } from '../gpu/kernels/matmul.ts';
import { layernorm } from '../gpu/kernels/layernorm.ts';
import { attnScores, attnSoftmax, attnZ } from '../gpu/kernels/attention.ts';
import { add, geluNew } from '../gpu/kernels/elementwise.ts';
import { gather } from '../gpu/kernels/embed.ts';
import { headResult, sumHeads } from '../gpu/kernels/head-result.ts';
import type { ModelConfig } from './config.ts';
import type { GpuWeights } from './gpu-weights.ts';
import { planUnembed } from './unembed.ts';
import { sizeClass } from '../gpu/pool.ts';

/** A named point of the pass where an activation of `shape` sits in `buffer`. */
export interface Site {
  kind: 'site';
  name: string;
  buffer: GPUBuffer;
  shape: number[];
}

export type PlanStep = Dispatch | Site;

export interface ForwardPlan {
  batch: number;
  pos: number;
  withResult: boolean;
  steps: PlanStep[];
  /** Token ids, [batch * pos] u32, written before each run. */
  ids: GPUBuffer;
  /** [batch, pos, d_vocab] */
  logits: GPUBuffer;
  logitsShape: number[];
  /** Every site in order, by name. */
  sites: Map<string, Site>;
  /** Bytes of activation scratch this plan holds. */
  bytes: number;
  destroy(): void;
}

/** The forward's scratch activations, in floats, with shapes; shared by every layer. */
export function scratchSizes(cfg: ModelConfig, B: number, T: number, withResult = false) {
  const { d_model: C, n_heads: H, d_head: dh, d_mlp: M, d_vocab: V } = cfg;
  const BT = B * T;
  return {
    ids: BT, // [B, T] u32
    posIds: BT, // [B, T] u32
    embed: BT * C, // [B, T, C]
    posEmbed: BT * C, // [B, T, C]
    residA: BT * C, // [B, T, C] ping-pong with residB: resid_pre / resid_post alternate per layer
    residB: BT * C, // [B, T, C]
    ln1: BT * C, // [B, T, C]
    ln1Scale: BT, // [B, T, 1]
    q: BT * H * dh, // [B, T, H, dh]
    k: BT * H * dh, // [B, T, H, dh]
    v: BT * H * dh, // [B, T, H, dh]
    scores: B * H * T * T, // [B, H, T, T]
    pattern: B * H * T * T, // [B, H, T, T]
    z: BT * H * dh, // [B, T, H, dh]
    result: withResult ? BT * H * C : 0, // [B, T, H, C] per-head outputs, only when asked for
    attnOut: BT * C, // [B, T, C]
    residMid: BT * C, // [B, T, C]
    ln2: BT * C, // [B, T, C]
    ln2Scale: BT, // [B, T, 1]
    mlpPre: BT * M, // [B, T, d_mlp]
    mlpPost: BT * M, // [B, T, d_mlp]
    mlpOut: BT * C, // [B, T, C]
    lnf: BT * C, // [B, T, C]
    lnfScale: BT, // [B, T, 1]
    logits: BT * V, // [B, T, V]
  };
}

/** Bytes of pool memory a plan of this shape takes (size classes included). */
export function scratchBytes(cfg: ModelConfig, B: number, T: number, withResult = false): number {
  return Object.values(scratchSizes(cfg, B, T, withResult)).reduce((n, f) => n + (f ? sizeClass(f * 4) : 0), 0);
}

/**
 * `withResult` adds `hook_result`: each head's output after W_O, [B, T, H, d_model], from which
 * attn_out is then summed (instead of one z @ W_O matmul).
 */
export function buildForward(gpu: Gpu, cfg: ModelConfig, w: GpuWeights, B: number, T: number, withResult = false): ForwardPlan {
  const { d_model: C, n_heads: H, d_head: dh, d_mlp: M, d_vocab: V, eps } = cfg;
  const BT = B * T;
  const params: Params[] = [];
  const owned: GPUBuffer[] = [];
  const sizes = scratchSizes(cfg, B, T, withResult);
  const a = {} as Record<keyof typeof sizes, GPUBuffer>;
  for (const [name, floats] of Object.entries(sizes) as [keyof typeof sizes, number][]) {
    if (floats === 0) continue;
    a[name] = gpu.pool.acquire(floats * 4, name);
    owned.push(a[name]);
  }
  const resid = [a.residA, a.residB];
  const pos = new Uint32Array(BT).map((_, i) => i % T);
  gpu.device.queue.writeBuffer(a.posIds, 0, pos);

  const steps: PlanStep[] = [];
  const sites = new Map<string, Site>();
  const op = (...d: Dispatch[]) => steps.push(...d);
  const site = (name: string, buffer: GPUBuffer, shape: number[]) => {
    const s: Site = { kind: 'site', name, buffer, shape };
    steps.push(s);
    sites.set(name, s);
  };
  const attnDims = { B, T, H, dh };

  op(...gather(gpu, a.embed, a.ids, w.W_E, BT, C, params, 'embed')); // (B, T, C)
  site('hook_embed', a.embed, [B, T, C]);
  op(...gather(gpu, a.posEmbed, a.posIds, w.W_pos, BT, C, params, 'pos_embed')); // (B, T, C)
  site('hook_pos_embed', a.posEmbed, [B, T, C]);
  op(add(gpu, resid[0], a.embed, a.posEmbed, BT * C, params, 'embed + pos_embed')); // (B, T, C)

  for (let l = 0; l < cfg.n_layers; l++) {
    const p = w.layers[l];
    const L = `blocks.${l}`;
    const residPre = resid[l % 2];
    const residPost = resid[(l + 1) % 2];
    site(`${L}.hook_resid_pre`, residPre, [B, T, C]);

    // Attention.
    op(layernorm(gpu, { out: a.ln1, scale: a.ln1Scale, x: residPre, w: p.ln1_w, b: p.ln1_b, rows: BT, C, eps, label: `${L}.ln1` }, params));
    site(`${L}.ln1.hook_scale`, a.ln1Scale, [B, T, 1]);
    site(`${L}.ln1.hook_normalized`, a.ln1, [B, T, C]);
    op(matmul(gpu, { out: a.q, a: a.ln1, b: p.W_Q, bias: p.b_Q, M: BT, N: H * dh, K: C, label: `${L}.attn.q` }, params)); // (B, T, H, dh)
    site(`${L}.attn.hook_q`, a.q, [B, T, H, dh]);
    op(matmul(gpu, { out: a.k, a: a.ln1, b: p.W_K, bias: p.b_K, M: BT, N: H * dh, K: C, label: `${L}.attn.k` }, params)); // (B, T, H, dh)
    site(`${L}.attn.hook_k`, a.k, [B, T, H, dh]);
    op(matmul(gpu, { out: a.v, a: a.ln1, b: p.W_V, bias: p.b_V, M: BT, N: H * dh, K: C, label: `${L}.attn.v` }, params)); // (B, T, H, dh)
    site(`${L}.attn.hook_v`, a.v, [B, T, H, dh]);
    op(attnScores(gpu, attnDims, a.scores, a.q, a.k, params, `${L}.attn.scores`)); // (B, H, T, T)
    site(`${L}.attn.hook_attn_scores`, a.scores, [B, H, T, T]);
    op(attnSoftmax(gpu, attnDims, a.pattern, a.scores, params, `${L}.attn.softmax`)); // (B, H, T, T)
    site(`${L}.attn.hook_pattern`, a.pattern, [B, H, T, T]);
    op(attnZ(gpu, attnDims, a.z, a.pattern, a.v, params, `${L}.attn.z`)); // (B, T, H, dh)
    site(`${L}.attn.hook_z`, a.z, [B, T, H, dh]);
    if (withResult) {
      op(headResult(gpu, a.result, a.z, p.W_O, BT, H, dh, C, params, `${L}.attn.result`)); // (B, T, H, C)
      site(`${L}.attn.hook_result`, a.result, [B, T, H, C]);
      op(sumHeads(gpu, a.attnOut, a.result, p.b_O, BT, H, C, params, `${L}.attn.out`)); // (B, T, C)
    } else {
      op(matmul(gpu, { out: a.attnOut, a: a.z, b: p.W_O, bias: p.b_O, M: BT, N: C, K: H * dh, label: `${L}.attn.out` }, params)); // (B, T, C)
    }
    site(`${L}.hook_attn_out`, a.attnOut, [B, T, C]);
    op(add(gpu, a.residMid, residPre, a.attnOut, BT * C, params, `${L}.resid_mid`)); // (B, T, C)
    site(`${L}.hook_resid_mid`, a.residMid, [B, T, C]);

    // MLP.
    op(layernorm(gpu, { out: a.ln2, scale: a.ln2Scale, x: a.residMid, w: p.ln2_w, b: p.ln2_b, rows: BT, C, eps, label: `${L}.ln2` }, params));
    site(`${L}.ln2.hook_scale`, a.ln2Scale, [B, T, 1]);
    site(`${L}.ln2.hook_normalized`, a.ln2, [B, T, C]);
    op(matmul(gpu, { out: a.mlpPre, a: a.ln2, b: p.W_in, bias: p.b_in, M: BT, N: M, K: C, label: `${L}.mlp.in` }, params)); // (B, T, d_mlp)
    site(`${L}.mlp.hook_pre`, a.mlpPre, [B, T, M]);
    op(geluNew(gpu, a.mlpPost, a.mlpPre, BT * M, params, `${L}.mlp.gelu_new`)); // (B, T, d_mlp)
    site(`${L}.mlp.hook_post`, a.mlpPost, [B, T, M]);
    op(matmul(gpu, { out: a.mlpOut, a: a.mlpPost, b: p.W_out, bias: p.b_out, M: BT, N: C, K: M, label: `${L}.mlp.out` }, params)); // (B, T, C)
    site(`${L}.hook_mlp_out`, a.mlpOut, [B, T, C]);
    op(add(gpu, residPost, a.residMid, a.mlpOut, BT * C, params, `${L}.resid_post`)); // (B, T, C)
    site(`${L}.hook_resid_post`, residPost, [B, T, C]);
  }

  const residFinal = resid[cfg.n_layers % 2];
  op(layernorm(gpu, { out: a.lnf, scale: a.lnfScale, x: residFinal, w: w.lnf_w, b: w.lnf_b, rows: BT, C, eps, label: 'ln_final' }, params));
  site('ln_final.hook_scale', a.lnfScale, [B, T, 1]);
  site('ln_final.hook_normalized', a.lnf, [B, T, C]);
  op(...planUnembed(gpu, a.logits, a.lnf, w.W_E, BT, C, V, params)); // (B, T, V)

  const bytes = owned.reduce((s, b) => s + b.size, 0);
  return {
    batch: B,
    pos: T,
    withResult,
    steps,
    ids: a.ids,
    logits: a.logits,
    logitsShape: [B, T, V],
    sites,
    bytes,
    destroy() {
      for (const b of owned) gpu.pool.release(b);
      for (const u of params) u.destroy();
      owned.length = 0;
    },
  };
}
