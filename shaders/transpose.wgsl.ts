/**
 * Matrix transpose: out[c, r] = x[r, c] for x [R, C] row-major (so a product A^T B can run on the
 * matmul, which reads A row-major: weight gradients of training).
 *
 * Versions: v1 `transpose_v1`, one invocation per element, 64 per workgroup, 2-D folded
 * (index = gid.x + gid.y * num_workgroups.x * 64 over the output).
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const TRANSPOSE_VERSIONS = ['transpose_v1'] as const;

export function transposeSource(): string {
  return wgsl`
struct Params { R: u32, C: u32 }

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;          // [R, C]
@group(0) @binding(2) var<storage, read_write> out: array<f32>;  // [C, R]

@compute @workgroup_size(64)
fn transpose_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = gid.x + gid.y * nwg.x * 64u;  // e = c R + r
  if (e >= prm.R * prm.C) { return; }
  let c = e / prm.R;
  let r = e % prm.R;
  out[e] = x[r * prm.C + c];
}
`;
}
