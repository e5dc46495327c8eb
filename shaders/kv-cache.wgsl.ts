/**
 * Keys and values for a forward that resumes at position q0: the first positions come from a
 * cache, the rest were just computed per row.
 *
 *   kv_assemble   full[b, t, :] = t < start[b] ? past[row[b], t, :] : fresh[b, t - q0, :]
 *
 * start[b] = q0 for every row, or (variant `starts`) a per-row start >= q0 read from a table:
 * a ragged pass computes row b only from its own start, and its positions q0 .. start[b] - 1 of
 * `fresh` are never written.
 * row[b] = 0 for every row (one cached prompt), or (variant `rows`) read from a table: a pass
 * over a batch of prompts, each row resuming from its own prompt's cache.
 * past: [past rows, pastLen >= max start, HD]; fresh: [B, T - q0, HD]; full: [B, T, HD], HD = heads * d_head.
 * Versions: v1 `kv_assemble_v1`, one invocation per element of full, WG per workgroup, 2-D folded.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const KV_CACHE_VERSIONS = ['kv_assemble_v1'] as const;

export function kvCacheSource({ starts = false, rows = false }: { starts?: boolean; rows?: boolean } = {}): string {
  return wgsl`
struct Params { B: u32, T: u32, q0: u32, HD: u32, pastLen: u32 }

// Invocations per workgroup of the one-invocation-per-item entry points: picked on the host (Gpu.workgroupSize).
override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> past: array<f32>;
@group(0) @binding(2) var<storage, read> fresh: array<f32>;
@group(0) @binding(3) var<storage, read_write> full: array<f32>;
#if ${starts}
@group(0) @binding(4) var<storage, read> start: array<u32>;
#endif
#if ${rows}
@group(0) @binding(5) var<storage, read> past_row: array<u32>;
#endif

@compute @workgroup_size(WG)
fn kv_assemble_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.B * p.T * p.HD) { return; }
  let e = i % p.HD;
  let t = (i / p.HD) % p.T;
  let b = i / (p.HD * p.T);
#if ${starts}
  let s = start[b];
#else
  let s = p.q0;
#endif
#if ${rows}
  let r = past_row[b];
#else
  let r = 0u;
#endif
  if (t < s) {
    full[i] = past[(r * p.pastLen + t) * p.HD + e];
  } else {
    full[i] = fresh[(b * (p.T - p.q0) + t - p.q0) * p.HD + e];
  }
}
`;
}
