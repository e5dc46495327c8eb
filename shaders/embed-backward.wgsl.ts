/**
 * The backward of the embedding gather (`embed.wgsl.ts`): a scatter-add of the gathered rows'
 * gradients into the table's gradient, deterministic without float atomics (which WGSL lacks).
 * The host sorts the rows by id once (ids are known on the CPU before a run): `order` lists the
 * rows grouped by id, in row order within an id, `uniq` the distinct ids ascending, and
 * `offsets[1 + u] .. offsets[2 + u]` the span of `order` holding id uniq[u]; offsets[0] is the
 * count of distinct ids U. Then
 *
 *   scatter_add   dtable[uniq[u] - row0, c] (+)= sum_{k in span u} dsrc[order[k], c]
 *
 * for every id in this table chunk's rows [row0, row0 + rows), one invocation summing in a fixed
 * order. Rows of dtable whose id does not occur are not touched (the host zero-fills first, or
 * accumulates onto another share: a tied embedding's unembedding gradient). Position embeddings
 * use it with ids = positions; the unembedding of selected positions with ids = those rows.
 *
 * Versions: v1 `scatter_add_v1`, one invocation per (distinct id, column), WG per workgroup,
 * 2-D folded; dispatched for the most ids the plan allows, invocations past U return.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const EMBED_BACKWARD_VERSIONS = ['scatter_add_v1'] as const;

export function embedBackwardSource({ acc }: { acc: boolean } = { acc: false }): string {
  return wgsl`
struct Params { maxU: u32, C: u32, row0: u32, rows: u32 }

// Invocations per workgroup of the one-invocation-per-item entry points: picked on the host (Gpu.workgroupSize).
override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> uniq: array<u32>;
@group(0) @binding(2) var<storage, read> offsets: array<u32>;
@group(0) @binding(3) var<storage, read> order: array<u32>;
@group(0) @binding(4) var<storage, read> dsrc: array<f32>;
@group(0) @binding(5) var<storage, read_write> dtable: array<f32>;

@compute @workgroup_size(WG)
fn scatter_add_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  let u = i / p.C;
  let c = i % p.C;
  if (u >= min(offsets[0], p.maxU)) { return; }
  let id = uniq[u];
  // Unsigned compare: ids below row0 wrap around and fail too.
  if (id - p.row0 >= p.rows) { return; }
  var s = 0.0;
  for (var k = offsets[1u + u]; k < offsets[2u + u]; k++) { s += dsrc[order[k] * p.C + c]; }
  let o = (id - p.row0) * p.C + c;
#if ${acc}
  dtable[o] = dtable[o] + s;
#else
  dtable[o] = s;
#endif
}
`;
}
