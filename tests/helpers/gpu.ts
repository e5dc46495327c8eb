/** One Dawn device per test file (Node host). */
import { acquireGpu, type Gpu, type GpuOptions } from '../../src/gpu/device.ts';

const devices = new Map<string, Promise<Gpu>>();

export function testGpu(options: GpuOptions = {}): Promise<Gpu> {
  const key = JSON.stringify(options);
  let d = devices.get(key);
  if (!d) {
    d = acquireGpu(options);
    devices.set(key, d);
  }
  return d;
}
