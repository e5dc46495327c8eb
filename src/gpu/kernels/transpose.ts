/** Matrix transpose (`shaders/transpose.wgsl.ts`). CPU reference: `transpose.cpu.ts`. */
import { transposeSource } from '../../../shaders/transpose.wgsl.ts';
import type { Gpu } from '../device.ts';
import { Params, grid1d, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';

/** out [C, R] = x [R, C] transposed. */
export function transpose(gpu: Gpu, out: GPUBuffer, x: GPUBuffer, R: number, C: number, params: Params[], label: string): Dispatch {
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
