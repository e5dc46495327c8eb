/**
 * Loading a model: read `config.json` and the safetensors weights from a source (a URL folder,
 * a set of files, or an in-memory map), normalize the config, map the parameter names and
 * upload them. Nothing is left on the GPU if any step fails.
 */
import type { Gpu } from '../gpu/device.ts';
import { formatBytes, OutOfMemoryError } from '../gpu/errors.ts';
import { loadCheckpoint } from './checkpoint.ts';
import { hostWeightsFor } from './host-weights-for.ts';
import { uploadWeights } from './gpu-weights.ts';
import { Model } from './model.ts';
import type { ModelConfig } from './config.ts';
import { hostMatrices, type HostWeights } from './host-weights.ts';
import { urlModelSource, type ModelSource, type ProgressFn } from './source.ts';

export interface LoadOptions {
  /** Bytes read so far and the total (0 while unknown), per file. */
  onProgress?: ProgressFn;
}

export async function loadModel(gpu: Gpu, source: ModelSource | string, options: LoadOptions = {}): Promise<Model> {
  const src = typeof source === 'string' ? urlModelSource(source) : source;
  const { config, hfConfig, tensors } = await loadCheckpoint(src, { onProgress: options.onProgress });
  return modelFromWeights(gpu, config, hostWeightsFor(tensors, config, hfConfig));
}

/** Uploads weights already on the CPU (a loaded checkpoint, or synthetic ones in tests and benches). */
export async function modelFromWeights(gpu: Gpu, config: ModelConfig, host: HostWeights): Promise<Model> {
  const needed = hostMatrices(host).reduce((n, m) => n + m.data.byteLength, 0);
  const available = gpu.pool.availableBytes;
  if (needed > available) {
    throw new OutOfMemoryError(
      `the weights need ${formatBytes(needed)} of GPU memory but ${formatBytes(Math.max(0, available))} of the ` +
        `${formatBytes(gpu.pool.budgetBytes)} budget is available`,
    );
  }
  const weights = await uploadWeights(gpu, config, host);
  return new Model(gpu, config, weights);
}
