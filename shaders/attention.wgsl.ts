/**
 * Causal self-attention, one step per entry point so every intermediate is a hook point:
 *
 *   attn_scores   scores[b, h, i, j] = (q[b, i, h] . k[b, j, h]) * scale   for j <= i, -inf above
 *   attn_softmax  pattern[b, h, i, :] = softmax(scores[b, h, i, 0..i]), zeros above the diagonal
 *   attn_z        z[b, i, h, d] = sum_{j <= i} pattern[b, h, i, j] * v[b, j, h, d]
 *
 * q, k, v, z: [B, T, H, dh] (TransformerLens' per-head layout, which is also the row layout
 * of x @ W_Q); scores, pattern: [B, H, T, T].
 *
 * Versions (each entry point, v1 only so far): one invocation per output element (per row for
 * the softmax), 64 per workgroup, folded into 2-D past 65,535 workgroups. The softmax
 * subtracts the row max before exp, so scores of +-100 or more cannot overflow.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const ATTENTION_VERSIONS = ['attn_scores', 'attn_softmax', 'attn_z'] as const;

export function attentionSource(): string {
  return wgsl`
struct Params {
  B: u32, T: u32, H: u32, dh: u32,
  scale: f32,         // 1 / sqrt(dh)
  neg_inf_bits: u32,  // 0xff800000: -inf for masked scores (a constant -inf is a WGSL compile error)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;         // scores: q;   softmax: scores; z: pattern
@group(0) @binding(2) var<storage, read> b: array<f32>;         // scores: k;   softmax: unused; z: v
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // scores: scores; softmax: pattern; z: z

fn linear(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * 64u; }

@compute @workgroup_size(64)
fn attn_scores(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = linear(gid, nwg);
  if (idx >= p.B * p.H * p.T * p.T) { return; }
  let j = idx % p.T;
  let i = (idx / p.T) % p.T;
  let h = (idx / (p.T * p.T)) % p.H;
  let bt = idx / (p.T * p.T * p.H);
  if (j > i) { out[idx] = bitcast<f32>(p.neg_inf_bits); return; }
  let qo = ((bt * p.T + i) * p.H + h) * p.dh;
  let ko = ((bt * p.T + j) * p.H + h) * p.dh;
  var acc = 0.0;
  for (var d = 0u; d < p.dh; d++) { acc += a[qo + d] * b[ko + d]; }
  out[idx] = acc * p.scale;
}

@compute @workgroup_size(64)
fn attn_softmax(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = linear(gid, nwg); // (b, h, i)
  if (row >= p.B * p.H * p.T) { return; }
  let i = row % p.T;
  let base = row * p.T;
  var mx = a[base];
  for (var j = 1u; j <= i; j++) { mx = max(mx, a[base + j]); }
  var sum = 0.0;
  for (var j = 0u; j <= i; j++) { sum += exp(a[base + j] - mx); }
  for (var j = 0u; j < p.T; j++) {
    if (j <= i) { out[base + j] = exp(a[base + j] - mx) / sum; } else { out[base + j] = 0.0; }
  }
}

@compute @workgroup_size(64)
fn attn_z(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = linear(gid, nwg); // (b, i, h, d)
  if (idx >= p.B * p.T * p.H * p.dh) { return; }
  let d = idx % p.dh;
  let h = (idx / p.dh) % p.H;
  let i = (idx / (p.dh * p.H)) % p.T;
  let bt = idx / (p.dh * p.H * p.T);
  let prow = ((bt * p.H + h) * p.T + i) * p.T;
  var acc = 0.0;
  for (var j = 0u; j <= i; j++) {
    acc += a[prow + j] * b[((bt * p.T + j) * p.H + h) * p.dh + d];
  }
  out[idx] = acc;
}
`;
}
