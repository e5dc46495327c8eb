/**
 * The training clock: one small storage buffer that every kernel of a training step reads, so a
 * step recorded once can be replayed many times inside one submit and still know which step it is.
 *
 *   step        updates completed so far (global, from 0); the update being computed is step + 1
 *   base        `step` at the start of this submit (written by the host before each submit)
 *   grad_norm   global L2 norm of this step's gradients (written by `grad-norm.wgsl.ts`)
 *   grad_scale  factor the optimizer applies to every gradient: min(1, max_norm / (norm + 1e-6))
 *               when clipping, else 1 (the host writes 1 before each submit)
 *   sched[k]    the k-th step of this submit, (lr, adam step size lr / (1 - beta1^t),
 *               sqrt(1 - beta2^t), spare): scalars computed on the host in float64, as PyTorch
 *               computes them in Python, and rounded to f32 once
 *
 * Versions: v1 `tick_v1`, one invocation: step += 1 (the last dispatch of every step).
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const CLOCK_VERSIONS = ['tick_v1'] as const;

/** Words before `sched` (step, base, grad_norm, grad_scale): the struct's header, 16 bytes. */
export const CLOCK_HEADER_WORDS = 4;

/**
 * The struct every training kernel declares for its clock binding. Composed into their sources
 * (wgsl-preprocessor has no #include), so the layout is written once.
 */
export const CLOCK_STRUCT = /* wgsl */ `
struct Clock {
  step: u32,
  base: u32,
  grad_norm: f32,
  grad_scale: f32,
  sched: array<vec4f>,  // [steps per submit] (lr, step_size, bc2_sqrt, spare)
}`;

export function clockSource(): string {
  return wgsl`
${CLOCK_STRUCT}

@group(0) @binding(0) var<storage, read_write> clk: Clock;

@compute @workgroup_size(1)
fn tick_v1() {
  clk.step = clk.step + 1u;
}
`;
}
