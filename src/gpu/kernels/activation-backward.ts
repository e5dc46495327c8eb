/** MLP activation backward (`shaders/activation-backward.wgsl.ts`). CPU reference: `activation-backward.cpu.ts`. */
import { activationBackwardSource } from '../../../shaders/activation-backward.wgsl.ts';
import type { ActFn } from '../../../shaders/activation.wgsl.ts';
import type { Gpu } from '../device.ts';
import { itemConstants, itemGrid, Params, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';

export interface ActivationBackwardArgs {
  fn: ActFn;
  dx: GPUBuffer; // [n] out
  x: GPUBuffer; // [n]
  dy: GPUBuffer; // [n]
  n: number;
  /** A gated MLP: its up projection, and where its gradient goes. */
  gate?: { up: GPUBuffer; dUp: GPUBuffer } | null;
  label: string;
}

/**
 * dx = dy act'(x) over n values; with a gate's up projection `up` (SwiGLU), dx = dy up act'(x)
 * and dUp = dy act(x).
 */
export function activationBackward(gpu: Gpu, args: ActivationBackwardArgs, params: Params[]): Dispatch {
  const { fn, dx, x, dy, n, label } = args;
  const gate = args.gate ?? null;
  const pipeline = gpu.pipelines.get('activation-backward', activationBackwardSource({ gated: gate !== null }), `${fn}_backward_v1`, itemConstants(gpu));
  const u = new Params(gpu, [n], `${label} params`);
  params.push(u);
  const entries: GPUBindGroupEntry[] = [
    { binding: 0, resource: { buffer: u.buffer } },
    { binding: 1, resource: bindWhole(gpu, x, n, `${label} input`) },
    { binding: 2, resource: bindWhole(gpu, dy, n, `${label} gradient`) },
    { binding: 4, resource: bindWhole(gpu, dx, n, `${label} input gradient`) },
  ];
  if (gate) {
    entries.push({ binding: 3, resource: bindWhole(gpu, gate.up, n, `${label} up projection`) });
    entries.push({ binding: 5, resource: bindWhole(gpu, gate.dUp, n, `${label} up gradient`) });
  }
  const bindGroup = gpu.device.createBindGroup({ label, layout: pipeline.getBindGroupLayout(0), entries });
  return { kind: 'dispatch', label, pipeline, bindGroup, workgroups: itemGrid(gpu, n) };
}
