/** Assembling keys/values from a cached prefix and fresh rows (`shaders/kv-cache.wgsl.ts`). CPU reference: `kv-cache.cpu.ts`. */
import { kvCacheSource } from '../../../shaders/kv-cache.wgsl.ts';
import type { Gpu } from '../device.ts';
import { itemConstants, itemGrid, Params, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';

export interface KvAssembleArgs {
  full: GPUBuffer; // [B, T, HD] out
  past: GPUBuffer; // [pastBatch, pastLen, HD]
  fresh: GPUBuffer; // [B, T - q0, HD]
  B: number;
  T: number;
  q0: number;
  HD: number;
  /** [B] u32 per-row starts (>= q0); without it every row starts at q0. */
  starts?: GPUBuffer | null;
  /** Positions `past` holds per row (>= every start; default q0). */
  pastLen?: number;
  /** [B] u32: the row of `past` each batch row reads (a batch of cached prompts); without it, row 0. */
  pastRows?: GPUBuffer | null;
  /** Rows `past` holds (default 1). */
  pastBatch?: number;
  label: string;
}

/** full [B, T, HD] = past [row, q0, HD] for t < q0 (row 0, or the row table's), fresh [B, T - q0, HD] after. */
export function kvAssemble(gpu: Gpu, args: KvAssembleArgs, params: Params[]): Dispatch {
  const { full, past, fresh, B, T, q0, HD, label } = args;
  const starts = args.starts ?? null;
  const pastLen = args.pastLen ?? q0;
  const pastRows = args.pastRows ?? null;
  const pastBatch = args.pastBatch ?? 1;
  const pipeline = gpu.pipelines.get('kv-cache', kvCacheSource({ starts: !!starts, rows: !!pastRows }), 'kv_assemble_v1', itemConstants(gpu));
  const u = new Params(gpu, [B, T, q0, HD, pastLen], `${label} params`);
  params.push(u);
  const bindGroup = gpu.device.createBindGroup({
    label,
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: u.buffer } },
      { binding: 1, resource: bindWhole(gpu, past, Math.max(1, pastBatch * pastLen * HD), `${label} past`) },
      { binding: 2, resource: bindWhole(gpu, fresh, B * (T - q0) * HD, `${label} fresh`) },
      { binding: 3, resource: bindWhole(gpu, full, B * T * HD, `${label} output`) },
      ...(starts ? [{ binding: 4, resource: { buffer: starts, offset: 0, size: B * 4 } }] : []),
      ...(pastRows ? [{ binding: 5, resource: { buffer: pastRows, offset: 0, size: B * 4 } }] : []),
    ],
  });
  return { kind: 'dispatch', label, pipeline, bindGroup, workgroups: itemGrid(gpu, B * T * HD) };
}
