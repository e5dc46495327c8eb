/**
 * MLP activation functions, elementwise over n values (x: hook_pre, y: hook_post).
 *
 *   gelu_new  GPT-2's tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
 *
 * The tanh argument is clamped to [-10, 10]: tanh(+-10) is already +-1 in fp32, and some WebGPU
 * drivers build tanh from exp, which overflows to inf/inf = NaN for large arguments (x = 100
 * gives an argument of ~36,000).
 *
 * Versions: v1 `gelu_new_v1`, one invocation per element, 64 per workgroup, 2-D folded.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const ACTIVATION_VERSIONS = ['gelu_new_v1'] as const;

export function activationSource(): string {
  return wgsl`
struct Params { n: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

const SQRT_2_OVER_PI = 0.7978845608028654;
const TANH_CLAMP = 10.0;

@compute @workgroup_size(64)
fn gelu_new_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.n) { return; }
  let v = x[i];
  let u = clamp(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v), -TANH_CLAMP, TANH_CLAMP);
  y[i] = 0.5 * v * (1.0 + tanh(u));
}
`;
}
