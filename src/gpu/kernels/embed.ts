/**
 * Embedding gather (`shaders/embed.wgsl.ts`) over a row-chunked table. CPU reference: `embed.cpu.ts`.
 */
import { embedSource } from '../../../shaders/embed.wgsl.ts';
import type { Gpu } from '../device.ts';
import { itemConstants, itemGrid, Params, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';
import type { RowChunk } from '../chunked.ts';

export interface GatherArgs {
  out: GPUBuffer; // [n, C]
  ids: GPUBuffer; // [n] u32
  table: readonly RowChunk[]; // [vocab, C] in row chunks
  n: number;
  C: number;
  /** The table holds f16 values. */
  f16Table?: boolean;
  /** Multiplies every value (Gemma's sqrt(d_model) embedding scale; default 1). */
  scale?: number;
  label: string;
}

/** out [n, C] = table[ids] — one dispatch per chunk of the table. */
export function gather(gpu: Gpu, args: GatherArgs, params: Params[]): Dispatch[] {
  const { out, ids, table, n, C, label } = args;
  const f16Table = !!args.f16Table;
  const scale = args.scale ?? 1;
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
