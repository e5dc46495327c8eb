/**
 * Device acquisition: the one file where the two hosts differ.
 *
 * In a browser the adapter comes from `navigator.gpu`; in Node from the npm `webgpu` package
 * (Dawn), loaded lazily so bundles for the browser never see it. Everything else in Patchbay
 * sees only the `Gpu` object below and standard WebGPU.
 */
import type { Profiler } from './profiler.ts';
import { DeviceLostError, NoWebGPUError, OutOfMemoryError, formatBytes } from './errors.ts';
import { BufferPool } from './pool.ts';
import { PipelineCache } from './pipelines.ts';

export interface GpuOptions {
  /** Use this `GPU` (e.g. a test's own Dawn instance) instead of looking one up. */
  gpu?: GPU;
  powerPreference?: GPUPowerPreference;
  /**
   * Pretend the device binds at most this many bytes per storage binding (never more than the
   * adapter allows). Tests use it to exercise the split-by-rows path on tiny models.
   */
  maxBindingBytes?: number;
  /**
   * Most bytes of GPU memory the engine may hold: weights, activations and caches. WebGPU does not
   * report free memory; with a budget, a run that would exceed it fails before allocating, with
   * the bytes needed and available. Default: no budget (the driver's own out-of-memory applies).
   */
  memoryBudgetBytes?: number;
  /**
   * Invocations per workgroup of the one-invocation-per-item kernels (their shaders' `WG`
   * override). Default 64; tests pick others to check that no kernel assumes 64.
   */
  workgroupSize?: number;
  /**
   * Pretend the device allows at most this many workgroups per grid dimension (never more than
   * it does). Tests use it to fold the one-dimensional grids into two dimensions on tiny models.
   */
  maxWorkgroupsPerDimension?: number;
}

/** Limits the engine plans with: the adapter's own, requested in full at device creation. */
export interface GpuLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  minStorageBufferOffsetAlignment: number;
  maxComputeWorkgroupsPerDimension: number;
  maxStorageBuffersPerShaderStage: number;
}

/** A WebGPU device plus the shared machinery every kernel uses. */
export class Gpu {
  readonly pool: BufferPool;
  readonly pipelines: PipelineCache;
  /** Set once the device is lost; every later submit throws it. */
  lostReason: string | null = null;
  /** While set, every dispatch is timed (see profiler.ts). */
  profiler: Profiler | null = null;
  /**
   * The subgroup size where the device has 'subgroups' and the adapter fixes one size
   * (subgroupMinSize == subgroupMaxSize: 8 on lavapipe with AVX2); null otherwise, and kernels
   * that share loads across a subgroup fall back to their plain form.
   */
  subgroupSize: number | null = null;
  /**
   * Invocations per workgroup of the one-invocation-per-item kernels, passed to their shaders as
   * the override constant `WG`. 64: a whole number of subgroups on every GPU (8 to 64 wide), and
   * well inside WebGPU's guaranteed 256 invocations per workgroup.
   */
  workgroupSize = 64;

  constructor(
    readonly device: GPUDevice,
    /** e.g. "llvmpipe (vulkan)" or "SwiftShader Device (Subzero)". */
    readonly adapterName: string,
    readonly limits: GpuLimits,
    readonly features: ReadonlySet<string>,
    /** Keeps the host's GPU object alive: Dawn's Node binding segfaults if it is collected. */
    private readonly host: GPU,
  ) {
    this.pool = new BufferPool(device);
    this.pipelines = new PipelineCache(device);
    device.lost.then((info) => {
      this.lostReason = `${info.reason}: ${info.message || 'no message'}`;
    });
  }

  /** Throws a clear error if the device is gone. Call before recording work. */
  assertAlive(): void {
    if (this.lostReason !== null) {
      throw new DeviceLostError(`GPU device lost (${this.lostReason}); load the model again`);
    }
  }

  /**
   * Runs `fn` with WebGPU's out-of-memory and validation error scopes open, turning what they
   * catch into `OutOfMemoryError` / `Error` with `what` in the message.
   */
  async guard<T>(what: string, bytes: number, fn: () => T): Promise<T> {
    this.assertAlive();
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    // The scopes are popped whatever fn does, and a GPU error outranks fn's own.
    let result: { value: T } | { error: unknown };
    try {
      result = { value: fn() };
    } catch (error) {
      result = { error };
    }
    const validation = await this.device.popErrorScope();
    const oom = await this.device.popErrorScope();
    if (oom) {
      throw new OutOfMemoryError(`out of GPU memory while ${what} (${formatBytes(bytes)} requested, ` + `${formatBytes(this.pool.liveBytes)} already allocated): ${oom.message}`);
    }
    if (validation) throw new Error(`WebGPU rejected ${what}: ${validation.message}`);
    if ('error' in result) throw result.error;
    return result.value;
  }

  /** The adapter binding limit, or the smaller test override. */
  get maxBinding(): number {
    return this.limits.maxStorageBufferBindingSize;
  }

