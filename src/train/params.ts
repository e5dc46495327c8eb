/**
 * Trainable parameters on the GPU under their checkpoint names, each with a gradient tensor of the
 * same shape. A store reads back as a name -> values map, which is what a safetensors file holds,
 * so a trained model saves as the file it loads from.
 */
import type { Gpu } from '../gpu/device.ts';
import { Tensor, numel } from '../gpu/tensor.ts';
import { writeSafetensors } from '../model/safetensors.ts';

export interface ParamSpec {
  /** Checkpoint name, e.g. "W" or "transformer.h.0.attn.c_attn.weight". */
  name: string;
  shape: readonly number[];
  /** Initial values (row-major). */
  init: Float32Array;
  /** Weight decay for this tensor, overriding the optimizer's (0: exempt, as biases often are). */
  weightDecay?: number;
}

export interface Param {
  name: string;
  shape: readonly number[];
  value: Tensor;
  grad: Tensor;
  weightDecay?: number;
}

export class ParamStore {
  private readonly byName = new Map<string, Param>();

  constructor(
    readonly gpu: Gpu,
    specs: readonly ParamSpec[],
  ) {
    try {
      for (const s of specs) {
        if (this.byName.has(s.name)) throw new Error(`parameter "${s.name}" is listed twice`);
        if (s.init.length !== numel(s.shape)) throw new Error(`parameter "${s.name}": ${s.init.length} initial values for shape [${s.shape.join(', ')}]`);
        const value = Tensor.from(gpu, s.init, s.shape, s.name);
        const grad = Tensor.empty(gpu, s.shape, `${s.name}.grad`);
        this.byName.set(s.name, { name: s.name, shape: [...s.shape], value, grad, ...(s.weightDecay !== undefined ? { weightDecay: s.weightDecay } : {}) });
      }
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  get names(): string[] {
    return [...this.byName.keys()];
  }

  get list(): Param[] {
    return [...this.byName.values()];
  }

  get(name: string): Param {
    const p = this.byName.get(name);
    if (!p) throw new Error(`no parameter "${name}" (parameters: ${this.names.join(', ')})`);
    return p;
  }

  /** Overwrites a parameter's values (e.g. to restart training from a checkpoint). */
  set(name: string, values: Float32Array): void {
    const p = this.get(name);
    if (values.length !== p.value.numel) throw new Error(`parameter "${name}": ${values.length} values for shape [${p.shape.join(', ')}]`);
    this.gpu.device.queue.writeBuffer(p.value.buffer, 0, values.buffer as ArrayBuffer, values.byteOffset, values.byteLength);
  }

  /** Every parameter's values, by name. */
  async read(): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const p of this.byName.values()) out.set(p.name, await p.value.read());
    return out;
  }

  /** A safetensors file of every parameter (F32, in the store's order). */
  async toSafetensors(metadata?: Record<string, string>): Promise<Uint8Array> {
    const values = await this.read();
    return writeSafetensors(
      this.list.map((p) => ({ name: p.name, shape: [...p.shape], data: values.get(p.name)! })),
      metadata,
    );
  }

  destroy(): void {
    for (const p of this.byName.values()) {
      p.value.release();
      p.grad.release();
    }
    this.byName.clear();
  }
}
