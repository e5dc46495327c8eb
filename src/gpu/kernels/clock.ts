/**
 * The training clock's buffer and its tick (`shaders/clock.wgsl.ts`). The host writes the
 * header (step, base, grad_norm, grad_scale = 1) and the schedule rows before each submit; the
 * tick, the last dispatch of every step, advances `step` on the GPU.
 */
import { CLOCK_HEADER_WORDS, clockSource } from '../../../shaders/clock.wgsl.ts';
import type { Gpu } from '../device.ts';
import type { Dispatch } from '../recorder.ts';

/** Bytes of a clock with room for `capacity` schedule rows (vec4f each). */
export function clockBytes(capacity: number): number {
  return (CLOCK_HEADER_WORDS + 4 * capacity) * 4;
}

/**
 * The clock's words for a submit starting after `step` updates: header, then one
 * (lr, step size, sqrt(1 - beta2^t), task scalar or 0) row per scheduled step.
 */
export function clockWords(step: number, rows: readonly (readonly number[])[]): ArrayBuffer {
  const words = new ArrayBuffer(clockBytes(rows.length));
  const u = new Uint32Array(words);
  const f = new Float32Array(words);
  u[0] = step;
  u[1] = step;
  f[2] = 0;
  f[3] = 1; // grad_scale: 1 unless a clip dispatch overwrites it
  rows.forEach((r, k) => f.set(r, CLOCK_HEADER_WORDS + 4 * k));
  return words;
}

/** clock.step += 1. */
export function tick(gpu: Gpu, clock: GPUBuffer, label: string): Dispatch {
  const pipeline = gpu.pipelines.get('clock', clockSource(), 'tick_v1');
  const bindGroup = gpu.device.createBindGroup({ label, layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: clock } }] });
  return { kind: 'dispatch', label, pipeline, bindGroup, workgroups: [1, 1, 1] };
}
