/**
 * Embedding gather (`shaders/embed.wgsl.ts`) over a row-chunked table. CPU reference: `embed.cpu.ts`.
 */
import { embedSource } from '../../../shaders/embed.wgsl.ts';
import type { Gpu } from '../device.ts';
import { itemConstants, itemGrid, Params, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';
import type { RowChunk } from '../chunked.ts';

/** out [n, C] = table[ids] — one dispatch per chunk of the table. */
export function gather(
  gpu: Gpu,
  out: GPUBuffer,
  ids: GPUBuffer,
  table: readonly RowChunk[],
  n: number,
  C: number,
  params: Params[],
  label: string,
  f16Table = false,
  /** Multiplies every value (Gemma's sqrt(d_model) embedding scale). */
  scale = 1,
): Dispatch[] {
  const pipeline = gpu.pipelines.get('embed', embedSource({ f16Table }), 'gather_v1', itemConstants(gpu));
  return table.map((chunk, ci) => {
    const u = new Params(gpu, [n, C, chunk.row0, chunk.rows, { f32: scale }], `${label}[${ci}] params`);
    params.push(u);
    const bindGroup = gpu.device.createBindGroup({
      label: `${label}[${ci}]`,
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: u.buffer } },
        { binding: 1, resource: bindWhole(gpu, ids, n, `${label} ids`) },
        { binding: 2, resource: bindWhole(gpu, chunk.buffer, chunk.rows * C, `${label} table chunk ${ci}`, f16Table ? 2 : 4) },
        { binding: 3, resource: bindWhole(gpu, out, n * C, `${label} output`) },
      ],
    });
    return { kind: 'dispatch', label: `${label}[${ci}]`, pipeline, bindGroup, workgroups: itemGrid(gpu, n * C) } as Dispatch;
  });
}
