/** Synthetic training data drawn on the GPU (`shaders/synthetic.wgsl.ts`). CPU reference: `synthetic.cpu.ts`. */
import { syntheticSource } from '../../../shaders/synthetic.wgsl.ts';
import type { Gpu } from '../device.ts';
import { Params, grid1d, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';

export interface SparseFeaturesArgs {
  x: GPUBuffer; // [I, B, F] out
  prob: GPUBuffer; // [I]
  B: number;
  I: number;
  F: number;
  seed: number;
  /** the training clock (its step seeds the draw) */
  clock: GPUBuffer;
  label: string;
}

/**
 * x [I, B, F] = Toy Models of Superposition's sparse features for the clock's current update:
 * present with probability prob[i] ([I]), then uniform in [0, 1).
 */
export function sparseFeatures(gpu: Gpu, args: SparseFeaturesArgs, params: Params[]): Dispatch {
  const { x, prob, B, I, F, seed, clock, label } = args;
  const pipeline = gpu.pipelines.get('synthetic', syntheticSource(), 'sparse_features_v1');
  const u = new Params(gpu, [B, I, F, seed >>> 0], `${label} params`);
  params.push(u);
  const n = B * I * F;
  const bindGroup = gpu.device.createBindGroup({
    label,
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: u.buffer } },
      { binding: 1, resource: bindWhole(gpu, prob, I, `${label} probabilities`) },
      { binding: 2, resource: bindWhole(gpu, x, n, `${label} output`) },
      { binding: 3, resource: { buffer: clock } },
    ],
  });
  return { kind: 'dispatch', label, pipeline, bindGroup, workgroups: grid1d(gpu, n, 64) };
}
