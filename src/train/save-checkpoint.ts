/**
 * A trained model as the Hugging Face folder it was loaded from: `config.json` as it was, and
 * `model.safetensors` with the checkpoint's own tensor names, order, shapes and dtypes (F32, F16 or
 * BF16; values rounded back to the dtype). The weights are read from the GPU in the forward's
 * layout and mapped back with `toCheckpointLayout` (GPT-2's fused c_attn, NeoX's interleaved
 * query_key_value, nn.Linear's [out, in]); a checkpoint tensor the forward does not hold (a
 * GPT-2 attention mask buffer) is written as it was read.
 */
import type { Gpu } from '../gpu/device.ts';
import { readBuffer } from '../gpu/tensor.ts';
import type { TensorLookup } from '../model/checkpoint.ts';
import type { ModelConfig } from '../model/config.ts';
import type { GpuWeights } from '../model/gpu-weights.ts';
import { writeSafetensors, type StWriteTensor } from '../model/safetensors.ts';
import { toCheckpointLayout } from '../model/weight-grads.ts';
import { weightTensors } from './transformer.ts';

export interface CheckpointFiles {
  'config.json': string;
  'model.safetensors': Uint8Array;
}

/**
 * The model's current weights as a Hugging Face folder: `source` is the checkpoint it was loaded
 * from (its names, shapes and dtypes), `hfConfig` its config.json, `shapes` each forward-layout
 * weight's shape (`WeightGradients.tensors()`).
 */
export async function checkpointFiles(gpu: Gpu, cfg: ModelConfig, w: GpuWeights, shapes: ReadonlyMap<string, readonly number[]>, source: TensorLookup, hfConfig: unknown): Promise<CheckpointFiles> {
  const named = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const [name, chunks] of weightTensors(cfg, w)) {
    const shape = shapes.get(name);
    if (!shape) throw new Error(`internal: no shape for the weight ${name}`);
    const n = shape.reduce((a, b) => a * b, 1);
    const width = n / shape[0]!;
    const data = new Float32Array(n);
    for (const c of chunks) {
      const rows = c.rows || shape[0]!;
      data.set(await readBuffer(gpu, c.buffer, 0, rows * width * 4), c.row0 * width);
    }
    named.set(name, { data, shape: [...shape] });
  }
  const mapped = toCheckpointLayout(cfg, named);
  // toCheckpointLayout writes GPT-2 names with the `transformer.` prefix save_pretrained uses; a
  // checkpoint without it (the Hub's gpt2) gets its own names back.
  const byName = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const [k, v] of mapped) byName.set(source.has(k) ? k : k.replace(/^transformer\./, ''), v);
  const tensors: StWriteTensor[] = [];
  for (const name of source.names) {
    const info = source.info(name);
    if (info.dtype !== 'F32' && info.dtype !== 'F16' && info.dtype !== 'BF16') {
      throw new Error(`cannot write tensor "${name}": its dtype ${info.dtype} is not F32, F16 or BF16`);
    }
    const t = byName.get(name);
    if (t && t.shape.join(',') !== info.shape.join(',')) throw new Error(`internal: "${name}" maps to shape [${t.shape}], the checkpoint's is [${info.shape}]`);
    tensors.push({ name, shape: [...info.shape], data: t ? t.data : await source.read(name), dtype: info.dtype });
  }
  return { 'config.json': `${JSON.stringify(hfConfig, null, 2)}\n`, 'model.safetensors': writeSafetensors(tensors) };
}
