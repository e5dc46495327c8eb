/**
 * Sparse autoencoder (SAE) and transcoder kernels: the activation, the decoder and the error term.
 * The encoder's product pre = x @ W_enc + b_enc is the ordinary matmul (`matmul.wgsl.ts`), so
 * `hook_sae_acts_pre` can sit between it and the activation.
 *
 *   sae_relu_v1      acts = max(pre, 0)                                  (SAELens "standard")
 *   sae_jumprelu_v1  acts = max(pre, 0) * (pre > threshold)              (JumpReLU, Gemma Scope)
 *   sae_topk_v1      acts = max(pre, 0) on the k largest pre of a row, 0 elsewhere (TopK)
 *   sae_compact_v1   per row, the indices of the non-zero activations, in index order, and their count
 *   sae_decode_v1    recons = acts @ W_dec + b_dec (+ skip), and optionally err = x - recons
 *   sae_decode_v2    the same, looping over the compacted indices only (pinned)
 *   sae_error_v1     err = x - r
 *   sae_input_v1     out = x, or x * gain (per column) where the SAE reads a norm's output after its gain
 *
 * Layouts: pre, acts [rows, d_sae]; W_dec chunk [nf, n] (features f0 .. f0 + nf - 1 of the
 * decoder, row-major); b_dec, threshold vectors; recons, err, x, skip [rows, n].
 *
 * Thread mapping and dispatch:
 *   relu / jumprelu / error / input  one invocation per element, 64 per workgroup, linear index
 *                            gid.x + gid.y * 64 * num_workgroups.x (grid folded past 65,535).
 *   topk v1    one workgroup of 64 per row (row = wg.x + wg.y * num_workgroups.x). k rounds: each
 *              invocation finds the best of its strided slice below the previous winner in the
 *              order (value descending, index ascending), a tree reduction picks the row's best,
 *              its owner writes it. O(k d_sae / 64) per invocation: slow for large k, kept simple.
 *              Ties go to the lower index (torch.topk leaves ties unspecified).
 *   decode v1  workgroup (64 output columns, one row): x = column block, y + z * num_workgroups.y
 *              = row. Every invocation of a workgroup reads the same activation acts[row, f], so
 *              the zero test is uniform and a zero activation costs one load: the work is
 *              L0 * n per row, not d_sae * n. Features are summed in index order (deterministic).
 *              W_dec split into row chunks runs once per chunk: `first` starts from b_dec (+ skip),
 *              later chunks accumulate onto recons; `last` (bit 1 of mode) writes the error.
 *              Slow on CPU adapters: every invocation still walks all d_sae activations (lavapipe:
 *              0.9 s for 32 rows x 16,384 features; kept as the plain form).
 *   compact v1 one workgroup of 64 per row: each invocation counts the non-zeros of its contiguous
 *              slice of d_sae / 64, a workgroup scan gives each slice its offset, and each writes
 *              its indices there: the list is in index order (deterministic), counts[row] its length.
 *   decode v2  as v1, but the loop runs over counts[row] compacted indices (L0, not d_sae), skipping
 *              those outside this decoder chunk; features are added in the same index order, so
 *              v2 gives v1's result bit for bit.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const SAE_VERSIONS = ['sae_relu_v1', 'sae_jumprelu_v1', 'sae_topk_v1', 'sae_compact_v1', 'sae_decode_v1', 'sae_decode_v2', 'sae_error_v1', 'sae_input_v1'] as const;

/** Invocations per workgroup of every entry point (the host sizes dispatches with it). */
export const SAE_WG = 64;

/** Bits of the decode kernel's `mode` word. */
export const DECODE_MODE = { first: 1, error: 2, skip: 4 } as const;

