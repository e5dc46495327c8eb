/**
 * Per-head attention output (TransformerLens' `hook_result`) and its sum back into `attn_out`.
 * Computed only when a run asks for hook_result: it is [B, T, H, d_model], H times attn_out.
 *
 *   head_result  result[b, t, h, c] = sum_d z[b, t, h, d] * W_O[h * dh + d, c]
 *   sum_heads    out[b, t, c] = sum_h result[b, t, h, c] + b_O[c]
 *
 * z: [B, T, H, dh]; W_O: [H * dh, C]; result: [B, T, H, C]; out, b_O: [B, T, C], [C].
 * Versions: v1 of each, one invocation per output element, WG per workgroup, 2-D folded.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const HEAD_RESULT_VERSIONS = ['head_result_v1', 'sum_heads_v1'] as const;

/** `f16W`: W_O holds f16 weights (shader-f16), widened to f32 on read. */
export function headResultSource({ f16W }: { f16W: boolean } = { f16W: false }): string {
  return wgsl`
#if ${f16W}
enable f16;
@group(0) @binding(2) var<storage, read> w: array<f16>;          // head_result: W_O; sum_heads: b_O (f32 variant)
#else
@group(0) @binding(2) var<storage, read> w: array<f32>;          // head_result: W_O; sum_heads: b_O
#endif
// Invocations per workgroup of the one-invocation-per-item entry points: picked on the host (Gpu.workgroupSize).
override WG: u32 = 64u;
struct Params { BT: u32, H: u32, dh: u32, C: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;          // head_result: z;  sum_heads: result
@group(0) @binding(3) var<storage, read_write> out: array<f32>;  // head_result: result; sum_heads: attn_out

@compute @workgroup_size(WG)
fn head_result_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG; // (bt, h, c)
  if (i >= p.BT * p.H * p.C) { return; }
  let c = i % p.C;
  let h = (i / p.C) % p.H;
  let bt = i / (p.C * p.H);
  let zo = (bt * p.H + h) * p.dh;
  var acc = 0.0;
  for (var d = 0u; d < p.dh; d++) { acc += a[zo + d] * f32(w[(h * p.dh + d) * p.C + c]); }
  out[i] = acc;
}

@compute @workgroup_size(WG)
fn sum_heads_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG; // (bt, c)
  if (i >= p.BT * p.C) { return; }
  let c = i % p.C;
  let bt = i / p.C;
  var acc = 0.0;
  for (var h = 0u; h < p.H; h++) { acc += a[(bt * p.H + h) * p.C + c]; }
  out[i] = acc + f32(w[c]);
}
`;
}
