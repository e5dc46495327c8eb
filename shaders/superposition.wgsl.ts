/**
 * Toy Models of Superposition (Elhage et al. 2022): I independent instances of
 *
 *   h = W^T x          (per instance: x [F] features -> h [H] hidden, W [F, H])
 *   y = ReLU(W h + b)  ([F])
 *   loss = sum_i mean_{b, f} importance[i, f] (x - y)^2
 *
 * trained in parallel (one instance per sparsity, as the paper does). Shapes (row-major):
 *   W [I, F, H], b [I, F], importance [I, F], x [B, I, F], h [B, I, H], y [B, I, F],
 *   dpre [B, I, F] (d loss / d pre-activation), dh [B, I, H], loss_part [B, I], loss [I],
 *   dW [I, F, H], db [I, F].
 * Backward (c = 2 / (B F)):
 *   dpre = c importance (y - x) [y > 0]   (PyTorch's ReLU passes no gradient where y = 0)
 *   dh   = W^T dpre                        db = sum_b dpre
 *   dW[i, f, k] = sum_b dpre[b, i, f] h[b, i, k] + x[b, i, f] dh[b, i, k]   (W is used twice)
 * Every sum over b runs serially in order b = 0, 1, ..., so results are deterministic.
 *
 * Versions (64 invocations per workgroup, 2-D folded: index = gid.x + gid.y * num_workgroups.x * 64):
 *   v1 `tms_forward_v1`      one invocation per (b, i): h, then y and sum_f importance (x - y)^2
 *   v1 `tms_backward_v1`     one invocation per (b, i): dpre, then dh
 *   v1 `tms_weight_grad_v1`  one invocation per (i, f, k), serial over b
 *   v1 `tms_bias_grad_v1`    one invocation per (i, f), serial over b
 *   v1 `tms_loss_v1`         one invocation per instance: loss[i] = sum_b loss_part[b, i] / (B F)
 * No dimension needs to be a multiple of anything.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const SUPERPOSITION_VERSIONS = ['tms_forward_v1', 'tms_backward_v1', 'tms_weight_grad_v1', 'tms_bias_grad_v1', 'tms_loss_v1'] as const;

export function superpositionSource(): string {
  return wgsl`
struct Params {
  B: u32,  // batch rows
  I: u32,  // instances
  F: u32,  // features (n in the paper)
  H: u32,  // hidden dimensions (m in the paper)
}

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> W: array<f32>;            // [I, F, H]
@group(0) @binding(2) var<storage, read> bias: array<f32>;         // [I, F]
@group(0) @binding(3) var<storage, read> importance: array<f32>;   // [I, F]
@group(0) @binding(4) var<storage, read> x: array<f32>;            // [B, I, F]
@group(0) @binding(5) var<storage, read_write> h: array<f32>;      // [B, I, H]
@group(0) @binding(6) var<storage, read_write> y: array<f32>;      // [B, I, F]
@group(0) @binding(7) var<storage, read_write> loss_part: array<f32>; // [B, I]
@group(0) @binding(8) var<storage, read_write> dpre: array<f32>;   // [B, I, F]
@group(0) @binding(9) var<storage, read_write> dh: array<f32>;     // [B, I, H]
@group(0) @binding(10) var<storage, read_write> dW: array<f32>;    // [I, F, H]
@group(0) @binding(11) var<storage, read_write> db: array<f32>;    // [I, F]
@group(0) @binding(12) var<storage, read_write> loss: array<f32>;  // [I]

@compute @workgroup_size(64)
fn tms_forward_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = gid.x + gid.y * nwg.x * 64u;  // r = b I + i
  if (r >= prm.B * prm.I) { return; }
  let i = r % prm.I;
  let xr = r * prm.F;
  let hr = r * prm.H;
  let wi = i * prm.F * prm.H;
  for (var k = 0u; k < prm.H; k++) {
    var acc = 0.0;
    for (var f = 0u; f < prm.F; f++) { acc = acc + x[xr + f] * W[wi + f * prm.H + k]; }
    h[hr + k] = acc;
  }
  var lp = 0.0;
  for (var f = 0u; f < prm.F; f++) {
    var acc = 0.0;
    for (var k = 0u; k < prm.H; k++) { acc = acc + h[hr + k] * W[wi + f * prm.H + k]; }
    let yv = max(acc + bias[i * prm.F + f], 0.0);
    y[xr + f] = yv;
    let d = x[xr + f] - yv;
    lp = lp + importance[i * prm.F + f] * d * d;
  }
  loss_part[r] = lp;
}

@compute @workgroup_size(64)
fn tms_backward_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = gid.x + gid.y * nwg.x * 64u;  // r = b I + i
  if (r >= prm.B * prm.I) { return; }
  let i = r % prm.I;
  let xr = r * prm.F;
  let wi = i * prm.F * prm.H;
  let c = 2.0 / f32(prm.B * prm.F);
  for (var f = 0u; f < prm.F; f++) {
    let yv = y[xr + f];
    dpre[xr + f] = select(0.0, c * importance[i * prm.F + f] * (yv - x[xr + f]), yv > 0.0);
  }
  for (var k = 0u; k < prm.H; k++) {
    var acc = 0.0;
    for (var f = 0u; f < prm.F; f++) { acc = acc + dpre[xr + f] * W[wi + f * prm.H + k]; }
    dh[r * prm.H + k] = acc;
  }
}

@compute @workgroup_size(64)
fn tms_weight_grad_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = gid.x + gid.y * nwg.x * 64u;  // e = (i F + f) H + k
  if (e >= prm.I * prm.F * prm.H) { return; }
  let k = e % prm.H;
  let fi = e / prm.H;                    // i F + f
  let i = fi / prm.F;
  var acc = 0.0;
  for (var b = 0u; b < prm.B; b++) {
    let r = b * prm.I + i;
    let xf = b * prm.I * prm.F + fi;     // [b, i, f]
    acc = acc + dpre[xf] * h[r * prm.H + k] + x[xf] * dh[r * prm.H + k];
  }
  dW[e] = acc;
}

@compute @workgroup_size(64)
fn tms_bias_grad_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let fi = gid.x + gid.y * nwg.x * 64u;  // fi = i F + f
  if (fi >= prm.I * prm.F) { return; }
  var acc = 0.0;
  for (var b = 0u; b < prm.B; b++) { acc = acc + dpre[b * prm.I * prm.F + fi]; }
  db[fi] = acc;
}

@compute @workgroup_size(64)
fn tms_loss_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= prm.I) { return; }
  var acc = 0.0;
  for (var b = 0u; b < prm.B; b++) { acc = acc + loss_part[b * prm.I + i]; }
  loss[i] = acc / f32(prm.B * prm.F);
}
`;
}
