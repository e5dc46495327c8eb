/**
 * Rotary position embeddings (RoPE) in the "rotate half" layout Hugging Face's Llama and
 * GPT-NeoX use: within the first `rot` dims of each head, dim d < rot/2 pairs with d + rot/2.
 *
 *   y[.., d]         = x[d] cos(p w_d) - x[d + rot/2] sin(p w_d)     d < rot/2
 *   y[.., d + rot/2] = x[d + rot/2] cos(p w_d) + x[d] sin(p w_d)
 *   y[.., d]         = x[d]                                          d >= rot (partial rotary, NeoX)
 *
 * x, y: [B, T, H, dh] (q with the query heads, k with the key/value heads); p = pos0 + t is the
 * absolute position (a resumed pass starts at pos0). cos, sin: [n_ctx, rot/2] tables the host
 * computes once per model (frequencies, scaling), so the kernel does no transcendental math.
 *
 * Versions: v1 `rotary_v1`, one invocation per element of y, WG per workgroup, 2-D folded.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const ROTARY_VERSIONS = ['rotary_v1'] as const;

export function rotarySource(): string {
  return wgsl`
struct Params { B: u32, T: u32, H: u32, dh: u32, rot: u32, pos0: u32 }

// Invocations per workgroup of the one-invocation-per-item entry points: picked on the host (Gpu.workgroupSize).
override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> cos_t: array<f32>;
@group(0) @binding(4) var<storage, read> sin_t: array<f32>;

@compute @workgroup_size(WG)
fn rotary_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.B * p.T * p.H * p.dh) { return; }
  let d = i % p.dh;
  if (d >= p.rot) { y[i] = x[i]; return; }
  let t = (i / (p.dh * p.H)) % p.T;
  let half = p.rot / 2u;
  let row = (p.pos0 + t) * half;
  if (d < half) {
    y[i] = x[i] * cos_t[row + d] - x[i + half] * sin_t[row + d];
  } else {
    let j = d - half;
    y[i] = x[i] * cos_t[row + j] + x[i - half] * sin_t[row + j];
  }
}
`;
}
