/** Errors the GPU layer raises. Each names the problem in words a researcher can act on. */

/** The GPU device was lost (driver reset, tab backgrounded too long, `destroy()`); reload the model. */
export class DeviceLostError extends Error {
  override name = 'DeviceLostError';
}

/** An allocation would not fit the device, or the driver refused it. */
export class OutOfMemoryError extends Error {
  override name = 'OutOfMemoryError';
}

/** No WebGPU on this host (browser without `navigator.gpu`, or the Node `webgpu` package missing). */
export class NoWebGPUError extends Error {
  override name = 'NoWebGPUError';
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  do {
    v /= 1024;
    u++;
  } while (v >= 1024 && u < units.length - 1);
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}
