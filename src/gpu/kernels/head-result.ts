/**
 * Per-head results (`shaders/head-result.wgsl.ts`), for runs that ask for `hook_result`.
 * CPU reference: `head-result.cpu.ts`.
 */
import { headResultSource } from '../../../shaders/head-result.wgsl.ts';
import type { Gpu } from '../device.ts';
import { itemConstants, itemGrid, Params, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';

function prepare(gpu: Gpu, entry: string, dims: number[], bufs: Array<[GPUBuffer, number, number?]>, items: number, params: Params[], label: string, f16W = false): Dispatch {
  const pipeline = gpu.pipelines.get('head-result', headResultSource({ f16W }), entry, itemConstants(gpu));
  const u = new Params(gpu, dims, `${label} params`);
  params.push(u);
  const bindGroup = gpu.device.createBindGroup({
    label,
    layout: pipeline.getBindGroupLayout(0),
    entries: [{ binding: 0, resource: { buffer: u.buffer } }, ...bufs.map(([b, n, bytes], i) => ({ binding: i + 1, resource: bindWhole(gpu, b, n, `${label} binding ${i + 1}`, bytes ?? 4) }))],
  });
  return { kind: 'dispatch', label, pipeline, bindGroup, workgroups: itemGrid(gpu, items) };
}

export interface HeadResultArgs {
  result: GPUBuffer; // [BT, H, C] out
  z: GPUBuffer; // [BT, H, dh]
  W_O: GPUBuffer; // [H*dh, C]
  BT: number;
  H: number;
  dh: number;
  C: number;
  /** W_O holds f16 weights. */
  f16W?: boolean;
  label: string;
}

/** result [BT, H, C] = z [BT, H, dh] per head @ W_O [H*dh, C]. */
export function headResult(gpu: Gpu, args: HeadResultArgs, params: Params[]): Dispatch {
  const { result, z, W_O, BT, H, dh, C, label } = args;
  const f16W = !!args.f16W;
  return prepare(
    gpu,
    'head_result_v1',
    [BT, H, dh, C],
    [
      [z, BT * H * dh],
      [W_O, H * dh * C, f16W ? 2 : 4],
      [result, BT * H * C],
    ],
    BT * H * C,
    params,
    label,
    f16W,
  );
}

export interface SumHeadsArgs {
  out: GPUBuffer; // [BT, C]
  result: GPUBuffer; // [BT, H, C]
  b_O: GPUBuffer; // [C]
  BT: number;
  H: number;
  C: number;
  label: string;
}

/** out [BT, C] = sum over heads of result [BT, H, C] + b_O [C]. */
export function sumHeads(gpu: Gpu, args: SumHeadsArgs, params: Params[]): Dispatch {
  const { out, result, b_O, BT, H, C, label } = args;
  return prepare(
    gpu,
    'sum_heads_v1',
    [BT, H, 0, C],
    [
      [result, BT * H * C],
      [b_O, C],
      [out, BT * C],
    ],
    BT * C,
    params,
    label,
  );
}
