/**
 * Interventions on an activation in place, driven by a table of entries: the one kernel behind
 * zero / mean / replace (patching) / scale / add (steering) at every hook point.
 *
 * An activation is addressed as (batch b, position p, head h, feature f):
 *   index = b * sb + p * sp + h * sh + f,   f < F
 * which covers [B, T, d] (sh = 0, one "head"), [B, T, H, dh], [B, T, H, d_model] and the
 * patterns [B, H, Tq, Tk] (p = query position, f = key position).
 *
 * Each entry (10 words) acts on one (b, p), a head range [h0, h1) and a feature range [f0, f1)
 * (all of F, or for a pattern some key positions: patching one (query, key) entry):
 *   op 0 zero:     x = 0
 *   op 1 scale:    x = x * value
 *   op 2 add:      x = x + value * src[src_base + h * src_sh + f]
 *   op 3 replace:  x = src[src_base + h * src_sh + f]
 *   op 4 set:      x = value                           (clamping an SAE feature)
 * so every batch row can carry its own intervention in the same pass (a patching sweep is one
 * forward of many rows, each with its own entries).
 *
 * Versions: v1 `intervene_v1`. Dispatch: (ceil(H_span * F / WG), entries) workgroups of WG;
 * workgroup y picks the entry, x the element within its head and feature ranges.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const INTERVENE_VERSIONS = ['intervene_v1'] as const;

/** Words per entry in the table (must match `Entry` below). */
export const ENTRY_WORDS = 10;

export const OP = { zero: 0, scale: 1, add: 2, replace: 3, set: 4 } as const;

export function interveneSource(): string {
  return wgsl`
struct Params {
  sb: u32, sp: u32, sh: u32, F: u32,
  src_sh: u32,
  entry0: u32,   // first entry of this dispatch in the table
  n_entries: u32,
}

struct Entry {
  op: u32, b: u32, p: u32, h0: u32, h1: u32,
  src_base: u32,
  value: f32,
  f0: u32, f1: u32,
  pad: u32,
}

// Invocations per workgroup of the one-invocation-per-item entry points: picked on the host (Gpu.workgroupSize).
override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> entries: array<Entry>;
@group(0) @binding(3) var<storage, read> src: array<f32>;

@compute @workgroup_size(WG)
fn intervene_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wg: vec3u) {
  if (wg.y >= prm.n_entries) { return; }
  let e = entries[prm.entry0 + wg.y];
  let i = gid.x;
  let nf = e.f1 - e.f0;
  if (i >= (e.h1 - e.h0) * nf) { return; }
  let h = e.h0 + i / nf;
  let f = e.f0 + i % nf;
  let idx = e.b * prm.sb + e.p * prm.sp + h * prm.sh + f;
  let s = e.src_base + h * prm.src_sh + f;
  switch e.op {
    case 0u: { x[idx] = 0.0; }
    case 1u: { x[idx] = x[idx] * e.value; }
    case 2u: { x[idx] = x[idx] + e.value * src[s]; }
    case 4u: { x[idx] = e.value; }
    default: { x[idx] = src[s]; }
  }
}
`;
}