  /** The host object, exposed so nothing else needs to know which host made it. */
  get hostGpu(): GPU {
    return this.host;
  }

  destroy(): void {
    this.pool.destroyAll();
    this.device.destroy();
  }
}

/**
 * Why Node has no WebGPU. `webgpu` (Dawn, 132 MB) is an optional peer dependency, so that browser
 * users never install it: a Node user who has not installed it is told the one command to run.
 */
export function nodeHostProblem(e: Error & { code?: string }): string {
  const notInstalled = (e.code === 'ERR_MODULE_NOT_FOUND' || e.code === 'MODULE_NOT_FOUND') && /['"]webgpu['"]/.test(e.message);
  if (notInstalled) {
    return 'Patchbay in Node runs on Dawn, the npm package "webgpu", which is not installed ' + '(an optional peer dependency, so browser users do not download it): npm install webgpu@^0.6.2';
  }
  return `the npm package "webgpu" (Dawn, Patchbay's Node host) is installed but did not load: ${e.message}`;
}

/** Keeps Dawn's `GPU` objects alive for the life of the process (see `Gpu.host`). */
const nodeHosts: GPU[] = [];

async function findHostGpu(): Promise<GPU> {
  const nav = (globalThis as { navigator?: Navigator }).navigator;
  if (nav?.gpu) return nav.gpu;
  const isNode = typeof process !== 'undefined' && !!process.versions?.node;
  if (!isNode) {
    throw new NoWebGPUError('this browser has no WebGPU (navigator.gpu is missing): use a recent Chrome, Edge or ' + "Safari, or enable WebGPU in this browser's settings");
  }
  // A variable module name keeps bundlers from pulling Dawn's native addon into browser builds.
  const moduleName = 'webgpu';
  let mod: { create(flags: string[]): GPU; globals: Record<string, unknown> };
  try {
    mod = await import(/* @vite-ignore */ moduleName);
  } catch (e) {
    throw new NoWebGPUError(nodeHostProblem(e as Error & { code?: string }));
  }
  Object.assign(globalThis, mod.globals);
  const gpu = mod.create([]);
  nodeHosts.push(gpu);
  return gpu;
}

/** Acquires an adapter and a device with the adapter's own buffer limits. */
export async function acquireGpu(options: GpuOptions = {}): Promise<Gpu> {
  const host = options.gpu ?? (await findHostGpu());
  const adapter = await host.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
  if (!adapter) {
    throw new NoWebGPUError('WebGPU is present but no GPU adapter is available (requestAdapter returned null)');
  }
  const a = adapter.limits;
  const wg = options.workgroupSize;
  if (wg !== undefined && (!Number.isInteger(wg) || wg < 1 || wg > a.maxComputeInvocationsPerWorkgroup)) {
    throw new Error(`workgroupSize ${wg}: expected a whole number from 1 to ${a.maxComputeInvocationsPerWorkgroup} (the adapter's maxComputeInvocationsPerWorkgroup)`);
  }
  const requiredLimits: Record<string, number> = {
    maxStorageBufferBindingSize: a.maxStorageBufferBindingSize,
    maxBufferSize: a.maxBufferSize,
    maxComputeWorkgroupsPerDimension: a.maxComputeWorkgroupsPerDimension,
    maxStorageBuffersPerShaderStage: a.maxStorageBuffersPerShaderStage,
    maxComputeWorkgroupStorageSize: a.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: a.maxComputeInvocationsPerWorkgroup,
  };
  const wanted: GPUFeatureName[] = (['shader-f16', 'timestamp-query', 'subgroups'] as GPUFeatureName[]).filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures: wanted });
  const info = adapter.info;
  const name = [info?.description || info?.device || info?.vendor || 'unknown adapter', info?.architecture].filter(Boolean).join(' / ');
  const d = device.limits;
  const limits: GpuLimits = {
    maxStorageBufferBindingSize: Math.min(d.maxStorageBufferBindingSize, options.maxBindingBytes ?? Number.POSITIVE_INFINITY),
    maxBufferSize: d.maxBufferSize,
    minStorageBufferOffsetAlignment: d.minStorageBufferOffsetAlignment,
    maxComputeWorkgroupsPerDimension: Math.min(d.maxComputeWorkgroupsPerDimension, options.maxWorkgroupsPerDimension ?? Number.POSITIVE_INFINITY),
    maxStorageBuffersPerShaderStage: d.maxStorageBuffersPerShaderStage,
  };
  const gpu = new Gpu(device, name, limits, new Set([...device.features]), host);
  const sgMin = info?.subgroupMinSize;
  if (device.features.has('subgroups') && sgMin && sgMin === info?.subgroupMaxSize) gpu.subgroupSize = sgMin;
  if (options.memoryBudgetBytes !== undefined) gpu.pool.budgetBytes = options.memoryBudgetBytes;
  if (options.workgroupSize !== undefined) gpu.workgroupSize = options.workgroupSize;
  return gpu;
}
