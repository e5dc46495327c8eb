/**
 * Uploading weights, including matrices too large for one storage binding.
 *
 * GPT-2 small's token embedding is 50257 x 768 fp32 = 154 MB, above WebGPU's default 128 MiB
 * binding limit and lavapipe's cap. Such a matrix is split by rows into chunks that each fit one
 * binding (and one buffer); kernels that read it (the embedding gather, the unembedding) run
 * once per chunk with the chunk's first row as a parameter.
 */
import type { Gpu } from './device.ts';
import { OutOfMemoryError, formatBytes } from './errors.ts';
import { narrowToF16 } from './half.ts';

export interface RowChunk {
  buffer: GPUBuffer;
  /** First row of the full matrix held in this chunk. */
  row0: number;
  rows: number;
}

const WEIGHT_USAGE = 0x80 | 0x08 | 0x04; // STORAGE | COPY_DST | COPY_SRC

/** Tracks the weight buffers of one model so a failed load can free everything it made. */
export class WeightArena {
  readonly buffers: GPUBuffer[] = [];
  bytes = 0;

  constructor(private readonly gpu: Gpu) {}

  /** One buffer holding `data` (which must fit one binding), as f32 or rounded to f16. */
  upload(data: Float32Array, label: string, f16 = false): GPUBuffer {
    const bytes = Math.max(4, data.length * (f16 ? 2 : 4));
    if (bytes > this.gpu.maxBinding) {
      throw new OutOfMemoryError(`${label} is ${formatBytes(bytes)}, more than one storage binding allows (${formatBytes(this.gpu.maxBinding)})`);
    }
    const half = f16 ? narrowToF16(data, label) : null; // range-checked before anything is allocated
    const buffer = this.gpu.device.createBuffer({ size: Math.ceil(bytes / 4) * 4, usage: WEIGHT_USAGE, label, mappedAtCreation: true });
    this.buffers.push(buffer);
    this.bytes += buffer.size;
    this.gpu.pool.weightBytes += buffer.size;
    if (half) new Uint16Array(buffer.getMappedRange(), 0, data.length).set(half);
    else new Float32Array(buffer.getMappedRange()).set(data);
    buffer.unmap();
    return buffer;
  }

  /** `data` as [rows, cols], split by rows into chunks that each fit one binding and one buffer. */
  uploadRows(data: Float32Array, rows: number, cols: number, label: string, f16 = false): RowChunk[] {
    const limit = Math.min(this.gpu.maxBinding, this.gpu.limits.maxBufferSize);
    const rowsPerChunk = Math.floor(limit / (cols * (f16 ? 2 : 4)));
    if (rowsPerChunk < 1) {
      throw new OutOfMemoryError(`${label}: one row of ${cols} floats exceeds the binding limit of ${formatBytes(limit)}`);
    }
    const chunks: RowChunk[] = [];
    for (let row0 = 0; row0 < rows; row0 += rowsPerChunk) {
      const n = Math.min(rowsPerChunk, rows - row0);
      const part = data.subarray(row0 * cols, (row0 + n) * cols);
      chunks.push({ buffer: this.upload(part, `${label}[rows ${row0}..${row0 + n})`, f16), row0, rows: n });
    }
    return chunks;
  }

  destroy(): void {
    this.gpu.pool.weightBytes -= this.bytes;
    for (const b of this.buffers) b.destroy();
    this.buffers.length = 0;
    this.bytes = 0;
  }
}
