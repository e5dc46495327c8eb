/**
 * Binding a sub-range of a buffer. WebGPU wants storage-binding offsets aligned (usually to
 * 256 bytes) and sizes at most `maxStorageBufferBindingSize`; a window starts at the aligned
 * offset at or below the wanted element and tells the shader the remaining element offset.
 */
import type { Gpu } from './device.ts';

export interface Window {
  binding: GPUBufferBinding;
  /** Elements between the binding's start and the first wanted element. */
  elemOffset: number;
}

/** `elemBytes` is 4 for f32/u32 arrays, 2 for f16 weights. Binding sizes round up to 4 bytes. */
export function bindWindow(gpu: Gpu, buffer: GPUBuffer, elemStart: number, elemCount: number, what: string, elemBytes = 4): Window {
  const align = gpu.limits.minStorageBufferOffsetAlignment;
  const startByte = elemStart * elemBytes;
  const offset = Math.floor(startByte / align) * align;
  const size = Math.ceil((startByte + elemCount * elemBytes - offset) / 4) * 4;
  if (size > gpu.maxBinding) {
    throw new Error(`${what}: a window of ${size} bytes exceeds the device's binding limit of ${gpu.maxBinding} bytes`);
  }
  return { binding: { buffer, offset, size: Math.max(size, 4) }, elemOffset: (startByte - offset) / elemBytes };
}

/** The whole buffer region of `elemCount` elements from its start, checked against the limit. */
export function bindWhole(gpu: Gpu, buffer: GPUBuffer, elemCount: number, what: string, elemBytes = 4): GPUBufferBinding {
  return bindWindow(gpu, buffer, 0, elemCount, what, elemBytes).binding;
}
