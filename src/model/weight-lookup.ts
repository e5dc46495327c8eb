/** Shape-checked access to checkpoint tensors, shared by the per-family weight mappers. */
import type { TensorLookup } from './checkpoint.ts';
import type { HostMatrix } from './host-weights.ts';

export class WeightsError extends Error {
  override name = 'WeightsError';
}

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

/**
 * A getter that checks each tensor exists with the shape the config implies (from the header,
 * before reading anything), then reads it.
 */
export function shapedGetter(t: TensorLookup, family: string): (name: string, shape: number[]) => Promise<HostMatrix> {
  return async (name, shape) => {
    if (!t.has(name)) throw new WeightsError(`${family} checkpoint is missing tensor "${name}" (expected shape ${fmt(shape)})`);
    const got = t.info(name).shape;
    if (got.length !== shape.length || got.some((v, i) => v !== shape[i])) {
      throw new WeightsError(`tensor "${name}": expected shape ${fmt(shape)} from the config, got ${fmt(got)}`);
    }
    return { data: await t.read(name), shape: shape.slice() };
  };
}

/** An `nn.Linear` weight [out, in] as [in, out]. */
export function transposed(m: HostMatrix): HostMatrix {
  const [rows, cols] = m.shape;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = m.data[r * cols + c];
  return { data: out, shape: [cols, rows] };
}

export function zeros(n: number): HostMatrix {
  return { data: new Float32Array(n), shape: [n] };
}
