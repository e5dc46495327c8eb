/**
 * Gradient fan-in and fills (`shaders/grad-accumulate.wgsl.ts`): y += a x (a residual add's
 * backward sums its branches' gradients), y = value. CPU reference: `grad-accumulate.cpu.ts`.
 */
import { gradAccumulateSource } from '../../../shaders/grad-accumulate.wgsl.ts';
import type { Gpu } from '../device.ts';
import { itemConstants, itemGrid, Params, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';

/** y [n] += a * x [n]. */
export function accumulate(gpu: Gpu, y: GPUBuffer, x: GPUBuffer, n: number, params: Params[], label: string, a = 1): Dispatch {
  const pipeline = gpu.pipelines.get('grad-accumulate', gradAccumulateSource(), 'accumulate_v1', itemConstants(gpu));
  const u = new Params(gpu, [n, { f32: a }], `${label} params`);
  params.push(u);
  const bindGroup = gpu.device.createBindGroup({
    label,
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: u.buffer } },
      { binding: 1, resource: bindWhole(gpu, x, n, `${label} input`) },
      { binding: 2, resource: bindWhole(gpu, y, n, `${label} output`) },
    ],
  });
  return { kind: 'dispatch', label, pipeline, bindGroup, workgroups: itemGrid(gpu, n) };
}

/** y [n] = value. */
export function fill(gpu: Gpu, y: GPUBuffer, n: number, params: Params[], label: string, value = 0): Dispatch {
  const pipeline = gpu.pipelines.get('grad-accumulate', gradAccumulateSource(), 'fill_v1', itemConstants(gpu));
  const u = new Params(gpu, [n, { f32: value }], `${label} params`);
  params.push(u);
  const bindGroup = gpu.device.createBindGroup({
    label,
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: u.buffer } },
      { binding: 2, resource: bindWhole(gpu, y, n, `${label} output`) },
    ],
  });
  return { kind: 'dispatch', label, pipeline, bindGroup, workgroups: itemGrid(gpu, n) };
}
