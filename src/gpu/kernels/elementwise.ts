/**
 * Elementwise kernels: MLP activations (`shaders/activation.wgsl.ts`) and residual `add`
 * (`shaders/residual.wgsl.ts`). CPU references: `elementwise.cpu.ts`.
 */
import { activationSource, type ActFn } from '../../../shaders/activation.wgsl.ts';
import { residualSource } from '../../../shaders/residual.wgsl.ts';
import type { Gpu } from '../device.ts';
import { itemConstants, itemGrid, Params, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';

export interface ActivationArgs {
  fn: ActFn;
  y: GPUBuffer; // [n] out
  x: GPUBuffer; // [n]
  up?: GPUBuffer | null; // [n]: the up projection of a gated MLP (y = act(x) * up)
  n: number;
  label: string;
}

/** y = act(x) over n values, or y = act(x) * up with a gate (SwiGLU-style MLPs). */
export function activation(gpu: Gpu, args: ActivationArgs, params: Params[]): Dispatch {
  const { fn, y, x, n, label } = args;
  const up = args.up ?? null;
  const pipeline = gpu.pipelines.get('activation', activationSource({ gated: up !== null }), `${fn}_v1`, itemConstants(gpu));
  const u = new Params(gpu, [n], `${label} params`);
  params.push(u);
  const entries: GPUBindGroupEntry[] = [
    { binding: 0, resource: { buffer: u.buffer } },
    { binding: 1, resource: bindWhole(gpu, x, n, `${label} input`) },
    { binding: 2, resource: bindWhole(gpu, y, n, `${label} output`) },
  ];
  if (up) entries.push({ binding: 3, resource: bindWhole(gpu, up, n, `${label} up projection`) });
  const bindGroup = gpu.device.createBindGroup({ label, layout: pipeline.getBindGroupLayout(0), entries });
  return { kind: 'dispatch', label, pipeline, bindGroup, workgroups: itemGrid(gpu, n) };
}

export interface SoftcapArgs {
  y: GPUBuffer; // [n], in place
  n: number;
  cap: number;
  label: string;
}

/** y = cap * tanh(y / cap) over n values, in place (a final logit soft-cap). */
export function softcap(gpu: Gpu, args: SoftcapArgs, params: Params[]): Dispatch {
  const { y, n, cap, label } = args;
  const pipeline = gpu.pipelines.get('activation', activationSource({ gated: false }), 'softcap_v1', itemConstants(gpu));
  const u = new Params(gpu, [n, { f32: cap }], `${label} params`);
  params.push(u);
  const bindGroup = gpu.device.createBindGroup({
    label,
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: u.buffer } },
      { binding: 2, resource: bindWhole(gpu, y, n, `${label} values`) },
    ],
  });
  return { kind: 'dispatch', label, pipeline, bindGroup, workgroups: itemGrid(gpu, n) };
}

export interface GeluNewArgs {
  y: GPUBuffer; // [n] out
  x: GPUBuffer; // [n]
  n: number;
  label: string;
}

/** y = gelu_new(x) over n values (GPT-2's MLP). */
export function geluNew(gpu: Gpu, args: GeluNewArgs, params: Params[]): Dispatch {
  return activation(gpu, { ...args, fn: 'gelu_new' }, params);
}

export interface AddArgs {
  out: GPUBuffer; // [n]
  a: GPUBuffer; // [n]
  b: GPUBuffer; // [n]
  n: number;
  label: string;
}

/** out = a + b over n values. */
export function add(gpu: Gpu, args: AddArgs, params: Params[]): Dispatch {
  const { out, a, b, n, label } = args;
  const pipeline = gpu.pipelines.get('residual', residualSource(), 'add_v1', itemConstants(gpu));
  const u = new Params(gpu, [n], `${label} params`);
  params.push(u);
  const bindGroup = gpu.device.createBindGroup({
    label,
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: u.buffer } },
      { binding: 1, resource: bindWhole(gpu, a, n, `${label} input a`) },
      { binding: 2, resource: bindWhole(gpu, b, n, `${label} input b`) },
      { binding: 3, resource: bindWhole(gpu, out, n, `${label} output`) },
    ],
  });
  return { kind: 'dispatch', label, pipeline, bindGroup, workgroups: itemGrid(gpu, n) };
}
