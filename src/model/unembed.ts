/**
 * The unembedding: logits [rows, V] = x [rows, C] @ W_U + b_U, with W_U stored as its rows
 * [V, C] (W_E itself when tied) in row chunks, and b_U (when the model has one) in the same chunks.
 *
 * Each vocabulary chunk fills a column block of the logits. When the logits themselves exceed
 * one binding (1024 positions x 50257 tokens x 4 B = 206 MB), rows are processed in blocks small
 * enough that each block's window of the logits fits a binding.
 */
import type { Gpu } from '../gpu/device.ts';
import type { RowChunk } from '../gpu/chunked.ts';
import type { Dispatch, Params } from '../gpu/recorder.ts';
import { matmul } from '../gpu/kernels/matmul.ts';

export function planUnembed(
  gpu: Gpu,
  logits: GPUBuffer, // [rows, V]
  x: GPUBuffer, // [rows, C]
  W_E: readonly RowChunk[], // [V, C] in chunks
  rows: number,
  C: number,
  V: number,
  params: Params[],
  /** The embedding rows are f16. */
  f16 = false,
  /** The bias [V] in W_E's chunks, or null. */
  bias: readonly RowChunk[] | null = null,
): Dispatch[] {
  // A window may start up to one alignment unit before its first element.
  const slack = gpu.limits.minStorageBufferOffsetAlignment;
  const rowsPerBlock = Math.max(1, Math.min(rows, Math.floor((gpu.maxBinding - slack) / (V * 4))));
  if (V * 4 + slack > gpu.maxBinding) {
    throw new Error(`one row of logits (${V} tokens) does not fit the device's binding limit of ${gpu.maxBinding} bytes`);
  }
  const out: Dispatch[] = [];
  for (let r0 = 0; r0 < rows; r0 += rowsPerBlock) {
    const M = Math.min(rowsPerBlock, rows - r0);
    for (const [i, chunk] of W_E.entries()) {
      out.push(
        matmul(
          gpu,
          {
            out: logits,
            outStart: r0 * V,
            ldc: V,
            colStart: chunk.row0,
            a: x,
            aStart: r0 * C,
            b: chunk.buffer,
            bias: bias?.[i].buffer ?? null,
            M,
            N: chunk.rows,
            K: C,
            transB: true,
            f16B: f16,
            label: `unembed rows ${r0}+${M} vocab ${chunk.row0}+${chunk.rows}`,
          },
          params,
        ),
      );
    }
  }
  return out;
}
