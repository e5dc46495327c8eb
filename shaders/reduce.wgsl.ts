/**
 * Means over batch rows (and optionally positions) of an activation, for mean-ablation:
 *
 *   batch_mean   out[p, h, f] = mean_b x[b, p, h, f]                  (per position)
 *                out[0, h, f] = mean_{b, p} x[b, p, h, f]             (pooled)
 *
 * x is addressed as in `intervene.wgsl.ts`: index = b*sb + p*sp + h*sh + f, f < F, which covers
 * [B, T, d], [B, T, H, dh] and the [B, H, Tq, Tk] patterns. out: [P', H, F], P' = T or 1.
 * Versions: v1 `batch_mean_v1`, one invocation per output element, serial over the reduced
 * axes, WG per workgroup, 2-D folded.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const REDUCE_VERSIONS = ['batch_mean_v1'] as const;

export function reduceSource(): string {
  return wgsl`
struct Params {
  sb: u32, sp: u32, sh: u32, F: u32,
  B: u32, T: u32, H: u32,
  pooled: u32,  // 1: also average over positions
}

// Invocations per workgroup of the one-invocation-per-item entry points: picked on the host (Gpu.workgroupSize).
override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn batch_mean_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG; // (p', h, f)
  let P = select(prm.T, 1u, prm.pooled == 1u);
  if (i >= P * prm.H * prm.F) { return; }
  let f = i % prm.F;
  let h = (i / prm.F) % prm.H;
  let p0 = i / (prm.F * prm.H);
  let p_lo = select(p0, 0u, prm.pooled == 1u);
  let p_hi = select(p0 + 1u, prm.T, prm.pooled == 1u);
  var acc = 0.0;
  for (var b = 0u; b < prm.B; b++) {
    for (var p = p_lo; p < p_hi; p++) { acc += x[b * prm.sb + p * prm.sp + h * prm.sh + f]; }
  }
  out[i] = acc / f32(prm.B * (p_hi - p_lo));
}
`;
}
