/**
 * An activation store for SAE training: a hook point's activations over many sequences, cached by
 * forward passes and copied, row by row (every position, BOS included, as SAELens trains by
 * default), into one GPU buffer [rows, width]. Nothing is read back to the CPU.
 */
import type { Model } from '../hooks/model.ts';
import { submitSteps, type Copy } from '../gpu/recorder.ts';
import type { ActivationStore } from './sae.ts';

export interface CollectOptions {
  /** Sequences per forward pass (default 32). */
  batch?: number;
  /** Called after each pass with the sequences done so far. */
  onProgress?: (done: number, total: number) => void;
}

/** `hook`'s activations ([..., width] per position) for every position of every sequence. */
export async function collectActivations(model: Model, sequences: readonly (readonly number[])[], hook: string, options: CollectOptions = {}): Promise<ActivationStore> {
  if (!sequences.length) throw new Error('collectActivations: no sequences');
  const T = sequences[0]!.length;
  const per = options.batch ?? 32;
  const gpu = model.gpu;
  let store: GPUBuffer | null = null;
  let width = 0;
  let rows = 0;
  try {
    for (let s = 0; s < sequences.length; s += per) {
      const batch = sequences.slice(s, s + per);
      const run = await model.run(batch, { cache: [hook] });
      try {
        const act = run.cache.get(hook);
        const w = act.numel / (batch.length * T);
        if (!store) {
          width = w;
          const bytes = sequences.length * T * width * 4;
          if (bytes > gpu.limits.maxStorageBufferBindingSize)
            throw new Error(`an activation store of ${sequences.length * T} rows x ${width} floats exceeds the device's binding limit; use fewer sequences`);
          store = gpu.device.createBuffer({ size: bytes, usage: 0x80 | 0x4 | 0x8, label: `activation store ${hook}` });
        }
        const copy: Copy = { kind: 'copy', src: act.buffer, srcOffset: 0, dst: store, dstOffset: rows * width * 4, size: batch.length * T * width * 4 };
        submitSteps(gpu, [copy], 'store activations');
        rows += batch.length * T;
      } finally {
        run.release();
      }
      options.onProgress?.(Math.min(s + per, sequences.length), sequences.length);
    }
  } catch (e) {
    store?.destroy();
    throw e;
  }
  const buffer = store!;
  return { buffer, rows, width, hookName: hook, destroy: () => buffer.destroy() };
}
