/**
 * The backward of an SAE or transcoder spliced into a run (`sae.wgsl.ts` forward), for gradients
 * of the features and of what the SAE reads:
 *
 *   sae_decode_backward_v1  d_acts[r, f0 + f] = sum_j g[r, j] W_dec[f, j]      (recons = acts W_dec + b_dec)
 *   sae_mask_backward_v1    d_pre = d_acts where ref != 0, else 0             (ReLU, JumpReLU, TopK: the
 *                           activation passes its input where it fired; `ref` is the activation's own
 *                           output recomputed from pre, before any intervention on hook_sae_acts_post)
 *   sae_encode_backward_v1  dx[r, i] (+)= coef sum_f d[r, f0 + f] W[i, f]      (pre = x W_enc + b_enc: W is an
 *                           encoder column block [d_in, nf]; also a skip transcoder's x W_skip, W_skip
 *                           [d_in, d_out] with d = the output's gradient)
 *   sae_input_backward_v1   out (+)= d, or d * gain per column                 (x' = x, or x * gain)
 *
 * JumpReLU's acts = relu(pre) [pre > threshold] and TopK's are pre where the unit fired and 0
 * elsewhere, so d acts / d pre is 1 exactly where the activation is non-zero (PyTorch's autograd
 * of SAELens' definitions gives the same, the threshold and the ranking being constants).
 *
 * Layouts: g [rows, d_out]; d_acts, d_pre, ref [rows, d_sae]; W_dec chunk [nf, d_out] (features
 * f0 ..); W block [d_in, nf] (row i contiguous over the block's features); dx [rows, d_in].
 *
 * Thread mapping and dispatch (64 invocations per workgroup):
 *   decode / encode backward  x = block of 64 outputs along a row (features / input columns),
 *              y + z * num_workgroups.y = row (rows folded past 65,535). Every invocation of an
 *              encode workgroup reads the same d[r, f], so its zero test is uniform and a feature
 *              that did not fire costs one load: the work is L0 x d_in per row, not d_sae x d_in.
 *              Sums run in feature (or column) order: deterministic.
 *   mask / input              one invocation per element, gid.x + gid.y * 64 * num_workgroups.x.
 *
 * Versions: v1 of each (the plain forms).
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const SAE_BACKWARD_VERSIONS = ['sae_decode_backward_v1', 'sae_mask_backward_v1', 'sae_encode_backward_v1', 'sae_input_backward_v1'] as const;

/** Invocations per workgroup of every entry point (the host sizes dispatches with it). */
export const SAE_BACKWARD_WG = 64;

export interface SaeBackwardVariant {
  /** sae_input_backward: multiply by a per-column gain (binding 5). */
  gain?: boolean;
}

export function saeBackwardSource(v: SaeBackwardVariant = {}): string {
  const { gain = false } = v;
  return wgsl`
struct Params {
  rows: u32,   // rows (batch * positions)
  n: u32,      // decode: d_out; encode: d_in (outputs per row); mask / input: elements
  ld: u32,     // decode: row stride of d_acts (d_sae); encode: row stride of d; input: gain's width
  f0: u32,     // decode / encode: first feature (column of d) of this block
  nf: u32,     // decode / encode: features in this block
  acc: u32,    // encode / input: 1 = add into the output
  coef: f32,   // encode: +1, or -1 to subtract (the error term's clean reconstruction)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> d: array<f32>;            // decode: g; mask: d_acts; encode: d; input: d
@group(0) @binding(2) var<storage, read> w: array<f32>;            // decode: W_dec chunk; encode: W block
@group(0) @binding(3) var<storage, read_write> out: array<f32>;    // decode: d_acts; mask: d_pre; encode: dx; input: out
@group(0) @binding(4) var<storage, read> ref_acts: array<f32>;     // mask: the activation's output
#if ${gain}
@group(0) @binding(5) var<storage, read> gain: array<f32>;         // input: [width]
#endif

fn row_of(wg: vec3u, nwg: vec3u) -> u32 { return wg.y + wg.z * nwg.y; }

@compute @workgroup_size(64)
fn sae_decode_backward_v1(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = row_of(wg, nwg);
  let f = wg.x * 64u + lid;
  if (r >= p.rows || f >= p.nf) { return; }
  var s = 0.0;
  let gb = r * p.n;
  let wb = f * p.n;
  for (var j = 0u; j < p.n; j++) { s += d[gb + j] * w[wb + j]; }
  out[r * p.ld + p.f0 + f] = s;
}

@compute @workgroup_size(64)
fn sae_mask_backward_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.n) { return; }
  out[i] = select(0.0, d[i], ref_acts[i] != 0.0);
}

@compute @workgroup_size(64)
fn sae_encode_backward_v1(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = row_of(wg, nwg);
  let i = wg.x * 64u + lid;
  if (r >= p.rows) { return; } // uniform per workgroup
  let live = i < p.n;
  var s = 0.0;
  let db = r * p.ld + p.f0;
  let wb = i * p.nf;
  for (var f = 0u; f < p.nf; f++) {
    let df = d[db + f]; // the same for the whole workgroup (one row)
    if (df == 0.0 || !live) { continue; }
    s += df * w[wb + f];
  }
  if (!live) { return; }
  let o = r * p.n + i;
  if (p.acc == 1u) { out[o] = out[o] + p.coef * s; } else { out[o] = p.coef * s; }
}

@compute @workgroup_size(64)
fn sae_input_backward_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.n) { return; }
#if ${gain}
  let v = d[i] * gain[i % p.ld];
#else
  let v = d[i];
#endif
  if (p.acc == 1u) { out[i] = out[i] + v; } else { out[i] = v; }
}
`;
}
