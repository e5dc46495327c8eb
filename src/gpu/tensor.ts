/**
 * A tensor handle: a GPU buffer, a shape and a dtype. Activations are fp32 row-major,
 * last dimension contiguous; the data stays on the GPU until `read()` is called.
 */
import type { Gpu } from './device.ts';

export type DType = 'f32';

export class Tensor {
  private released = false;

  constructor(
    readonly gpu: Gpu,
    readonly buffer: GPUBuffer,
    /** Row-major shape, e.g. `[batch, pos, head, d_head]`. */
    readonly shape: readonly number[],
    readonly dtype: DType = 'f32',
    /** True when the buffer came from `gpu.pool` and goes back there on `release()`. */
    private readonly pooled = true,
  ) {}

  /** A pooled tensor of the given shape (contents undefined until written). */
  static empty(gpu: Gpu, shape: readonly number[], label: string): Tensor {
    const n = numel(shape);
    return new Tensor(gpu, gpu.pool.acquire(n * 4, label), shape);
  }

  /** A pooled tensor holding `data`. */
  static from(gpu: Gpu, data: Float32Array, shape: readonly number[], label: string): Tensor {
    if (data.length !== numel(shape)) {
      throw new Error(`${label}: ${data.length} values do not fill shape [${shape.join(', ')}]`);
    }
    const t = Tensor.empty(gpu, shape, label);
    gpu.device.queue.writeBuffer(t.buffer, 0, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
    return t;
  }

  get numel(): number {
    return numel(this.shape);
  }

  get byteLength(): number {
    return this.numel * 4;
  }

  /** Copies the tensor to the CPU. This is the only way data leaves the GPU. */
  async read(): Promise<Float32Array> {
    this.assertLive();
    return readBuffer(this.gpu, this.buffer, 0, this.byteLength);
  }

  /** Gives the buffer back to the pool. The handle is dead afterwards. */
  release(): void {
    if (this.released) return;
    this.released = true;
    if (this.pooled) this.gpu.pool.release(this.buffer);
  }

  get isReleased(): boolean {
    return this.released;
  }

  assertLive(): void {
    if (this.released) throw new Error(`tensor "${this.buffer.label}" was used after release()`);
  }
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Reads `byteLength` bytes at `offset` through a staging buffer. */
export async function readBuffer(gpu: Gpu, buffer: GPUBuffer, offset: number, byteLength: number): Promise<Float32Array> {
  gpu.assertAlive();
  const size = Math.ceil(byteLength / 4) * 4;
  const staging = gpu.device.createBuffer({ size: Math.max(size, 4), usage: 0x0001 | 0x0008, label: 'readback' }); // MAP_READ | COPY_DST
  try {
    const enc = gpu.device.createCommandEncoder({ label: 'readback' });
    enc.copyBufferToBuffer(buffer, offset, staging, 0, size);
    gpu.device.queue.submit([enc.finish()]);
    await staging.mapAsync(0x0001); // GPUMapMode.READ
    const out = new Float32Array(staging.getMappedRange(0, size).slice(0));
    staging.unmap();
    return out;
  } catch (e) {
    gpu.assertAlive();
    throw e;
  } finally {
    staging.destroy();
  }
}
