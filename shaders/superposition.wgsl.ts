/**
 * Toy Models of Superposition (Elhage et al. 2022): I independent instances of
 *
 *   h = W^T x          (per instance: x [F] features -> h [H] hidden, W [F, H])
 *   y = ReLU(W h + b)  ([F])
 *   loss = sum_i mean_{b, f} importance[i, f] (x - y)^2
 *
 * trained in parallel (one instance per sparsity, as the paper does). Shapes (row-major):
 *   W [I, F, H], b [I, F], importance [I, F], x [I, B, F], h [I, B, H], y [I, B, F],
 *   dpre [I, B, F] (d loss / d pre-activation), dh [I, B, H], loss_part [I, B], loss [I],
 *   dW [I, F, H], db [I, F]. Instance-major, so each instance's rows are one contiguous matrix.
 * Backward (c = 2 / (B F)):
 *   dpre = c importance (y - x) [y > 0]   (PyTorch's ReLU passes no gradient where y = 0)
 *   dh   = W^T dpre                        db = sum_b dpre
 *   dW[i, f, k] = sum_b dpre[i, b, f] h[i, b, k] + x[i, b, f] dh[i, b, k]   (W is used twice)
 * Every sum over b runs serially in order b = 0, 1, ..., so results are deterministic.
 *
 * Versions (64 invocations per workgroup, 2-D folded: index = gid.x + gid.y * num_workgroups.x * 64):
 *   v1 `tms_forward_v1`      one invocation per (i, b): h, then y and sum_f importance (x - y)^2
 *   v1 `tms_backward_v1`     one invocation per (i, b): dpre, then dh
 *   v1 `tms_weight_grad_v1`  one invocation per (i, f, k), serial over b
 *   v1 `tms_bias_grad_v1`    one invocation per (i, f), serial over b
 *   v1 `tms_loss_v1`         one invocation per instance: loss[i] = sum_b loss_part[i, b] / (B F)
 *   v2 the products on the engine's matmul, one dispatch per instance and product (host:
 *      `superposition.ts`), with h and dh side by side in hh [I, 2B, H] and dpre^T, x^T side by side
 *      in xt [I, F, 2B], so dW_i = xt_i hh_i is one product over 2B rows:
 *        hh_i[0:B] = x_i W_i;  pre_i = hh_i[0:B] W_i^T (into y);  tms_relu_v2;
 *        hh_i[B:2B] = dpre_i W_i;  dW_i = xt_i hh_i;  db and the loss as v1
 *   v2 `tms_relu_v2`         one invocation per (i, b): y = ReLU(pre + b) in place, dpre, the row's
 *                            loss term, and dpre, x transposed into xt
 *   v3 v2 with every product oriented so its output is wide (N = B or F, not H: the matmul's
 *      register tile is 256 columns wide, and H is 2 to 30), per-instance matrices feature-major:
 *        WT = W^T [I, H, F];  hT_i = WT_i x_i^T [H, B];  preT_i = W_i hT_i [F, B];  tms_relu_v3;
 *        dhT_i = WT_i dpreT_i [H, B];  dWa_i = hT_i dpreT_i^T, dWb_i = dhT_i xT_i^T [H, F];
 *        dW = (dWa + dWb)^T;  db summed over contiguous rows of dpreT
 *   v3 `tms_transpose_w_v3`  one invocation per weight: WT[i, k, f] = W[i, f, k]
 *   v3 `tms_relu_v3`         one invocation per (i, f), serial over b (contiguous rows): as v2 on
 *                            preT [I, F, B] in place, writing dpreT and xT [I, F, B], and the
 *                            loss summed over b into loss_part [I, F]
 *   v3 `tms_loss_v3`         one invocation per instance: loss[i] = sum_f loss_part[i, f] / (B F)
 *   v3 `tms_bias_grad_v3`    one invocation per (i, f): db = sum_b dpreT[i, f, b]
 *   v3 `tms_dw_v3`           one invocation per weight: dW[i, f, k] = dWa[i, k, f] + dWb[i, k, f]
 *   v1 fits small models (5 -> 2: a few dispatches a step); v3 large ones (400 -> 30: the
 *   products dominate, and the matmul does them far faster on lavapipe). v2 is kept: its narrow
 *   products (N = H) waste most of the matmul's tile.
 * No dimension needs to be a multiple of anything.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const SUPERPOSITION_VERSIONS = [
  'tms_forward_v1',
  'tms_backward_v1',
  'tms_weight_grad_v1',
  'tms_bias_grad_v1',
  'tms_loss_v1',
  'tms_relu_v2',
  'tms_transpose_w_v3',
  'tms_relu_v3',
  'tms_loss_v3',
  'tms_bias_grad_v3',
  'tms_dw_v3',
] as const;

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
@group(0) @binding(4) var<storage, read> x: array<f32>;            // [I, B, F]
@group(0) @binding(5) var<storage, read_write> h: array<f32>;      // [I, B, H]
@group(0) @binding(6) var<storage, read_write> y: array<f32>;      // [I, B, F]
@group(0) @binding(7) var<storage, read_write> loss_part: array<f32>; // [I, B]
@group(0) @binding(8) var<storage, read_write> dpre: array<f32>;   // [I, B, F]
@group(0) @binding(9) var<storage, read_write> dh: array<f32>;     // [I, B, H]
@group(0) @binding(10) var<storage, read_write> dW: array<f32>;    // [I, F, H]
@group(0) @binding(11) var<storage, read_write> db: array<f32>;    // [I, F]
@group(0) @binding(12) var<storage, read_write> loss: array<f32>;  // [I]
@group(0) @binding(13) var<storage, read_write> xt: array<f32>;    // [I, F, 2B] (v2), [I, F, B] (v3)
@group(0) @binding(14) var<storage, read_write> wt: array<f32>;    // [I, H, F] (v3)
@group(0) @binding(15) var<storage, read> dwa: array<f32>;         // [I, H, F] (v3)
@group(0) @binding(16) var<storage, read> dwb: array<f32>;         // [I, H, F] (v3)

@compute @workgroup_size(64)
fn tms_forward_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = gid.x + gid.y * nwg.x * 64u;  // r = i B + b
  if (r >= prm.B * prm.I) { return; }
  let i = r / prm.B;
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
  let r = gid.x + gid.y * nwg.x * 64u;  // r = i B + b
  if (r >= prm.B * prm.I) { return; }
  let i = r / prm.B;
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
  let f = fi % prm.F;
  var acc = 0.0;
  for (var b = 0u; b < prm.B; b++) {
    let r = i * prm.B + b;
    let xf = r * prm.F + f;              // [i, b, f]
    acc = acc + dpre[xf] * h[r * prm.H + k] + x[xf] * dh[r * prm.H + k];
  }
  dW[e] = acc;
}

@compute @workgroup_size(64)
fn tms_bias_grad_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let fi = gid.x + gid.y * nwg.x * 64u;  // fi = i F + f
  if (fi >= prm.I * prm.F) { return; }
  let i = fi / prm.F;
  let f = fi % prm.F;
  var acc = 0.0;
  for (var b = 0u; b < prm.B; b++) { acc = acc + dpre[(i * prm.B + b) * prm.F + f]; }
  db[fi] = acc;
}

@compute @workgroup_size(64)
fn tms_relu_v2(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = gid.x + gid.y * nwg.x * 64u;  // r = i B + b
  if (r >= prm.B * prm.I) { return; }
  let i = r / prm.B;
  let b = r % prm.B;
  let c = 2.0 / f32(prm.B * prm.F);
  var lp = 0.0;
  for (var f = 0u; f < prm.F; f++) {
    let e = r * prm.F + f;
    let yv = max(y[e] + bias[i * prm.F + f], 0.0);  // y holds pre = h W^T on entry
    y[e] = yv;
    let imp = importance[i * prm.F + f];
    let d = x[e] - yv;
    lp = lp + imp * d * d;
    let g = select(0.0, c * imp * (yv - x[e]), yv > 0.0);
    dpre[e] = g;
    let t = (i * prm.F + f) * 2u * prm.B;
    xt[t + b] = g;
    xt[t + prm.B + b] = x[e];
  }
  loss_part[r] = lp;
}

@compute @workgroup_size(64)
fn tms_transpose_w_v3(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = gid.x + gid.y * nwg.x * 64u;  // e = (i F + f) H + k
  if (e >= prm.I * prm.F * prm.H) { return; }
  let k = e % prm.H;
  let f = (e / prm.H) % prm.F;
  let i = e / (prm.F * prm.H);
  wt[(i * prm.H + k) * prm.F + f] = W[e];
}

// y holds preT [I, F, B] on entry (feature-major); dpre is dpreT, xt is xT, both [I, F, B];
// loss_part is [I, F] here (the row sums run over b).
@compute @workgroup_size(64)
fn tms_relu_v3(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let fi = gid.x + gid.y * nwg.x * 64u;  // fi = i F + f
  if (fi >= prm.I * prm.F) { return; }
  let i = fi / prm.F;
  let f = fi % prm.F;
  let c = 2.0 / f32(prm.B * prm.F);
  let imp = importance[fi];
  let bf = bias[fi];
  var lp = 0.0;
  for (var b = 0u; b < prm.B; b++) {
    let t = fi * prm.B + b;
    let xv = x[(i * prm.B + b) * prm.F + f];
    let yv = max(y[t] + bf, 0.0);
    y[t] = yv;
    let d = xv - yv;
    lp = lp + imp * d * d;
    dpre[t] = select(0.0, c * imp * (yv - xv), yv > 0.0);
    xt[t] = xv;
  }
  loss_part[fi] = lp;
}

@compute @workgroup_size(64)
fn tms_loss_v3(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= prm.I) { return; }
  var acc = 0.0;
  for (var f = 0u; f < prm.F; f++) { acc = acc + loss_part[i * prm.F + f]; }
  loss[i] = acc / f32(prm.B * prm.F);
}

@compute @workgroup_size(64)
fn tms_bias_grad_v3(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let fi = gid.x + gid.y * nwg.x * 64u;  // fi = i F + f
  if (fi >= prm.I * prm.F) { return; }
  var acc = 0.0;
  for (var b = 0u; b < prm.B; b++) { acc = acc + dpre[fi * prm.B + b]; }
  db[fi] = acc;
}

@compute @workgroup_size(64)
fn tms_dw_v3(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = gid.x + gid.y * nwg.x * 64u;  // e = (i F + f) H + k
  if (e >= prm.I * prm.F * prm.H) { return; }
  let k = e % prm.H;
  let f = (e / prm.H) % prm.F;
  let i = e / (prm.F * prm.H);
  let t = (i * prm.H + k) * prm.F + f;
  dW[e] = dwa[t] + dwb[t];
}

@compute @workgroup_size(64)
fn tms_loss_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= prm.I) { return; }
  var acc = 0.0;
  for (var b = 0u; b < prm.B; b++) { acc = acc + loss_part[i * prm.B + b]; }
  loss[i] = acc / f32(prm.B * prm.F);
}
`;
}
