/**
 * The backward of the MLP activations (`activation.wgsl.ts`), elementwise over n values:
 * dx = dy act'(x), with x = hook_pre and dy the gradient of hook_post.
 *
 *   gelu_new  act' = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 0.044715 x^2),
 *             t = tanh(sqrt(2/pi) (x + 0.044715 x^3)) with the forward's clamp of the argument
 *             to [-10, 10] (where 1 - t^2 rounds to 0, so no inf * 0)
 *   gelu      act' = Phi(x) + x phi(x) = 0.5 (1 + erf(x / sqrt 2)) + x exp(-x^2 / 2) / sqrt(2 pi)
 *             (erf by the forward's Abramowitz & Stegun 7.1.26)
 *   silu      act' = s (1 + x (1 - s)), s = sigmoid(x)
 *   relu      act' = 1 for x > 0, else 0 (PyTorch's choice at 0)
 *
 * Variant `gated` (SwiGLU: y = act(x) u): dx = dy u act'(x) and du = dy act(x), u the up
 * projection (hook_pre_linear) in binding 3, du in binding 5.
 *
 * Versions: v1 of each (`gelu_new_backward_v1`, `gelu_backward_v1`, `silu_backward_v1`,
 * `relu_backward_v1`), one invocation per element, WG per workgroup, 2-D folded.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const ACTIVATION_BACKWARD_VERSIONS = ['gelu_new_backward_v1', 'gelu_backward_v1', 'silu_backward_v1', 'relu_backward_v1'] as const;

export function activationBackwardSource({ gated }: { gated: boolean } = { gated: false }): string {
  return wgsl`
struct Params { n: u32 }

// Invocations per workgroup of the one-invocation-per-item entry points: picked on the host (Gpu.workgroupSize).
override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
#if ${gated}
@group(0) @binding(3) var<storage, read> u: array<f32>;
@group(0) @binding(5) var<storage, read_write> du: array<f32>;
#endif

const SQRT_2_OVER_PI = 0.7978845608028654;
const TANH_CLAMP = 10.0;
const INV_SQRT_2 = 0.7071067811865476;
const INV_SQRT_2PI = 0.3989422804014327;

fn erf_approx(z: f32) -> f32 {
  let a = abs(z);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return sign(z) * (1.0 - poly * exp(-a * a));
}

fn index(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }

// value: act(x) (used by the gated du); slope: act'(x).
fn store(i: u32, value: f32, slope: f32) {
#if ${gated}
  dx[i] = dy[i] * u[i] * slope;
  du[i] = dy[i] * value;
#else
  dx[i] = dy[i] * slope;
#endif
}

@compute @workgroup_size(WG)
fn gelu_new_backward_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  let v = x[i];
  let t = tanh(clamp(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v), -TANH_CLAMP, TANH_CLAMP));
  let slope = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * v * v);
  store(i, 0.5 * v * (1.0 + t), slope);
}

@compute @workgroup_size(WG)
fn gelu_backward_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  let v = x[i];
  let cdf = 0.5 * (1.0 + erf_approx(v * INV_SQRT_2));
  store(i, v * cdf, cdf + v * exp(-0.5 * v * v) * INV_SQRT_2PI);
}

@compute @workgroup_size(WG)
fn silu_backward_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  let v = x[i];
  // exp(-v) overflows to inf for v < -88: s = 0 and the slope is 0, never NaN.
  let s = 1.0 / (1.0 + exp(-v));
  store(i, v * s, s * (1.0 + v * (1.0 - s)));
}

@compute @workgroup_size(WG)
fn relu_backward_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  let v = x[i];
  store(i, max(v, 0.0), select(0.0, 1.0, v > 0.0));
}
`;
}
