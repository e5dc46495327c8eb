/**
 * Synthetic training data drawn on the GPU, a fresh batch every step, from a counter-based hash:
 * the value at (seed, step, counter) depends on nothing else, so a batch is the same whatever the
 * steps per submit, after a pause, or on the CPU twin (`src/train/random.ts`, bit for bit).
 *
 *   hash(v)          PCG's output permutation on one u32 (Jarzynski and Olano, "Hash Functions for
 *                    GPU Rendering", JCGT 2020)
 *   draw(s, t, c)    hash(c + hash(t + hash(s))): seed s, step t (the clock's step + 1), counter c
 *   uniform(...)     f32(draw >> 8) * 2^-24, exactly representable, in [0, 1)
 *
 *   sparse_features  Toy Models of Superposition's input: x[i, b, f] (instance, batch row, feature) is
 *                    present with probability p[i] (the instance's 1 - sparsity) and then uniform in
 *                    [0, 1), else 0. Counters 2 idx (value) and 2 idx + 1 (presence), idx = the
 *                    element's row-major index; present when presence <= p[i], as in the paper's
 *                    code (torch.rand(...) <= feature_probability).
 *
 * Versions: v1 `sparse_features_v1`, one invocation per element, 64 per workgroup, 2-D folded.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';
import { CLOCK_STRUCT } from './clock.wgsl.ts';

export const SYNTHETIC_VERSIONS = ['sparse_features_v1'] as const;

/** The hash and uniform draws, composed into every kernel that draws random numbers. */
export const RANDOM_WGSL = /* wgsl */ `
fn pcg_hash(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}
fn draw(seed: u32, step: u32, counter: u32) -> u32 {
  return pcg_hash(counter + pcg_hash(step + pcg_hash(seed)));
}
fn uniform01(seed: u32, step: u32, counter: u32) -> f32 {
  return f32(draw(seed, step, counter) >> 8u) * 5.9604644775390625e-8;  // 2^-24
}`;

export function syntheticSource(): string {
  return wgsl`
${CLOCK_STRUCT}
${RANDOM_WGSL}

struct Params {
  B: u32, I: u32, F: u32,  // batch rows, instances, features
  seed: u32,
}

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> prob: array<f32>;        // [I] feature probability (1 - sparsity)
@group(0) @binding(2) var<storage, read_write> x: array<f32>;     // [I, B, F]
@group(0) @binding(3) var<storage, read> clk: Clock;

@compute @workgroup_size(64)
fn sparse_features_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = gid.x + gid.y * nwg.x * 64u;
  if (idx >= prm.B * prm.I * prm.F) { return; }
  let i = idx / (prm.B * prm.F);
  let t = clk.step + 1u;
  let value = uniform01(prm.seed, t, 2u * idx);
  let present = uniform01(prm.seed, t, 2u * idx + 1u) <= prob[i];
  x[idx] = select(0.0, value, present);
}
`;
}
