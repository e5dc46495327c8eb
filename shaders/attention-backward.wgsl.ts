/**
 * The backward of causal self-attention (`attention.wgsl.ts`), one entry point per gradient so
 * hook_pattern, hook_attn_scores, hook_q/k/v (or hook_rot_q/k) each get theirs as a site:
 *
 *   attn_dpattern   dpattern[b, h, i, j] = sum_d dz[b, i, h, d] v[b, j, g(h), d]      every j (as autograd: above
 *                   the diagonal this is v . dz, which no attribution reads)
 *   attn_dv         dv[b, j, g, d] = sum_{h in g} sum_{i: q0 + i >= j} pattern[b, h, i, j] dz[b, i, h, d]
 *   attn_softmax_backward
 *                   dscores[b, h, i, j] = pattern (dpattern - sum_j' pattern dpattern) for j <= q0 + i, else 0
 *   attn_dq         dq[b, i, h, d] = scale sum_{j <= q0 + i} dscores[b, h, i, j] k[b, j, g(h), d]
 *   attn_dk         dk[b, j, g, d] = scale sum_{h in g} sum_{i: q0 + i >= j} dscores[b, h, i, j] q[b, i, h, d]
 *
 * Layouts as the forward: q, z, dq, dz [B, Tq, H, dh]; k, v, dk, dv [B, Tk, Hkv, dh];
 * pattern, scores and their gradients [B, H, Tq, Tk]. Grouped-query attention: query head h
 * reads key/value head g(h) = h / (H / Hkv), so a key/value head's gradient sums its query
 * heads' shares (in head order, inside one invocation: deterministic, no atomics). Query row i
 * is absolute position q0 + i.
 *
 * Versions: v1 of each, one invocation per output element (per row for the softmax), 64 per
 * workgroup, folded into 2-D past 65,535 workgroups.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const ATTENTION_BACKWARD_VERSIONS = ['attn_dpattern_v1', 'attn_dv_v1', 'attn_softmax_backward_v1', 'attn_dq_v1', 'attn_dk_v1'] as const;

export function attentionBackwardSource(): string {
  return wgsl`
struct Params {
  B: u32, Tq: u32, Tk: u32, H: u32, Hkv: u32, dh: u32,
  q0: u32,     // absolute position of query row 0
  scale: f32,  // 1 / sqrt(dh)
}

@group(0) @binding(0) var<uniform> p: Params;
// dpattern: dz, v;   dv: pattern, dz;   softmax: pattern, dpattern;   dq: dscores, k;   dk: dscores, q
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn linear(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * 64u; }
fn group(h: u32) -> u32 { return h / (p.H / p.Hkv); }
fn qIndex(bt: u32, i: u32, h: u32) -> u32 { return ((bt * p.Tq + i) * p.H + h) * p.dh; }
fn kIndex(bt: u32, j: u32, g: u32) -> u32 { return ((bt * p.Tk + j) * p.Hkv + g) * p.dh; }
fn sIndex(bt: u32, h: u32, i: u32, j: u32) -> u32 { return ((bt * p.H + h) * p.Tq + i) * p.Tk + j; }
// The first query row that sees key j.
fn firstQuery(j: u32) -> u32 { return select(0u, j - p.q0, j > p.q0); }

@compute @workgroup_size(64)
fn attn_dpattern_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = linear(gid, nwg);
  if (idx >= p.B * p.H * p.Tq * p.Tk) { return; }
  let j = idx % p.Tk;
  let i = (idx / p.Tk) % p.Tq;
  let h = (idx / (p.Tk * p.Tq)) % p.H;
  let bt = idx / (p.Tk * p.Tq * p.H);
  let zo = qIndex(bt, i, h);
  let vo = kIndex(bt, j, group(h));
  var acc = 0.0;
  for (var d = 0u; d < p.dh; d++) { acc += a[zo + d] * b[vo + d]; }
  out[idx] = acc;
}

@compute @workgroup_size(64)
fn attn_dv_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = linear(gid, nwg); // (b, j, g, d)
  if (idx >= p.B * p.Tk * p.Hkv * p.dh) { return; }
  let d = idx % p.dh;
  let g = (idx / p.dh) % p.Hkv;
  let j = (idx / (p.dh * p.Hkv)) % p.Tk;
  let bt = idx / (p.dh * p.Hkv * p.Tk);
  let per = p.H / p.Hkv;
  var acc = 0.0;
  for (var h = g * per; h < (g + 1u) * per; h++) {
    for (var i = firstQuery(j); i < p.Tq; i++) { acc += a[sIndex(bt, h, i, j)] * b[qIndex(bt, i, h) + d]; }
  }
  out[idx] = acc;
}

@compute @workgroup_size(64)
fn attn_softmax_backward_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = linear(gid, nwg); // (b, h, i)
  if (row >= p.B * p.H * p.Tq) { return; }
  let last = p.q0 + row % p.Tq; // the last key this query sees
  let base = row * p.Tk;
  var dot = 0.0;
  for (var j = 0u; j <= last; j++) { dot += a[base + j] * b[base + j]; }
  for (var j = 0u; j < p.Tk; j++) {
    if (j <= last) { out[base + j] = a[base + j] * (b[base + j] - dot); } else { out[base + j] = 0.0; }
  }
}

@compute @workgroup_size(64)
fn attn_dq_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = linear(gid, nwg); // (b, i, h, d)
  if (idx >= p.B * p.Tq * p.H * p.dh) { return; }
  let d = idx % p.dh;
  let h = (idx / p.dh) % p.H;
  let i = (idx / (p.dh * p.H)) % p.Tq;
  let bt = idx / (p.dh * p.H * p.Tq);
  let g = group(h);
  var acc = 0.0;
  for (var j = 0u; j <= p.q0 + i; j++) { acc += a[sIndex(bt, h, i, j)] * b[kIndex(bt, j, g) + d]; }
  out[idx] = acc * p.scale;
}

@compute @workgroup_size(64)
fn attn_dk_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = linear(gid, nwg); // (b, j, g, d)
  if (idx >= p.B * p.Tk * p.Hkv * p.dh) { return; }
  let d = idx % p.dh;
  let g = (idx / p.dh) % p.Hkv;
  let j = (idx / (p.dh * p.Hkv)) % p.Tk;
  let bt = idx / (p.dh * p.Hkv * p.Tk);
  let per = p.H / p.Hkv;
  var acc = 0.0;
  for (var h = g * per; h < (g + 1u) * per; h++) {
    for (var i = firstQuery(j); i < p.Tq; i++) { acc += a[sIndex(bt, h, i, j)] * b[qIndex(bt, i, h) + d]; }
  }
  out[idx] = acc * p.scale;
}
`;
}
