/**
 * Causal self-attention, one step per entry point so every intermediate is a hook point:
 *
 *   attn_scores   scores[b, h, i, j] = (q[b, i, h] . k[b, j, h]) * scale   for j <= q0 + i, -inf above
 *                 (and, with a sliding window W > 0, -inf for keys j <= q0 + i - W too)
 *   attn_softmax  pattern[b, h, i, :] = softmax(scores[b, h, i, 0..q0+i]), zeros above
 *   attn_z        z[b, i, h, d] = sum_{j <= q0 + i} pattern[b, h, i, j] * v[b, j, h, d]
 *
 * q, z: [B, Tq, H, dh]; k, v: [B, Tk, Hkv, dh] (TransformerLens' per-head layout, which is also
 * the row layout of x @ W_Q); scores, pattern: [B, H, Tq, Tk]. With grouped-query attention
 * (Hkv < H) query head h reads key/value head h / (H / Hkv), as Hugging Face's `repeat_kv`
 * pairs them, without copying keys or values per query head. Query row i is absolute position
 * q0 + i: a full forward has q0 = 0 and Tq = Tk; a forward that resumes at position q0 computes
 * only the later queries against keys and values whose first q0 positions come from a cache.
 *
 * Versions (each entry point, v1 only so far): one invocation per output element (per row for
 * the softmax), WG per workgroup, folded into 2-D past 65,535 workgroups. The softmax
 * subtracts the row max before exp, so scores of +-100 or more cannot overflow.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const ATTENTION_VERSIONS = ['attn_scores', 'attn_softmax', 'attn_z'] as const;

export function attentionSource(): string {
  return wgsl`
struct Params {
  B: u32, Tq: u32, Tk: u32, H: u32, Hkv: u32, dh: u32,
  q0: u32,            // absolute position of query row 0
  scale: f32,         // 1 / sqrt(dh), or the model's own (Gemma's query_pre_attn_scalar^-1/2)
  neg_inf_bits: u32,  // 0xff800000: -inf for masked scores (a constant -inf is a WGSL compile error)
  window: u32,        // sliding window: a query sees its last \`window\` keys, itself included (0: all)
}

// Invocations per workgroup of the one-invocation-per-item entry points: picked on the host (Gpu.workgroupSize).
override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;         // scores: q;   softmax: scores; z: pattern
@group(0) @binding(2) var<storage, read> b: array<f32>;         // scores: k;   softmax: unused; z: v
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // scores: scores; softmax: pattern; z: z

fn linear(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }

@compute @workgroup_size(WG)
fn attn_scores(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = linear(gid, nwg);
  if (idx >= p.B * p.H * p.Tq * p.Tk) { return; }
  let j = idx % p.Tk;
  let i = (idx / p.Tk) % p.Tq;
  let h = (idx / (p.Tk * p.Tq)) % p.H;
  let bt = idx / (p.Tk * p.Tq * p.H);
  if (j > p.q0 + i || (p.window > 0u && j + p.window <= p.q0 + i)) { out[idx] = bitcast<f32>(p.neg_inf_bits); return; }
  let qo = ((bt * p.Tq + i) * p.H + h) * p.dh;
  let ko = ((bt * p.Tk + j) * p.Hkv + h / (p.H / p.Hkv)) * p.dh;
  var acc = 0.0;
  for (var d = 0u; d < p.dh; d++) { acc += a[qo + d] * b[ko + d]; }
  out[idx] = acc * p.scale;
}

@compute @workgroup_size(WG)
fn attn_softmax(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = linear(gid, nwg); // (b, h, i)
  if (row >= p.B * p.H * p.Tq) { return; }
  let last = p.q0 + row % p.Tq; // the last key this query sees
  let base = row * p.Tk;
  var mx = a[base];
  for (var j = 1u; j <= last; j++) { mx = max(mx, a[base + j]); }
  var sum = 0.0;
  for (var j = 0u; j <= last; j++) { sum += exp(a[base + j] - mx); }
  for (var j = 0u; j < p.Tk; j++) {
    if (j <= last) { out[base + j] = exp(a[base + j] - mx) / sum; } else { out[base + j] = 0.0; }
  }
}

@compute @workgroup_size(WG)
fn attn_z(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = linear(gid, nwg); // (b, i, h, d)
  if (idx >= p.B * p.Tq * p.H * p.dh) { return; }
  let d = idx % p.dh;
  let h = (idx / p.dh) % p.H;
  let i = (idx / (p.dh * p.H)) % p.Tq;
  let bt = idx / (p.dh * p.H * p.Tq);
  let prow = ((bt * p.H + h) * p.Tq + i) * p.Tk;
  let hk = h / (p.H / p.Hkv);
  var acc = 0.0;
  for (var j = 0u; j <= p.q0 + i; j++) {
    acc += a[prow + j] * b[((bt * p.Tk + j) * p.Hkv + hk) * p.dh + d];
  }
  out[idx] = acc;
}
`;
}
