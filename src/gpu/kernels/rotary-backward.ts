/** Rotary backward (`shaders/rotary-backward.wgsl.ts`). CPU reference: `rotary-backward.cpu.ts`. */
import { rotaryBackwardSource } from '../../../shaders/rotary-backward.wgsl.ts';
import type { Gpu } from '../device.ts';
import { itemConstants, itemGrid, Params, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';
import type { RotaryDims } from './rotary.ts';

export interface RotaryBackwardArgs {
  dims: RotaryDims;
  dx: GPUBuffer; // [B, T, H, dh] out
  dy: GPUBuffer; // [B, T, H, dh]
  /** the forward's [nCtx, rot / 2] table */
  cos: GPUBuffer;
  /** the forward's [nCtx, rot / 2] table */
  sin: GPUBuffer;
  label: string;
}

/** dx [B, T, H, dh] = dy rotated back by position; cos, sin: the forward's [nCtx, rot / 2] tables. */
export function rotaryBackward(gpu: Gpu, args: RotaryBackwardArgs, params: Params[]): Dispatch {
  const { dims: d, dx, dy, cos, sin, label } = args;
  const pipeline = gpu.pipelines.get('rotary-backward', rotaryBackwardSource(), 'rotary_backward_v1', itemConstants(gpu));
  const u = new Params(gpu, [d.B, d.T, d.H, d.dh, d.rot, d.pos0], `${label} params`);
  params.push(u);
  const n = d.B * d.T * d.H * d.dh;
  const table = d.nCtx * (d.rot / 2);
  const bindGroup = gpu.device.createBindGroup({
    label,
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: u.buffer } },
      { binding: 1, resource: bindWhole(gpu, dy, n, `${label} gradient`) },
      { binding: 2, resource: bindWhole(gpu, dx, n, `${label} input gradient`) },
      { binding: 3, resource: bindWhole(gpu, cos, table, `${label} cos`) },
      { binding: 4, resource: bindWhole(gpu, sin, table, `${label} sin`) },
    ],
  });
  return { kind: 'dispatch', label, pipeline, bindGroup, workgroups: itemGrid(gpu, n) };
}
