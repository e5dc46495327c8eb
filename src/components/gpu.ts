/** One WebGPU device per page, shared by every `<pb-model>`. */
import { acquireGpu, type Gpu } from '../gpu/device.ts';

let shared: Promise<Gpu> | null = null;

export function pageGpu(): Promise<Gpu> {
  shared ??= acquireGpu().catch((e) => {
    shared = null; // let a later attempt try again
    throw e;
  });
  return shared;
}
