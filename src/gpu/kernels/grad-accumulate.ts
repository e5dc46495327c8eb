/**
 * Gradient fan-in and fills (`shaders/grad-accumulate.wgsl.ts`): y += a x (a residual add's
 * backward sums its branches' gradients), y = value. CPU reference: `grad-accumulate.cpu.ts`.
 */
import { gradAccumulateSource } from '../../../shaders/grad-accumulate.wgsl.ts';
import type { Gpu } from '../device.ts';
import { itemConstants, itemGrid, Params, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';

export interface AccumulateArgs {
  y: GPUBuffer; // [n], added to
  x: GPUBuffer; // [n]
  n: number;
  /** The factor on x (default 1). */
  alpha?: number;
  label: string;
}

/** y [n] += a * x [n]. */
export function accumulate(gpu: Gpu, args: AccumulateArgs, params: Params[]): Dispatch {
  const { y, x, n, label } = args;
  const a = args.alpha ?? 1;
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

export interface FillArgs {
  y: GPUBuffer; // [n]
  n: number;
  /** Default 0. */
  value?: number;
  label: string;
}

/** y [n] = value. */
export function fill(gpu: Gpu, args: FillArgs, params: Params[]): Dispatch {
  const { y, n, label } = args;
  const value = args.value ?? 0;
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
