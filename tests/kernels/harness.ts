/**
 * The kernel tests' shared setup: one device per file (or per `describe`, where called inside
 * one), the `Params` the kernels allocate and the tensors a test uploads, all freed afterwards.
 *
 *   const kh = kernelHarness();
 *   const { params, upload, empty } = kh;
 *   ... submitSteps(kh.gpu, [add(kh.gpu, out.buffer, ...)], 'add') ...
 *
 * `kernelHarness` registers a beforeAll (acquires the device, then runs `setup`) and an afterAll
 * (destroys `params`, releases every tensor made through it, then runs `teardown`) in the scope
 * it is called from. `gpu` is only valid once the beforeAll has run, i.e. inside tests.
 */
import { afterAll, beforeAll } from 'vitest';
import type { Gpu, GpuOptions } from '../../src/gpu/device.ts';
import type { Params } from '../../src/gpu/recorder.ts';
import { Tensor } from '../../src/gpu/tensor.ts';
import { testGpu } from '../helpers/gpu.ts';

export interface KernelHarnessOptions {
  /** Options for `testGpu` (e.g. a pretend `maxBindingBytes`). */
  gpu?: GpuOptions;
  /** Runs in the beforeAll once the device is there (e.g. to make a WeightArena on it). */
  setup?: (gpu: Gpu) => void | Promise<void>;
  /** Runs at the end of the afterAll, after the params and tensors are freed. */
  teardown?: () => void;
}

export interface KernelHarness {
  /** The device (from the beforeAll on). */
  readonly gpu: Gpu;
  /** Pass to the kernels; destroyed in the afterAll. */
  readonly params: Params[];
  /** A tensor holding `data` (shape [data.length] unless given), released in the afterAll. */
  upload(data: Float32Array, label: string, shape?: readonly number[]): Tensor;
  /** A NaN-filled tensor of n floats (or of `shape`), so an element a kernel never writes shows. */
  empty(n: number | readonly number[], label: string): Tensor;
}

export function kernelHarness(options: KernelHarnessOptions = {}): KernelHarness {
  let device: Gpu | undefined;
  const params: Params[] = [];
  const tensors: Tensor[] = [];

  beforeAll(async () => {
    device = await testGpu(options.gpu);
    await options.setup?.(device);
  });
  afterAll(() => {
    for (const p of params) p.destroy();
    for (const t of tensors) t.release();
    options.teardown?.();
  });

  const upload = (data: Float32Array, label: string, shape: readonly number[] = [data.length]): Tensor => {
    const t = Tensor.from(harness.gpu, data, shape, label);
    tensors.push(t);
    return t;
  };
  const harness: KernelHarness = {
    get gpu(): Gpu {
      if (!device) throw new Error('kernelHarness: the device is acquired in beforeAll; use gpu inside tests and hooks');
      return device;
    },
    params,
    upload,
    empty(n, label) {
      const shape = typeof n === 'number' ? [n] : n;
      const len = shape.reduce((a, b) => a * b, 1);
      return upload(new Float32Array(len).fill(Number.NaN), label, shape);
    },
  };
  return harness;
}
