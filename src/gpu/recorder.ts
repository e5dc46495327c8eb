/**
 * Recording work: prepared dispatches and copies, encoded into one command encoder and
 * submitted once per forward.
 *
 * A `Dispatch` is built once (pipeline, bind group, uniform params, workgroup counts) and
 * replayed on every run of the same shape, so a run allocates nothing but its outputs.
 */
import type { Gpu } from './device.ts';
import type { Profiler } from './profiler.ts';

export interface Dispatch {
  kind: 'dispatch';
  label: string;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  workgroups: [number, number, number];
}

export interface Copy {
  kind: 'copy';
  src: GPUBuffer;
  srcOffset: number;
  dst: GPUBuffer;
  dstOffset: number;
  size: number;
}

export type Step = Dispatch | Copy;

/** Encodes steps in order, batching consecutive dispatches into one compute pass. */
export function encodeSteps(encoder: GPUCommandEncoder, steps: Iterable<Step>, profiler: Profiler | null = null): void {
  let pass: GPUComputePassEncoder | null = null;
  for (const s of steps) {
    if (s.kind === 'dispatch') {
      if (profiler) {
        // Profiling: a pass per dispatch, timed at its start and end.
        pass?.end();
        pass = encoder.beginComputePass({ timestampWrites: profiler.next(s.label) });
      }
      pass ??= encoder.beginComputePass();
      pass.setPipeline(s.pipeline);
      pass.setBindGroup(0, s.bindGroup);
      pass.dispatchWorkgroups(s.workgroups[0], s.workgroups[1], s.workgroups[2]);
    } else {
      if (pass) {
        pass.end();
        pass = null;
      }
      encoder.copyBufferToBuffer(s.src, s.srcOffset, s.dst, s.dstOffset, s.size);
    }
  }
  pass?.end();
}

/** Submits steps as one command buffer. */
export function submitSteps(gpu: Gpu, steps: Iterable<Step>, label: string): void {
  gpu.assertAlive();
  const encoder = gpu.device.createCommandEncoder({ label });
  encodeSteps(encoder, steps, gpu.profiler);
  gpu.profiler?.resolve(encoder);
  gpu.device.queue.submit([encoder.finish()]);
}

/**
 * Workgroup counts for `n` independent items at `perGroup` items per workgroup, folded into
 * two dimensions when one would exceed the device's 65,535-workgroup limit. Shaders recover
 * the linear index as `wg.x + wg.y * num_workgroups.x`.
 */
/**
 * The override constants of a one-invocation-per-item entry point (its shader's `WG`): the
 * workgroup size the host picked for this device (`Gpu.workgroupSize`).
 */
export function itemConstants(gpu: Gpu): Record<string, number> {
  return { WG: gpu.workgroupSize };
}

/** The grid of a one-invocation-per-item entry point over n items (`itemConstants`' workgroups, folded into 2-D). */
export function itemGrid(gpu: Gpu, n: number): [number, number, number] {
  return grid1d(gpu, n, gpu.workgroupSize);
}

export function grid1d(gpu: Gpu, n: number, perGroup: number): [number, number, number] {
  const groups = Math.max(1, Math.ceil(n / perGroup));
  const maxX = gpu.limits.maxComputeWorkgroupsPerDimension;
  if (groups <= maxX) return [groups, 1, 1];
  const y = Math.ceil(groups / maxX);
  return [Math.ceil(groups / y), y, 1];
}

/** A uniform buffer of 32-bit words (u32 and f32 fields packed in declaration order). */
export class Params {
  readonly buffer: GPUBuffer;

  constructor(gpu: Gpu, fields: Array<number | { f32: number }>, label: string) {
    const words = new ArrayBuffer(Math.max(16, Math.ceil((fields.length * 4) / 16) * 16));
    const u = new Uint32Array(words);
    const f = new Float32Array(words);
    fields.forEach((v, i) => {
      if (typeof v === 'number') u[i] = v;
      else f[i] = v.f32;
    });
    this.buffer = gpu.device.createBuffer({ size: words.byteLength, usage: 0x0040 | 0x0008, label }); // UNIFORM | COPY_DST
    gpu.device.queue.writeBuffer(this.buffer, 0, words);
  }

  destroy(): void {
    this.buffer.destroy();
  }
}
