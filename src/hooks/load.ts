/**
 * Loading a model: read `config.json` and the safetensors weights from a source (a URL folder,
 * a set of files, or an in-memory map), normalize the config, map the parameter names, check
 * that everything fits the device, and upload. Nothing is left on the GPU if any step fails.
 */
import type { Gpu } from '../gpu/device.ts';
import { formatBytes, OutOfMemoryError } from '../gpu/errors.ts';
import { loadCheckpoint, type TensorLookup } from '../model/checkpoint.ts';
import { hostWeightsFor } from '../model/host-weights-for.ts';
import { uploadWeights } from '../model/gpu-weights.ts';
import { Model } from './model.ts';
import type { ModelConfig } from '../model/config.ts';
import { hostMatrices, type HostMatrix, type HostWeights } from '../model/host-weights.ts';
import { isF16Exact } from '../gpu/half.ts';
import { urlModelSource, type ModelSource, type ProgressFn } from '../model/source.ts';
import { checkProcessing, processWeights, type Processing } from '../model/processing.ts';
import { loadTokenizer, type TextTokenizer } from '../model/tokenizer.ts';

export interface LoadOptions {
  /** Bytes read so far and the total (0 while unknown), per file. */
  onProgress?: ProgressFn;
  /**
   * Keep weight matrices in half precision on the GPU (products still accumulate in fp32).
   * 'auto' (default): only where that changes no value: the device has `shader-f16`, most of
   * the checkpoint is F16, and every matrix converts to F16 exactly (an F32 tensor whose values
   * F16 cannot hold keeps the whole model in fp32). `true` narrows every matrix, and refuses a
   * value beyond F16's range (±65504) naming the tensor; `false` keeps fp32.
   */
  f16?: boolean | 'auto';
  /**
   * 'none' (default): the weights as the checkpoint has them. 'transformer-lens': what
   * TransformerLens' `HookedTransformer.from_pretrained` does by default (fold_ln,
   * center_writing_weights, center_unembed, fold_value_biases; see `processing.ts`), so the
   * residual stream, head outputs, logits and direct logit attributions are TransformerLens'
   * published numbers. Attention patterns, MLP activations, log-probabilities, logit
   * differences and patching results do not change.
   */
  processing?: Processing;
  /**
   * Load the tokenizer (`tokenizer.json`, `tokenizer_config.json`) from the source when it has
   * one (default true); false skips the request (models known to have none).
   */
  tokenizer?: boolean;
}

export async function loadModel(gpu: Gpu, source: ModelSource | string, options: LoadOptions = {}): Promise<Model> {
  const processing = checkProcessing(options.processing ?? 'none');
  const src = typeof source === 'string' ? urlModelSource(source) : source;
  const ck = await loadCheckpoint(src, { onProgress: options.onProgress });
  const { config, hfConfig, tensors } = ck;
  const f16 = options.f16 ?? 'auto';
  if (f16 !== 'auto' && typeof f16 !== 'boolean') throw new Error(`f16 must be true, false or 'auto', got ${JSON.stringify(f16)}`);
  const raw = await hostWeightsFor(tensors, config, hfConfig);
  ck.finish();
  // Processed weights are new values (computed in float64, stored as fp32): 'auto' keeps them in
  // half precision only where that changes none of them, as for a checkpoint's own.
  const host = processing === 'transformer-lens' ? processWeights(config, raw) : raw;
  const half = f16 === 'auto' ? gpu.features.has('shader-f16') && storedAsF16(tensors) && narrowsExactly(host) : f16;
  const tokenizer = options.tokenizer === false ? null : await loadTokenizer(src);
  return modelFromWeights(gpu, config, host, { f16: half, processing, tokenizer });
}

/** The matrices kept in F16 when weights are half precision (norms, biases and tables stay fp32). */
function narrowedMatrices(host: HostWeights): HostMatrix[] {
  const m = [host.W_E, host.W_pos, host.W_U_rows, ...host.layers.flatMap((l) => [l.W_Q, l.W_K, l.W_V, l.W_O, l.W_in, l.W_gate, l.W_out])];
  return m.filter((x): x is HostMatrix => !!x);
}

/** Every narrowed matrix holds only values F16 represents exactly (so narrowing changes nothing). */
function narrowsExactly(host: HostWeights): boolean {
  return narrowedMatrices(host).every((m) => isF16Exact(m.data));
}

/** True when most of the checkpoint's bytes are F16 tensors. */
function storedAsF16(t: TensorLookup): boolean {
  let f16 = 0;
  let all = 0;
  for (const n of t.names) {
    const { dtype, shape } = t.info(n);
    const size = shape.reduce((a, b) => a * b, 1);
    all += size;
    if (dtype === 'F16') f16 += size;
  }
  return f16 * 2 > all;
}

/** Uploads weights already on the CPU (a loaded checkpoint, or synthetic ones in tests and benches). */
export async function modelFromWeights(gpu: Gpu, config: ModelConfig, host: HostWeights, options: { f16?: boolean; processing?: Processing; tokenizer?: TextTokenizer | null } = {}): Promise<Model> {
  const f16 = options.f16 ?? false;
  if (f16 && !gpu.features.has('shader-f16')) {
    throw new Error(`f16 weights need the WebGPU feature shader-f16, which this adapter (${gpu.adapterName}) lacks`);
  }
  checkFits(gpu, host, f16);
  const weights = await uploadWeights(gpu, config, host, f16);
  return new Model(gpu, config, weights, options.tokenizer ?? null, options.processing ?? 'none');
}

/**
 * Fails before allocating anything when the weights cannot fit: in total against the memory
 * budget, or a matrix that is not split by rows against one buffer and one binding.
 */
function checkFits(gpu: Gpu, host: HostWeights, f16: boolean): void {
  const matrices = new Set<HostMatrix | undefined>(narrowedMatrices(host));
  const bytesOf = (m: HostMatrix) => m.data.length * (f16 && matrices.has(m) ? 2 : 4);
  const needed = hostMatrices(host).reduce((n, m) => n + bytesOf(m), 0);
  const available = gpu.pool.availableBytes;
  if (needed > available) {
    throw new OutOfMemoryError(`the weights need ${formatBytes(needed)} of GPU memory but ${formatBytes(Math.max(0, available))} of the ` + `${formatBytes(gpu.pool.budgetBytes)} budget is available`);
  }
  const limit = Math.min(gpu.maxBinding, gpu.limits.maxBufferSize);
  host.layers.forEach((layer, l) => {
    for (const [name, m] of Object.entries(layer) as [string, HostMatrix | undefined][]) {
      if (m && bytesOf(m) > limit) {
        throw new OutOfMemoryError(`blocks.${l} ${name} needs ${formatBytes(bytesOf(m))} in one buffer but this adapter binds at most ${formatBytes(limit)}`);
      }
    }
  });
}
