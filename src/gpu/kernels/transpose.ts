/** Matrix transpose (`shaders/transpose.wgsl.ts`). CPU reference: `transpose.cpu.ts`. */
import { transposeSource } from '../../../shaders/transpose.wgsl.ts';
import type { Gpu } from '../device.ts';
import { Params, grid1d, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';

export interface TransposeArgs {
  out: GPUBuffer; // [C, R]
  x: GPUBuffer; // [R, C]
  R: number;
  C: number;
  label: string;
}

/** out [C, R] = x [R, C] transposed. */
export function transpose(gpu: Gpu, args: TransposeArgs, params: Params[]): Dispatch {
  const { out, x, R, C, label } = args;
  const pipeline = gpu.pipelines.get('transpose', transposeSource(), 'transpose_v1');
  const u = new Params(gpu, [R, C], `${label} params`);
  params.push(u);
  const bindGroup = gpu.device.createBindGroup({
    label,
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: u.buffer } },
      { binding: 1, resource: bindWhole(gpu, x, R * C, `${label} input`) },
      { binding: 2, resource: bindWhole(gpu, out, R * C, `${label} output`) },
    ],
  });
  return { kind: 'dispatch', label, pipeline, bindGroup, workgroups: grid1d(gpu, R * C, 64) };
}
