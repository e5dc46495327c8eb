/**
 * The backward of rotary position embeddings (`rotary.wgsl.ts`): each (d, d + rot/2) pair was
 * rotated by the angle p w_d, an orthogonal map, so its gradient is the rotation back by -p w_d:
 *
 *   dx[d]         = dy[d] cos + dy[d + rot/2] sin      d < rot/2
 *   dx[d + rot/2] = dy[d + rot/2] cos - dy[d] sin
 *   dx[d]         = dy[d]                              d >= rot (partial rotary, NeoX)
 *
 * dx, dy: [B, T, H, dh]; p = pos0 + t; cos, sin: the forward's [n_ctx, rot/2] tables.
 *
 * Versions: v1 `rotary_backward_v1`, one invocation per element of dx, WG per workgroup, 2-D folded.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const ROTARY_BACKWARD_VERSIONS = ['rotary_backward_v1'] as const;

export function rotaryBackwardSource(): string {
  return wgsl`
struct Params { B: u32, T: u32, H: u32, dh: u32, rot: u32, pos0: u32 }

// Invocations per workgroup of the one-invocation-per-item entry points: picked on the host (Gpu.workgroupSize).
override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<storage, read> cos_t: array<f32>;
@group(0) @binding(4) var<storage, read> sin_t: array<f32>;

@compute @workgroup_size(WG)
fn rotary_backward_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.B * p.T * p.H * p.dh) { return; }
  let d = i % p.dh;
  if (d >= p.rot) { dx[i] = dy[i]; return; }
  let t = (i / (p.dh * p.H)) % p.T;
  let half = p.rot / 2u;
  let row = (p.pos0 + t) * half;
  if (d < half) {
    dx[i] = dy[i] * cos_t[row + d] + dy[i + half] * sin_t[row + d];
  } else {
    let j = d - half;
    dx[i] = dy[i] * cos_t[row + j] - dy[i - half] * sin_t[row + j];
  }
}
`;
}
