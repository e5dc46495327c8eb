/**
 * Small gradient utilities over n values: where a tensor fed two consumers (the residual
 * stream, the q/k/v inputs), its gradient is the sum of theirs; buffers that a backward only
 * partly writes start from a fill.
 *
 *   accumulate   y[i] += a * x[i]        (a = 1 for a residual add's fan-in)
 *   fill         y[i]  = value
 *
 * Versions: v1 of each, one invocation per element, WG per workgroup, 2-D folded.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const GRAD_ACCUMULATE_VERSIONS = ['accumulate_v1', 'fill_v1'] as const;

export function gradAccumulateSource(): string {
  return wgsl`
struct Params { n: u32, a: f32 }

// Invocations per workgroup of the one-invocation-per-item entry points: picked on the host (Gpu.workgroupSize).
override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

fn index(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }

@compute @workgroup_size(WG)
fn accumulate_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  y[i] = y[i] + p.a * x[i];
}

@compute @workgroup_size(WG)
fn fill_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  y[i] = p.a;
}
`;
}