export function saeSource(): string {
  return wgsl`
struct Params {
  rows: u32,   // rows of activations (batch * positions)
  n: u32,      // relu / jumprelu / error / input: elements; decode: output width d_out; topk: d_sae
  d_sae: u32,  // row stride of pre and acts; input: the row width (gain's length)
  f0: u32,     // decode: first feature of this decoder chunk
  nf: u32,     // decode: features in this chunk
  mode: u32,   // decode: DECODE_MODE bits; input: 1 = multiply by gain
  k: u32,      // topk: active features per row
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pre: array<f32>;             // [rows, d_sae]
@group(0) @binding(2) var<storage, read> threshold: array<f32>;       // [d_sae]
@group(0) @binding(3) var<storage, read_write> acts: array<f32>;      // [rows, d_sae]
@group(0) @binding(4) var<storage, read> acts_in: array<f32>;         // decode: [rows, d_sae]
@group(0) @binding(5) var<storage, read> w_dec: array<f32>;           // [nf, n]
@group(0) @binding(6) var<storage, read> b_dec: array<f32>;           // [n]
@group(0) @binding(7) var<storage, read> skip: array<f32>;            // [rows, n] (mode skip)
@group(0) @binding(8) var<storage, read> x: array<f32>;               // [rows, n] error: the hook's value
@group(0) @binding(9) var<storage, read_write> recons: array<f32>;    // [rows, n]
@group(0) @binding(10) var<storage, read_write> err: array<f32>;      // [rows, n]
@group(0) @binding(11) var<storage, read> r_in: array<f32>;           // error kernel: [rows, n]
@group(0) @binding(12) var<storage, read> gain: array<f32>;           // input kernel: [d_sae] (row width)
@group(0) @binding(13) var<storage, read_write> copied: array<f32>;   // input kernel: [rows, width]
@group(0) @binding(14) var<storage, read_write> list: array<u32>;     // compact: [rows, d_sae] feature indices
@group(0) @binding(15) var<storage, read_write> counts: array<u32>;   // compact: [rows] how many
@group(0) @binding(16) var<storage, read> list_in: array<u32>;        // decode v2
@group(0) @binding(17) var<storage, read> counts_in: array<u32>;      // decode v2

fn linear(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * 64u; }

@compute @workgroup_size(64)
fn sae_relu_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear(gid, nwg);
  if (i >= p.n) { return; }
  acts[i] = max(pre[i], 0.0);
}

@compute @workgroup_size(64)
fn sae_jumprelu_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear(gid, nwg);
  if (i >= p.n) { return; }
  let v = pre[i];
  acts[i] = select(0.0, max(v, 0.0), v > threshold[i % p.d_sae]);
}

var<workgroup> best_v: array<f32, 64>;
var<workgroup> best_i: array<u32, 64>;

// (va, ia) comes before (vb, ib): larger value first, then lower index.
fn before(va: f32, ia: u32, vb: f32, ib: u32) -> bool {
  return va > vb || (va == vb && ia < ib);
}

@compute @workgroup_size(64)
fn sae_topk_v1(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= p.rows) { return; } // uniform: the whole workgroup leaves together
  let t = lid.x;
  let base = row * p.n;
  for (var i = t; i < p.n; i += 64u) { acts[base + i] = 0.0; }
  // The previous winner; round 0 has none (index NONE: every element is below it).
  let NONE = 0xffffffffu;
  var prev_v = 0.0;
  var prev_i = NONE;
  for (var round = 0u; round < p.k; round++) {
    var bv = 0.0;
    var bi = NONE;
    for (var i = t; i < p.n; i += 64u) {
      let v = pre[base + i];
      let below = prev_i == NONE || before(prev_v, prev_i, v, i);
      if (below && (bi == NONE || before(v, i, bv, bi))) { bv = v; bi = i; }
    }
    best_v[t] = bv;
    best_i[t] = bi;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
      if (t < s) {
        let ov = best_v[t + s];
        let oi = best_i[t + s];
        if (oi != NONE && (best_i[t] == NONE || before(ov, oi, best_v[t], best_i[t]))) {
          best_v[t] = ov;
          best_i[t] = oi;
        }
      }
      workgroupBarrier();
    }
    // A uniform load, so the loop's exit below is uniform and its barriers stay legal.
    prev_i = workgroupUniformLoad(&best_i[0]);
    prev_v = best_v[0];
    workgroupBarrier(); // everyone has read the winner before the slots are reused
    if (prev_i == NONE) { break; }
    if (prev_i % 64u == t) { acts[base + prev_i] = max(prev_v, 0.0); }
  }
}

var<workgroup> scan: array<u32, 64>;

@compute @workgroup_size(64)
fn sae_compact_v1(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= p.rows) { return; }
  let t = lid.x;
  let per = (p.d_sae + 63u) / 64u;
  let lo = min(t * per, p.d_sae);
  let hi = min(lo + per, p.d_sae);
  let base = row * p.d_sae;
  var n = 0u;
  for (var i = lo; i < hi; i++) { if (acts_in[base + i] != 0.0) { n++; } }
  scan[t] = n;
  workgroupBarrier();
  // Inclusive prefix sum over the 64 slices (Hillis-Steele).
  for (var s = 1u; s < 64u; s <<= 1u) {
    var v = 0u;
    if (t >= s) { v = scan[t - s]; }
    workgroupBarrier();
    scan[t] += v;
    workgroupBarrier();
  }
  var o = base + scan[t] - n;
  for (var i = lo; i < hi; i++) {
    if (acts_in[base + i] != 0.0) {
      list[o] = i;
      o++;
    }
  }
  if (t == 63u) { counts[row] = scan[63]; }
}

@compute @workgroup_size(64)
fn sae_decode_v2(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = wg.y + wg.z * nwg.y;
  if (row >= p.rows) { return; }
  let j = wg.x * 64u + lid.x;
  let live = j < p.n;
  let o = row * p.n + j;
  var acc = 0.0;
  if (live) {
    if ((p.mode & ${DECODE_MODE.first}u) != 0u) {
      acc = b_dec[j];
      if ((p.mode & ${DECODE_MODE.skip}u) != 0u) { acc += skip[o]; }
    } else {
      acc = recons[o];
    }
  }
  let a0 = row * p.d_sae;
  let count = counts_in[row];
  for (var e = 0u; e < count; e++) {
    let f = list_in[a0 + e];
    if (f >= p.f0 && f < p.f0 + p.nf && live) { acc += acts_in[a0 + f] * w_dec[(f - p.f0) * p.n + j]; }
  }
  if (live) {
    recons[o] = acc;
    if ((p.mode & ${DECODE_MODE.error}u) != 0u) { err[o] = x[o] - acc; }
  }
}

@compute @workgroup_size(64)
fn sae_decode_v1(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = wg.y + wg.z * nwg.y;
  if (row >= p.rows) { return; }
  let j = wg.x * 64u + lid.x;
  let live = j < p.n;
  let o = row * p.n + j;
  var acc = 0.0;
  if (live) {
    if ((p.mode & ${DECODE_MODE.first}u) != 0u) {
      acc = b_dec[j];
      if ((p.mode & ${DECODE_MODE.skip}u) != 0u) { acc += skip[o]; }
    } else {
      acc = recons[o];
    }
  }
  let a0 = row * p.d_sae + p.f0;
  for (var f = 0u; f < p.nf; f++) {
    let a = acts_in[a0 + f];
    if (a != 0.0 && live) { acc += a * w_dec[f * p.n + j]; }
  }
  if (live) {
    recons[o] = acc;
    if ((p.mode & ${DECODE_MODE.error}u) != 0u) { err[o] = x[o] - acc; }
  }
}

@compute @workgroup_size(64)
fn sae_error_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear(gid, nwg);
  if (i >= p.n) { return; }
  err[i] = x[i] - r_in[i];
}

@compute @workgroup_size(64)
fn sae_input_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear(gid, nwg);
  if (i >= p.n) { return; }
  var v = x[i];
  if (p.mode == 1u) { v *= gain[i % p.d_sae]; }
  copied[i] = v;
}
`;
}
