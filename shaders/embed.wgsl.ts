/**
 * Embedding gather: out[r, :] = table[ids[r] - row0, :] for every r whose id falls in this
 * table chunk's rows [row0, row0 + rows). A table too large for one binding (GPT-2's 154 MB
 * token embedding) is split by rows into chunks; one dispatch per chunk fills its rows of out.
 * Position embeddings use the same kernel with ids = positions.
 *
 * ids: [n] u32; table: [rows, C]; out: [n, C]. Every value is multiplied by \`scale\` (1 but for
 * Gemma's token embedding, scaled by sqrt(d_model); x * 1 is exact, so other gathers are unchanged).
 * Versions: v1 `gather_v1`, one invocation per output element, WG per workgroup, 2-D folded.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const EMBED_VERSIONS = ['gather_v1'] as const;

/** `f16Table`: the table holds f16 weights (shader-f16), widened to f32 on read. */
export function embedSource({ f16Table }: { f16Table: boolean } = { f16Table: false }): string {
  return wgsl`
#if ${f16Table}
enable f16;
@group(0) @binding(2) var<storage, read> table: array<f16>;
#else
@group(0) @binding(2) var<storage, read> table: array<f32>;
#endif
// Invocations per workgroup of the one-invocation-per-item entry points: picked on the host (Gpu.workgroupSize).
override WG: u32 = 64u;
struct Params { n: u32, C: u32, row0: u32, rows: u32, scale: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn gather_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n * p.C) { return; }
  let r = i / p.C;
  let c = i % p.C;
  let id = ids[r];
  // Unsigned compare: ids below row0 wrap around and fail too.
  if (id - p.row0 >= p.rows) { return; }
  out[i] = f32(table[(id - p.row0) * p.C + c]) * p.scale;
}
`;
}
