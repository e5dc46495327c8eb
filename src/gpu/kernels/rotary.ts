/** Rotary position embeddings (`shaders/rotary.wgsl.ts`). CPU reference: `rotary.cpu.ts`. */
import { rotarySource } from '../../../shaders/rotary.wgsl.ts';
import type { Gpu } from '../device.ts';
import { itemConstants, itemGrid, Params, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';

export interface RotaryDims {
  B: number;
  T: number;
  /** Heads of this tensor (query heads for q, key/value heads for k). */
  H: number;
  dh: number;
  /** Rotated dims per head (even, <= dh). */
  rot: number;
  /** Absolute position of row 0. */
  pos0: number;
  /** Rows of the cos/sin tables (the context length). */
  nCtx: number;
}

export interface RotaryArgs {
  dims: RotaryDims;
  y: GPUBuffer; // [B, T, H, dh] out
  x: GPUBuffer; // [B, T, H, dh]
  cos: GPUBuffer; // [nCtx, rot / 2]
  sin: GPUBuffer; // [nCtx, rot / 2]
  label: string;
}

/** y [B, T, H, dh] = x rotated by position; cos, sin: [nCtx, rot / 2]. */
export function rotary(gpu: Gpu, args: RotaryArgs, params: Params[]): Dispatch {
  const { dims: d, y, x, cos, sin, label } = args;
  const pipeline = gpu.pipelines.get('rotary', rotarySource(), 'rotary_v1', itemConstants(gpu));
  const u = new Params(gpu, [d.B, d.T, d.H, d.dh, d.rot, d.pos0], `${label} params`);
  params.push(u);
  const n = d.B * d.T * d.H * d.dh;
  const table = d.nCtx * (d.rot / 2);
  const bindGroup = gpu.device.createBindGroup({
    label,
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: u.buffer } },
      { binding: 1, resource: bindWhole(gpu, x, n, `${label} input`) },
      { binding: 2, resource: bindWhole(gpu, y, n, `${label} output`) },
      { binding: 3, resource: bindWhole(gpu, cos, table, `${label} cos`) },
      { binding: 4, resource: bindWhole(gpu, sin, table, `${label} sin`) },
    ],
  });
  return { kind: 'dispatch', label, pipeline, bindGroup, workgroups: itemGrid(gpu, n) };
}
