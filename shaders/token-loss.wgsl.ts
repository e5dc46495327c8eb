/**
 * Cross-entropy training loss over chosen (row, target) pairs of a logits buffer, with its
 * gradient, for training a language model on a task (the recall targets of induction-attn-2l, or
 * every next token):
 *
 *   token_loss   one workgroup per logits row r ([R, V], R = batch x positions): with target
 *                y = targets[r] (NONE = 0xffffffff: the row is not scored), loss_part[r] =
 *                logsumexp(z) - z[y] and dlogits[r, v] = (softmax(z)_v - [v = y]) / N, N = count[0]
 *                (the number of scored rows); an unscored row gets 0 and a zero gradient row.
 *                The max and the sum use WG-wide tree reductions (fixed order). With in_place the
 *                gradient overwrites the logits (each element is read, then written, by one
 *                invocation, after the row's reductions).
 *   token_loss_sum  one invocation: loss[0] = sum_r loss_part[r] / N, serially in r.
 *
 * Versions: v1 `token_loss_v1` (dispatch: R workgroups, 2-D folded) and `token_loss_sum_v1`
 * (1 workgroup). WG (a power of two) is an override.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const TOKEN_LOSS_VERSIONS = ['token_loss_v1', 'token_loss_sum_v1'] as const;

/** A row with no target. */
export const NO_TARGET = 0xffffffff;

export function tokenLossSource(): string {
  return wgsl`
override WG: u32 = 64;

struct Params {
  R: u32, V: u32,
  in_place: u32,  // 1: write the gradient over the logits (the dlogits binding is a stand-in)
}

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;    // [R, V]; becomes dlogits when in place
@group(0) @binding(2) var<storage, read> targets: array<u32>;         // [R]
@group(0) @binding(3) var<storage, read> count: array<u32>;           // [1] scored rows
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;   // [R, V] (token_loss_v1 when not in place)
@group(0) @binding(5) var<storage, read_write> loss_part: array<f32>; // [R]
@group(0) @binding(6) var<storage, read_write> loss: array<f32>;      // [1]

var<workgroup> red: array<f32, WG>;

fn tree_max(t: u32) {
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    workgroupBarrier();
    if (t < s) { red[t] = max(red[t], red[t + s]); }
  }
  workgroupBarrier();
}

fn tree_sum(t: u32) {
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    workgroupBarrier();
    if (t < s) { red[t] = red[t] + red[t + s]; }
  }
  workgroupBarrier();
}

fn put(i: u32, g: f32) {
  if (prm.in_place == 1u) { logits[i] = g; } else { dlogits[i] = g; }
}

@compute @workgroup_size(WG)
fn token_loss_v1(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= prm.R) { return; }  // uniform per workgroup
  let t = lid.x;
  let o = r * prm.V;
  let y = targets[r];
  let scale = 1.0 / f32(max(count[0], 1u));
  if (y == ${NO_TARGET}u) {
    for (var v = t; v < prm.V; v += WG) { put(o + v, 0.0); }
    if (t == 0u) { loss_part[r] = 0.0; }
    return;
  }
  var m = -3.402823e38;
  for (var v = t; v < prm.V; v += WG) { m = max(m, logits[o + v]); }
  red[t] = m;
  tree_max(t);
  let mx = red[0];
  workgroupBarrier();
  var s = 0.0;
  for (var v = t; v < prm.V; v += WG) { s = s + exp(logits[o + v] - mx); }
  red[t] = s;
  tree_sum(t);
  let lse = mx + log(red[0]);
  let zy = logits[o + y];
  workgroupBarrier();
  for (var v = t; v < prm.V; v += WG) {
    let p = exp(logits[o + v] - lse);
    put(o + v, (p - select(0.0, 1.0, v == y)) * scale);
  }
  if (t == 0u) { loss_part[r] = lse - zy; }
}

@compute @workgroup_size(1)
fn token_loss_sum_v1() {
  var acc = 0.0;
  for (var r = 0u; r < prm.R; r++) { acc = acc + loss_part[r]; }
  loss[0] = acc / f32(max(count[0], 1u));
}
`;
}
