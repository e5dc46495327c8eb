/**
 * LayerNorm over the last dimension:  y = (x - mean) / sqrt(var + eps) * w + b,
 * also writing `scale = sqrt(var + eps)` per row (TransformerLens' `hook_scale`).
 * x, y: [rows, C]; w, b: [C]; scale: [rows]. Variance is the biased (population) one, as torch.
 *
 * Variant `rms` (RMSNorm, Llama's): y = x / sqrt(mean(x^2) + eps) * w, scale = sqrt(mean(x^2) + eps);
 * no centring, no bias (binding 3 is absent).
 *
 * TransformerLens splits the norm at two hook points: `hook_scale` (the scale) and
 * `hook_normalized` (the input normalized before the gain and bias: (x - mean) / scale, or
 * x / scale). The fused kernels compute y in one step and never store the normalized input; the
 * two split kernels exist for runs that read or change those hook points: `normalize`
 * recomputes it from x and a scale an intervention may have changed, `affine` applies the gain
 * and bias again to a normalized input an intervention may have changed. They use the fused
 * kernels' arithmetic (the same mean reduction, the same products), so normalize then affine
 * gives the fused y bit for bit.
 *
 * Versions (entry points):
 *   v1 `layernorm_v1`: fused; one invocation per row, serial over C, two passes (mean, then
 *       variance). Dispatch: rows / WG workgroups of WG (folded into 2-D past 65,535).
 *   v2 `layernorm_v2`: fused; one workgroup of WG invocations per row; each sums a strided slice,
 *       then a tree reduction in workgroup memory, for the mean and then the centred variance.
 *       Dispatch: one workgroup per row (folded into 2-D past 65,535).
 *   `layernorm_normalize_v1`: normalized = (x - mean) / scale[row] (RMS: x / scale[row]); the
 *       mean reduced as v2 reduces it. Dispatch: one workgroup of WG per row, as v2.
 *   `layernorm_affine_v1`: y = normalized * w + b (RMS: normalized * w); one invocation per
 *       element. Dispatch: rows * C / WG workgroups of WG (folded into 2-D past 65,535).
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const LAYERNORM_VERSIONS = ['layernorm_v1', 'layernorm_v2', 'layernorm_normalize_v1', 'layernorm_affine_v1'] as const;

export function layernormSource({ rms }: { rms: boolean } = { rms: false }): string {
  return wgsl`
struct Params {
  rows: u32,
  C: u32,
  eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
#if ${!rms}
@group(0) @binding(3) var<storage, read> b: array<f32>;
#endif
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> scale: array<f32>;
// The normalized input (hook_normalized): written by normalize, read by affine.
@group(0) @binding(6) var<storage, read_write> normalized: array<f32>;

// The gain and bias, one expression for the fused and the split kernels (same rounding).
fn affine(n: f32, c: u32) -> f32 {
#if ${rms}
  return n * w[c];
#else
  return n * w[c] + b[c];
#endif
}

@compute @workgroup_size(WG)
fn layernorm_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = gid.x + gid.y * nwg.x * WG;
  if (row >= p.rows) { return; }
  let base = row * p.C;
#if ${rms}
  let mean = 0.0;
#else
  var sum = 0.0;
  for (var c = 0u; c < p.C; c++) { sum += x[base + c]; }
  let mean = sum / f32(p.C);
#endif
  var sq = 0.0;
  for (var c = 0u; c < p.C; c++) { let d = x[base + c] - mean; sq += d * d; }
  let s = sqrt(sq / f32(p.C) + p.eps);
  for (var c = 0u; c < p.C; c++) { y[base + c] = affine((x[base + c] - mean) / s, c); }
  scale[row] = s;
}

// Invocations per row; a power of two for the tree reduction. Set through pipeline constants.
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

// The row's mean (0 for RMSNorm), reduced by the whole workgroup: every invocation must call it.
fn row_mean(live: bool, base: u32, lid: u32) -> f32 {
#if ${rms}
  return 0.0;
#else
  var part = 0.0;
  if (live) { for (var c = lid; c < p.C; c += WG) { part += x[base + c]; } }
  return reduce_sum(lid, part) / f32(p.C);
#endif
}

@compute @workgroup_size(WG)
fn layernorm_v2(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) lid: u32) {
  let row = wg.x + wg.y * nwg.x;
  // No early return: every invocation must reach the barriers. Out-of-range rows do no I/O.
  let live = row < p.rows;
  let base = row * p.C;
  let mean = row_mean(live, base, lid);
  var part = 0.0;
  if (live) { for (var c = lid; c < p.C; c += WG) { let d = x[base + c] - mean; part += d * d; } }
  let s = sqrt(reduce_sum(lid, part) / f32(p.C) + p.eps);
  if (!live) { return; }
  for (var c = lid; c < p.C; c += WG) { y[base + c] = affine((x[base + c] - mean) / s, c); }
  if (lid == 0u) { scale[row] = s; }
}

@compute @workgroup_size(WG)
fn layernorm_normalize_v1(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                          @builtin(local_invocation_index) lid: u32) {
  let row = wg.x + wg.y * nwg.x;
  let live = row < p.rows;
  let base = row * p.C;
  let mean = row_mean(live, base, lid);
  if (!live) { return; }
  let s = scale[row];
  for (var c = lid; c < p.C; c += WG) { normalized[base + c] = (x[base + c] - mean) / s; }
}

@compute @workgroup_size(WG)
fn layernorm_affine_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.rows * p.C) { return; }
  y[i] = affine(normalized[i], i % p.C);
}
`;
}
