/**
 * A buffer pool keyed by size class.
 *
 * Every activation and cache buffer comes from here and goes back here, so repeated runs reuse
 * the same GPU memory instead of allocating and freeing per run. Sizes round up to a class
 * (quarter-octave steps above 64 KiB, 256-byte steps below) so nearby sizes share buffers while
 * wasting at most ~19% of a buffer.
 */
import { OutOfMemoryError, formatBytes } from './errors.ts';

/** Storage buffers the engine binds, copies into and reads back from. */
export const POOL_USAGE = GPUBufferUsageFlagsAll();

function GPUBufferUsageFlagsAll(): number {
  // GPUBufferUsage is a global only once a host has installed WebGPU; use the spec's values.
  const STORAGE = 0x80;
  const COPY_SRC = 0x4;
  const COPY_DST = 0x8;
  return STORAGE | COPY_SRC | COPY_DST;
}

/** Rounds a byte size up to its pool size class. */
export function sizeClass(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes / 256) * 256);
  if (b <= 65536) return b;
  const octave = 2 ** Math.floor(Math.log2(b));
  const step = octave / 4;
  return Math.ceil(b / step) * step;
}

export class BufferPool {
  private free = new Map<number, GPUBuffer[]>();
  private inUse = new Set<GPUBuffer>();
  /** Bytes of every buffer this pool holds, in use or free. */
  liveBytes = 0;
  /** Buffers this pool holds, in use or free. */
  liveBuffers = 0;
  /** High-water mark of `liveBytes`. */
  peakBytes = 0;
  /** Refuse to grow beyond this many bytes, weights included (defaults to no limit but the driver's). */
  budgetBytes = Number.POSITIVE_INFINITY;
  /** Bytes held outside the pool but counted against the budget: model weights. */
  weightBytes = 0;
  /** Bytes of buffers handed out and not yet released. */
  inUseBytes = 0;

  constructor(private readonly device: GPUDevice) {}

  /** A buffer of at least `bytes` bytes (contents undefined), marked in use. */
  acquire(bytes: number, label = 'activation'): GPUBuffer {
    const size = sizeClass(bytes);
    const list = this.free.get(size);
    const reused = list?.pop();
    if (reused) {
      this.inUse.add(reused);
      this.inUseBytes += size;
      return reused;
    }
    // Over budget while idle buffers of other sizes are held: free those first.
    if (this.liveBytes + this.weightBytes + size > this.budgetBytes) this.trim();
    if (size > this.availableBytes) {
      throw new OutOfMemoryError(`${label} needs ${formatBytes(size)} but only ${formatBytes(Math.max(0, this.availableBytes))} ` + `of the ${formatBytes(this.budgetBytes)} GPU budget is left`);
    }
    const buffer = this.device.createBuffer({ size, usage: POOL_USAGE, label });
    this.liveBytes += size;
    this.liveBuffers++;
    this.peakBytes = Math.max(this.peakBytes, this.liveBytes);
    this.inUse.add(buffer);
    this.inUseBytes += size;
    return buffer;
  }

  /** Returns a buffer to its size class for reuse. Releasing twice is a bug and throws. */
  release(buffer: GPUBuffer): void {
    if (!this.inUse.delete(buffer)) throw new Error(`buffer "${buffer.label}" released twice or not from this pool`);
    this.inUseBytes -= buffer.size;
    const list = this.free.get(buffer.size) ?? [];
    list.push(buffer);
    this.free.set(buffer.size, list);
  }

  /**
   * Bytes of new buffers that acquiring all of `sizes` would create, after reusing what the
   * free lists hold. Lets a caller check a whole run against the budget before allocating.
   */
  newBytesFor(sizes: readonly number[]): number {
    const avail = new Map<number, number>();
    for (const [size, list] of this.free) avail.set(size, list.length);
    let n = 0;
    for (const bytes of sizes) {
      const c = sizeClass(bytes);
      const k = avail.get(c) ?? 0;
      if (k > 0) avail.set(c, k - 1);
      else n += c;
    }
    return n;
  }

  /** Bytes that acquiring all of `sizes` takes from the budget (their size classes). */
  bytesFor(sizes: readonly number[]): number {
    return sizes.reduce((n, b) => n + sizeClass(b), 0);
  }

  /** Bytes the budget still allows (idle pooled buffers count as available: they can be freed). */
  get availableBytes(): number {
    return this.budgetBytes - this.inUseBytes - this.weightBytes;
  }

  /** Buffers handed out and not yet released. */
  get inUseCount(): number {
    return this.inUse.size;
  }

  /** Destroys the free buffers (in-use ones stay valid). */
  trim(): void {
    for (const list of this.free.values()) {
      for (const b of list) {
        this.liveBytes -= b.size;
        this.liveBuffers--;
        b.destroy();
      }
    }
    this.free.clear();
  }

  destroyAll(): void {
    this.trim();
    for (const b of this.inUse) b.destroy();
    this.inUse.clear();
    this.inUseBytes = 0;
    this.liveBytes = 0;
    this.liveBuffers = 0;
  }
}
