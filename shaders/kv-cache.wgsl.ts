/**
 * Keys and values for a forward that resumes at position q0: the first q0 positions come from a
 * cache (the same in every batch row), the rest were just computed per row.
 *
 *   kv_assemble   full[b, t, :] = t < q0 ? past[t, :] : fresh[b, t - q0, :]
 *
 * past: [q0, HD]; fresh: [B, T - q0, HD]; full: [B, T, HD], HD = heads * d_head.
 * Versions: v1 `kv_assemble_v1`, one invocation per element of full, 64 per workgroup, 2-D folded.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const KV_CACHE_VERSIONS = ['kv_assemble_v1'] as const;

export function kvCacheSource(): string {
  return wgsl`
struct Params { B: u32, T: u32, q0: u32, HD: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> past: array<f32>;
@group(0) @binding(2) var<storage, read> fresh: array<f32>;
@group(0) @binding(3) var<storage, read_write> full: array<f32>;

@compute @workgroup_size(64)
fn kv_assemble_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.B * p.T * p.HD) { return; }
  let e = i % p.HD;
  let t = (i / p.HD) % p.T;
  let b = i / (p.HD * p.T);
  if (t < p.q0) {
    full[i] = past[t * p.HD + e];
  } else {
    full[i] = fresh[(b * (p.T - p.q0) + t - p.q0) * p.HD + e];
  }
}
`;
}
