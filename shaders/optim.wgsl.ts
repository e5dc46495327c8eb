/**
 * Optimizer updates, one parameter tensor (or a window of one buffer) per dispatch, in place.
 * The step's scalars come from the training clock (`clock.wgsl.ts`): the learning rate and Adam's
 * bias corrections from `sched[step - base]`, the gradient-clipping factor from `grad_scale`.
 *
 *   adamw   torch.optim.AdamW (decoupled weight decay, bias correction), element for element:
 *             g = grad * grad_scale
 *             p = p * (1 - lr * weight_decay)
 *             m = m + (1 - beta1) * (g - m)                  (torch's lerp_, weight < 0.5)
 *             v = v * beta2 + (1 - beta2) * g * g            (mul_ then addcmul_)
 *             p = p - step_size * (m / (sqrt(v) / sqrt(1 - beta2^t) + eps)),  step_size = lr / (1 - beta1^t)
 *   sgd     torch.optim.SGD (coupled weight decay; momentum with dampening, optionally Nesterov):
 *             g = grad * grad_scale + weight_decay * p
 *             buf = g at t = 1, else momentum * buf + (1 - dampening) * g
 *             g = g + momentum * buf (Nesterov) or buf;   p = p - lr * g
 *           Without momentum the buffer is neither read nor written.
 *
 * Versions: v1 `adamw_v1` and `sgd_v1`, one invocation per element, 64 per workgroup, 2-D
 * folded (index = gid.x + gid.y * num_workgroups.x * 64).
 * Bindings: 0 params, 1 the parameter (window), 2 its gradient (window), 3 exp_avg / momentum
 * buffer, 4 exp_avg_sq (adamw; sgd binds a dummy), 5 the clock.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';
import { CLOCK_STRUCT } from './clock.wgsl.ts';

export const OPTIM_VERSIONS = ['adamw_v1', 'sgd_v1'] as const;

export function optimSource(): string {
  return wgsl`
${CLOCK_STRUCT}

struct Params {
  n: u32,          // elements updated
  p_off: u32,      // element offset of the parameter inside its binding
  g_off: u32,      // element offset of the gradient inside its binding
  nesterov: u32,   // sgd: 1 for Nesterov momentum
  weight_decay: f32,
  beta1: f32,      // adamw: beta1; sgd: momentum (0: no buffer)
  beta2: f32,      // adamw only
  one_minus_beta1: f32, // 1 - beta1 computed in float64 on the host (sgd: 1 - dampening)
  one_minus_beta2: f32,
  eps: f32,
}

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read> clk: Clock;

@compute @workgroup_size(64)
fn adamw_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= prm.n) { return; }
  let s = clk.sched[clk.step - clk.base];  // (lr, step_size, bc2_sqrt, -)
  let g = grad[prm.g_off + i] * clk.grad_scale;
  var p = param[prm.p_off + i];
  if (prm.weight_decay != 0.0) { p = p * (1.0 - s.x * prm.weight_decay); }
  let mi = m[i] + prm.one_minus_beta1 * (g - m[i]);
  let vi = v[i] * prm.beta2 + prm.one_minus_beta2 * g * g;
  m[i] = mi;
  v[i] = vi;
  let denom = sqrt(vi) / s.z + prm.eps;
  param[prm.p_off + i] = p + (-s.y) * (mi / denom);
}

@compute @workgroup_size(64)
fn sgd_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= prm.n) { return; }
  let lr = clk.sched[clk.step - clk.base].x;
  let p = param[prm.p_off + i];
  var g = grad[prm.g_off + i] * clk.grad_scale;
  if (prm.weight_decay != 0.0) { g = g + prm.weight_decay * p; }
  if (prm.beta1 != 0.0) {
    var buf = g;
    if (clk.step > 0u) { buf = prm.beta1 * m[i] + prm.one_minus_beta1 * g; }
    m[i] = buf;
    if (prm.nesterov == 1u) { g = g + prm.beta1 * buf; } else { g = buf; }
  }
  param[prm.p_off + i] = p + (-lr) * g;
}
`;
}
