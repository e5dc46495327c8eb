/**
 * Embedding backward (`shaders/embed-backward.wgsl.ts`): a deterministic scatter-add into a
 * row-chunked table gradient. `scatterTable` builds the sorted index the kernel reads; the plan
 * uploads it when the ids are known. CPU reference: `embed-backward.cpu.ts`.
 */
import { embedBackwardSource } from '../../../shaders/embed-backward.wgsl.ts';
import type { Gpu } from '../device.ts';
import type { RowChunk } from '../chunked.ts';
import { itemConstants, itemGrid, Params, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';

/** The kernel's index over `ids`: distinct ids ascending, [U, span starts..., end], rows grouped by id. */
export function scatterTable(ids: ArrayLike<number>): { uniq: Uint32Array<ArrayBuffer>; offsets: Uint32Array<ArrayBuffer>; order: Uint32Array<ArrayBuffer> } {
  const n = ids.length;
  const order = Uint32Array.from({ length: n }, (_, i) => i).sort((a, b) => ids[a] - ids[b] || a - b);
  const uniq: number[] = [];
  const starts: number[] = [];
  order.forEach((r, k) => {
    if (k === 0 || ids[r] !== ids[order[k - 1]]) {
      uniq.push(ids[r]);
      starts.push(k);
    }
  });
  const offsets = new Uint32Array(n + 2);
  offsets[0] = uniq.length;
  starts.forEach((s, u) => (offsets[1 + u] = s));
  offsets[1 + uniq.length] = n;
  const u = new Uint32Array(Math.max(n, 1));
  u.set(uniq);
  return { uniq: u, offsets, order };
}

/** GPU buffers for a `scatterTable` of up to `n` rows (uniq [n], offsets [n + 2], order [n]). */
export interface ScatterIndex {
  uniq: GPUBuffer;
  offsets: GPUBuffer;
  order: GPUBuffer;
  /** Most rows (and so distinct ids) it indexes. */
  n: number;
}

/** Writes the index of `ids` (at most index.n of them) into its buffers. */
export function writeScatterIndex(gpu: Gpu, index: ScatterIndex, ids: ArrayLike<number>): void {
  if (ids.length > index.n) throw new Error(`a scatter index for ${index.n} rows cannot take ${ids.length}`);
  const t = scatterTable(ids);
  gpu.device.queue.writeBuffer(index.uniq, 0, t.uniq);
  gpu.device.queue.writeBuffer(index.offsets, 0, t.offsets);
  gpu.device.queue.writeBuffer(index.order, 0, t.order);
}

export interface ScatterAddArgs {
  dtable: readonly RowChunk[]; // [vocab, C] in row chunks
  dsrc: GPUBuffer; // [n, C]
  index: ScatterIndex;
  C: number;
  /** Add into dtable instead of overwriting the rows it touches. */
  accumulate?: boolean;
  label: string;
}

/** dtable[id] (+)= sum of dsrc's rows with that id, one dispatch per chunk of the table gradient. */
export function scatterAdd(gpu: Gpu, args: ScatterAddArgs, params: Params[]): Dispatch[] {
  const { dtable, dsrc, index, C, label } = args;
  const accumulate = !!args.accumulate;
  const pipeline = gpu.pipelines.get('embed-backward', embedBackwardSource({ acc: accumulate }), 'scatter_add_v1', itemConstants(gpu));
  const n = index.n;
  return dtable.map((chunk, ci) => {
    const u = new Params(gpu, [n, C, chunk.row0, chunk.rows], `${label}[${ci}] params`);
    params.push(u);
    const bindGroup = gpu.device.createBindGroup({
      label: `${label}[${ci}]`,
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: u.buffer } },
        { binding: 1, resource: bindWhole(gpu, index.uniq, Math.max(n, 1), `${label} ids`) },
        { binding: 2, resource: bindWhole(gpu, index.offsets, n + 2, `${label} offsets`) },
        { binding: 3, resource: bindWhole(gpu, index.order, Math.max(n, 1), `${label} order`) },
        { binding: 4, resource: bindWhole(gpu, dsrc, n * C, `${label} gradient`) },
        { binding: 5, resource: bindWhole(gpu, chunk.buffer, chunk.rows * C, `${label} table gradient chunk ${ci}`) },
      ],
    });
    return { kind: 'dispatch', label: `${label}[${ci}]`, pipeline, bindGroup, workgroups: itemGrid(gpu, n * C) } as Dispatch;
  });
}
