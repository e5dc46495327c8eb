/**
 * Global gradient norm for clipping (torch.nn.utils.clip_grad_norm_), reduced in a fixed order so
 * two runs give the same bits (WGSL has no float atomics, and none are used).
 *
 *   sumsq     partials[part_off + w] = sum of g^2 over workgroup w's chunk of one gradient tensor:
 *             WG invocations, invocation t sums elements t, t + WG, ... of the chunk of WG * PER
 *             elements (PER of them, in order), then a shared-memory tree (halving strides)
 *   clip      one workgroup: invocation t sums partials t, t + WG, ... in order, the same tree,
 *             then norm = sqrt(total) into the clock's grad_norm, and grad_scale =
 *             min(1, max_norm / (norm + 1e-6)) (PyTorch's formula), or 1 when max_norm is 0
 *
 * Versions: v1 `sumsq_v1` (dispatch: ceil(n / (WG * PER)) workgroups, 2-D folded) and `clip_v1`
 * (dispatch: 1 workgroup). WG (a power of two) and PER are overrides.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';
import { CLOCK_STRUCT } from './clock.wgsl.ts';

export const GRAD_NORM_VERSIONS = ['sumsq_v1', 'clip_v1'] as const;

export function gradNormSource(): string {
  return wgsl`
${CLOCK_STRUCT}

override WG: u32 = 256;  // invocations per workgroup, a power of two (the tree halves it)
override PER: u32 = 4;   // elements each invocation sums in sumsq_v1

struct Params {
  n: u32,         // sumsq: elements of the gradient; clip: number of partials
  g_off: u32,     // sumsq: element offset of the gradient inside its binding
  part_off: u32,  // sumsq: first partial this tensor writes
  max_norm: f32,  // clip: 0 = no clipping (grad_scale = 1)
}

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;           // sumsq only
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
@group(0) @binding(3) var<storage, read_write> clk: Clock;           // clip only

var<workgroup> red: array<f32, WG>;

/** Sums red[0 .. WG) into red[0] by halving strides (fixed order). */
fn tree(t: u32) {
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    workgroupBarrier();
    if (t < s) { red[t] = red[t] + red[t + s]; }
  }
  workgroupBarrier();
}

@compute @workgroup_size(WG)
fn sumsq_v1(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let w = wid.x + wid.y * nwg.x;
  let t = lid.x;
  let start = w * WG * PER;
  // Workgroups past the tensor (a 2-D folded grid rounds up) must not write a partial.
  if (w > 0u && start >= prm.n) { return; }
  var acc = 0.0;
  for (var k = 0u; k < PER; k++) {
    let i = start + k * WG + t;
    if (i < prm.n) {
      let g = grad[prm.g_off + i];
      acc = acc + g * g;
    }
  }
  red[t] = acc;
  tree(t);
  if (t == 0u) { partials[prm.part_off + w] = red[0]; }
}

@compute @workgroup_size(WG)
fn clip_v1(@builtin(local_invocation_id) lid: vec3u) {
  let t = lid.x;
  var acc = 0.0;
  for (var i = t; i < prm.n; i += WG) { acc = acc + partials[i]; }
  red[t] = acc;
  tree(t);
  if (t == 0u) {
    let norm = sqrt(red[0]);
    clk.grad_norm = norm;
    clk.grad_scale = select(1.0, min(1.0, prm.max_norm / (norm + 1e-6)), prm.max_norm > 0.0);
  }
}
`;
}
