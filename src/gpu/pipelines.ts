/**
 * Pipeline cache: each (shader source, entry point, override constants) compiles once per device.
 *
 * Shader variants come from `wgsl-preprocessor` flags, so the source string itself is part of the
 * key; override constants (workgroup sizes, tile shapes) are the rest.
 */
export class PipelineCache {
  private modules = new Map<string, GPUShaderModule>();
  private pipelines = new Map<string, GPUComputePipeline>();

  constructor(private readonly device: GPUDevice) {}

  /** Number of compiled pipelines (tests check a second forward compiles nothing). */
  get size(): number {
    return this.pipelines.size;
  }

  get(label: string, code: string, entryPoint: string, constants: Record<string, number> = {}): GPUComputePipeline {
    const key = `${code}\u0000${entryPoint}\u0000${JSON.stringify(constants)}`;
    let pipeline = this.pipelines.get(key);
    if (pipeline) return pipeline;
    let module = this.modules.get(code);
    if (!module) {
      module = this.device.createShaderModule({ code, label });
      this.modules.set(code, module);
    }
    pipeline = this.device.createComputePipeline({
      label: `${label}:${entryPoint}`,
      layout: 'auto',
      compute: { module, entryPoint, constants },
    });
    this.pipelines.set(key, pipeline);
    return pipeline;
  }
}
