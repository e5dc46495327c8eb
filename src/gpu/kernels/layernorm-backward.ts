/**
 * LayerNorm / RMSNorm backward (`shaders/layernorm-backward.wgsl.ts`), four dispatches so that
 * hook_normalized and hook_scale each get their gradient as a site. CPU reference:
 * `layernorm-backward.cpu.ts`.
 */
import { layernormBackwardSource, type NormBackwardVariant } from '../../../shaders/layernorm-backward.wgsl.ts';
import type { Gpu } from '../device.ts';
import { Params, grid1d, itemConstants, itemGrid, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';

/** Invocations per row of the row kernels: 64 covers GPT-2's 768 in 12 strided steps (as the forward). */
const ROW_WG = 64;

type Entry = 'norm_gain_backward_v1' | 'norm_param_grad_v1' | 'norm_scale_grad_v1' | 'norm_input_grad_v1';

function prepare(
  gpu: Gpu,
  entry: Entry,
  variant: NormBackwardVariant,
  rows: number,
  C: number,
  bind: Array<[number, GPUBuffer, number]>,
  workgroups: [number, number, number],
  params: Params[],
  label: string,
): Dispatch {
  const rowKernel = entry === 'norm_scale_grad_v1' || entry === 'norm_input_grad_v1';
  const pipeline = gpu.pipelines.get('layernorm-backward', layernormBackwardSource(variant), entry, rowKernel ? { WG: ROW_WG } : itemConstants(gpu));
  const u = new Params(gpu, [rows, C], `${label} params`);
  params.push(u);
  const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: u.buffer } }];
  for (const [binding, buffer, floats] of bind) entries.push({ binding, resource: bindWhole(gpu, buffer, floats, `${label} binding ${binding}`) });
  const bindGroup = gpu.device.createBindGroup({ label, layout: pipeline.getBindGroupLayout(0), entries });
  return { kind: 'dispatch', label, pipeline, bindGroup, workgroups };
}

export interface NormGainBackwardArgs {
  dn: GPUBuffer; // [rows, C] out
  dy: GPUBuffer; // [rows, C]
  w: GPUBuffer; // [C]
  rows: number;
  C: number;
  label: string;
}

/** dn [rows, C] = dy * w (the gain's backward into hook_normalized). */
export function normGainBackward(gpu: Gpu, args: NormGainBackwardArgs, params: Params[]): Dispatch {
  const { dn, dy, w, rows, C, label } = args;
  return prepare(
    gpu,
    'norm_gain_backward_v1',
    {},
    rows,
    C,
    [
      [1, dy, rows * C],
      [3, w, C],
      [4, dn, rows * C],
    ],
    itemGrid(gpu, rows * C),
    params,
    label,
  );
}

export interface NormParamGradArgs {
  dw: GPUBuffer; // [C]
  db: GPUBuffer | null; // [C]; null for RMSNorm
  dy: GPUBuffer; // [rows, C]
  n: GPUBuffer; // [rows, C], hook_normalized
  rows: number;
  C: number;
  /** Add into dw and db instead of overwriting them. */
  accumulate?: boolean;
  label: string;
}

/** dw [C] (+)= sum_r dy n; db [C] (+)= sum_r dy (db null for RMSNorm). */
export function normParamGrad(gpu: Gpu, args: NormParamGradArgs, params: Params[]): Dispatch {
  const { dw, db, dy, n, rows, C, label } = args;
  const accumulate = !!args.accumulate;
  const bind: Array<[number, GPUBuffer, number]> = [
    [1, dy, rows * C],
    [2, n, rows * C],
    [4, dw, C],
  ];
  if (db) bind.push([5, db, C]);
  return prepare(gpu, 'norm_param_grad_v1', { rms: !db, acc: accumulate }, rows, C, bind, [Math.ceil(C / gpu.workgroupSize), 1, 1], params, label);
}

export interface NormScaleGradArgs {
  dscale: GPUBuffer; // [rows] out
  dn: GPUBuffer; // [rows, C]
  n: GPUBuffer; // [rows, C]
  scale: GPUBuffer; // [rows]
  rows: number;
  C: number;
  label: string;
}

/** dscale [rows] = -sum_c dn n / scale (hook_scale's gradient). */
export function normScaleGrad(gpu: Gpu, args: NormScaleGradArgs, params: Params[]): Dispatch {
  const { dscale, dn, n, scale, rows, C, label } = args;
  return prepare(
    gpu,
    'norm_scale_grad_v1',
    {},
    rows,
    C,
    [
      [1, dn, rows * C],
      [2, n, rows * C],
      [3, scale, rows],
      [4, dscale, rows],
    ],
    grid1d(gpu, rows, 1),
    params,
    label,
  );
}

export interface NormInputGradArgs {
  /** [rows, C], written or (accumulate) added to: the residual stream's gradient. */
  dx: GPUBuffer;
  dn: GPUBuffer;
  n: GPUBuffer;
  scale: GPUBuffer;
  /** hook_scale's gradient; null holds the scale constant (detached). */
  dscale: GPUBuffer | null;
  rms: boolean;
  rows: number;
  C: number;
  accumulate?: boolean;
  label: string;
}

/** dx (+)= the norm's input gradient from dn and dscale. */
export function normInputGrad(gpu: Gpu, a: NormInputGradArgs, params: Params[]): Dispatch {
  const { rows, C } = a;
  const bind: Array<[number, GPUBuffer, number]> = [
    [1, a.dn, rows * C],
    [2, a.n, rows * C],
    [3, a.scale, rows],
    [4, a.dx, rows * C],
  ];
  if (a.dscale) bind.push([6, a.dscale, rows]);
  return prepare(gpu, 'norm_input_grad_v1', { rms: a.rms, detach: !a.dscale, acc: !!a.accumulate }, rows, C, bind, grid1d(gpu, rows, 1), params, a.label);
}
