/**
 * Residual stream addition: out[i] = a[i] + b[i] over n values (resid_mid = resid_pre + attn_out,
 * resid_post = resid_mid + mlp_out, resid_pre_0 = embed + pos_embed).
 *
 * Versions: v1 `add_v1`, one invocation per element, WG per workgroup, 2-D folded.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const RESIDUAL_VERSIONS = ['add_v1'] as const;

export function residualSource(): string {
  return wgsl`
struct Params { n: u32 }

// Invocations per workgroup of the one-invocation-per-item entry points: picked on the host (Gpu.workgroupSize).
override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn add_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  out[i] = a[i] + b[i];
}
`;
}
