/**
 * MLP activation functions, elementwise over n values (x: hook_pre, y: hook_post).
 *
 *   gelu_new  GPT-2's tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
 *   gelu      the exact form (Pythia / GPT-NeoX): 0.5 x (1 + erf(x / sqrt(2)))
 *   silu      x * sigmoid(x) (Llama, Mistral, Qwen2)
 *   relu      max(x, 0)
 *
 * Variant `gated` (SwiGLU and friends): y = act(x) * u, with u the up projection
 * (TransformerLens' hook_pre_linear) in binding 3.
 *
 *   softcap   y = cap * tanh(y / cap), in place on binding 2 (Gemma's final logit soft-cap)
 *
 * The tanh argument is clamped to [-10, 10]: tanh(+-10) is already +-1 in fp32, and some WebGPU
 * drivers build tanh from exp, which overflows to inf/inf = NaN for large arguments (x = 100
 * gives an argument of ~36,000). WGSL has no erf: `erf_approx` is Abramowitz & Stegun 7.1.26,
 * absolute error <= 1.5e-7 (about one fp32 ulp of 1), exact limits +-1 for large |x|.
 *
 * Versions: v1 of each, one invocation per element, WG per workgroup, 2-D folded.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const ACTIVATION_VERSIONS = ['gelu_new_v1', 'gelu_v1', 'silu_v1', 'relu_v1', 'softcap_v1'] as const;
export type ActFn = 'gelu_new' | 'gelu' | 'silu' | 'relu';

export function activationSource({ gated }: { gated: boolean } = { gated: false }): string {
  return wgsl`
struct Params { n: u32, cap: f32 }

// Invocations per workgroup of the one-invocation-per-item entry points: picked on the host (Gpu.workgroupSize).
override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
#if ${gated}
@group(0) @binding(3) var<storage, read> u: array<f32>;
#endif

const SQRT_2_OVER_PI = 0.7978845608028654;
const TANH_CLAMP = 10.0;
const INV_SQRT_2 = 0.7071067811865476;

fn erf_approx(z: f32) -> f32 {
  let a = abs(z);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return sign(z) * (1.0 - poly * exp(-a * a));
}

fn index(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }

fn store(i: u32, v: f32) {
#if ${gated}
  y[i] = v * u[i];
#else
  y[i] = v;
#endif
}

@compute @workgroup_size(WG)
fn gelu_new_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  let v = x[i];
  let t = clamp(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v), -TANH_CLAMP, TANH_CLAMP);
  store(i, 0.5 * v * (1.0 + tanh(t)));
}

@compute @workgroup_size(WG)
fn gelu_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  let v = x[i];
  store(i, 0.5 * v * (1.0 + erf_approx(v * INV_SQRT_2)));
}

@compute @workgroup_size(WG)
fn silu_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  let v = x[i];
  // exp(-v) overflows to inf for v < -88: v / inf = -0, the right limit, never NaN.
  store(i, v / (1.0 + exp(-v)));
}

@compute @workgroup_size(WG)
fn softcap_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  y[i] = p.cap * tanh(clamp(y[i] / p.cap, -TANH_CLAMP, TANH_CLAMP));
}

@compute @workgroup_size(WG)
fn relu_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  store(i, max(x[i], 0.0));
}
`;
}
