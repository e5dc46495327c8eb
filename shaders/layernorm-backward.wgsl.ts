/**
 * The backward of LayerNorm and RMSNorm, split at TransformerLens' hook points so each gradient
 * is a site of its own. Forward, per row of C: xc = x - mean(x) (LayerNorm; RMSNorm: xc = x),
 * scale = sqrt(mean(xc^2) + eps)  (hook_scale), n = xc / scale  (hook_normalized), y = n w + b.
 *
 *   norm_gain_backward   dn[r, c] = dy[r, c] w[c]                                 (elementwise)
 *   norm_param_grad      dw[c] (+)= sum_r dy[r, c] n[r, c];   db[c] (+)= sum_r dy[r, c]
 *   norm_scale_grad      dscale[r] = -sum_c dn[r, c] n[r, c] / scale[r]          (hook_scale's gradient)
 *   norm_input_grad      dx[r, c] (+)= dn/scale - mean_c(dn/scale) + dscale[r] n[r, c] / C
 *                        (RMSNorm: no mean subtracted; variant `detach`: no dscale term, the
 *                        scale held constant as circuit-tracer freezes it)
 *
 * The mean(dn / scale) term is the centring's backward; d scale / d xc = n / C because
 * scale^2 - eps is the mean of xc^2 (and mean(n) = 0, so the centring leaves that term alone).
 * dn, n: [rows, C]; scale, dscale: [rows]; w, b, dw, db: [C].
 *
 * Versions (v1 of each): norm_gain_backward_v1 one invocation per element, WG per workgroup,
 * 2-D folded; norm_param_grad_v1 one invocation per column, serial over rows in order (fixed-order
 * sums: no atomics); norm_scale_grad_v1 and norm_input_grad_v1 one workgroup of WG per row,
 * strided partial sums and a tree reduction, one workgroup per row (2-D folded).
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const LAYERNORM_BACKWARD_VERSIONS = ['norm_gain_backward_v1', 'norm_param_grad_v1', 'norm_scale_grad_v1', 'norm_input_grad_v1'] as const;

export interface NormBackwardVariant {
  /** RMSNorm: no centring, no bias. */
  rms?: boolean;
  /** norm_input_grad: the scale is held constant (no dscale term). */
  detach?: boolean;
  /** Add into the output (dx into the residual stream's gradient; dw, db into earlier shares). */
  acc?: boolean;
}

export function layernormBackwardSource(v: NormBackwardVariant = {}): string {
  const { rms = false, detach = false, acc = false } = v;
  return wgsl`
struct Params { rows: u32, C: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dn_in: array<f32>;   // gain: dy; the others: dn
@group(0) @binding(2) var<storage, read> n: array<f32>;       // hook_normalized
@group(0) @binding(3) var<storage, read> w: array<f32>;       // gain: w; scale/input: scale
@group(0) @binding(4) var<storage, read_write> out: array<f32>;  // gain: dn; param: dw; scale: dscale; input: dx
@group(0) @binding(5) var<storage, read_write> out2: array<f32>; // param: db
@group(0) @binding(6) var<storage, read> dscale: array<f32>;  // input

fn put(i: u32, v: f32) {
#if ${acc}
  out[i] = out[i] + v;
#else
  out[i] = v;
#endif
}

@compute @workgroup_size(WG)
fn norm_gain_backward_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.rows * p.C) { return; }
  out[i] = dn_in[i] * w[i % p.C];
}

@compute @workgroup_size(WG)
fn norm_param_grad_v1(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= p.C) { return; }
  var sw = 0.0;
  var sb = 0.0;
  for (var r = 0u; r < p.rows; r++) {
    let g = dn_in[r * p.C + c];
    sw += g * n[r * p.C + c];
    sb += g;
  }
  put(c, sw);
#if ${!rms}
#if ${acc}
  out2[c] = out2[c] + sb;
#else
  out2[c] = sb;
#endif
#endif
}

override WG: u32 = 64u;
var<workgroup> red: array<f32, 256>; // >= the largest WG the host may choose

fn reduce_sum(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}

@compute @workgroup_size(WG)
fn norm_scale_grad_v1(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                      @builtin(local_invocation_index) lid: u32) {
  let row = wg.x + wg.y * nwg.x;
  let live = row < p.rows; // no early return: every invocation reaches the barriers
  let base = row * p.C;
  var part = 0.0;
  if (live) { for (var c = lid; c < p.C; c += WG) { part += dn_in[base + c] * n[base + c]; } }
  let s = reduce_sum(lid, part);
  if (live && lid == 0u) { out[row] = -s / w[row]; }
}

@compute @workgroup_size(WG)
fn norm_input_grad_v1(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                      @builtin(local_invocation_index) lid: u32) {
  let row = wg.x + wg.y * nwg.x;
  let live = row < p.rows;
  let base = row * p.C;
  var inv = 0.0;
  if (live) { inv = 1.0 / w[row]; }
#if ${rms}
  let mean = 0.0;
#else
  var part = 0.0;
  if (live) { for (var c = lid; c < p.C; c += WG) { part += dn_in[base + c]; } }
  let mean = reduce_sum(lid, part) * inv / f32(p.C);
#endif
  if (!live) { return; }
#if ${detach}
  let ds = 0.0;
#else
  let ds = dscale[row] / f32(p.C);
#endif
  for (var c = lid; c < p.C; c += WG) {
    put(base + c, dn_in[base + c] * inv - mean + ds * n[base + c]);
  }
}
`;
}
