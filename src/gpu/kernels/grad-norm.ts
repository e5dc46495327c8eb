/**
 * The global gradient norm and clipping factor (`shaders/grad-norm.wgsl.ts`): one `sumsq`
 * dispatch per gradient tensor writes its partial sums of squares, then `clip` reduces every
 * partial in a fixed order into the clock's grad_norm and grad_scale. CPU reference: `grad-norm.cpu.ts`.
 */
import { gradNormSource } from '../../../shaders/grad-norm.wgsl.ts';
import type { Gpu } from '../device.ts';
import { Params, grid1d, type Dispatch } from '../recorder.ts';
import { bindWhole, bindWindow } from '../window.ts';

/** Workgroup size and elements per invocation of `sumsq_v1` (the shader's overrides). */
const WG = 256; // a power of two: the shared-memory tree halves it
const PER = 4; // 1,024 elements per workgroup: few partials, still many workgroups for large tensors

/** Partials `sumsq` writes for a tensor of n elements. */
export function sumsqPartials(n: number): number {
  return Math.max(1, Math.ceil(n / (WG * PER)));
}

export interface SumsqArgs {
  grad: GPUBuffer;
  /** First element of this tensor in `grad`. */
  gradStart: number;
  n: number;
  partials: GPUBuffer;
  /** First partial this tensor writes. */
  partStart: number;
  label: string;
}

/** partials[partStart ...] = sums of squares of grad[gradStart, gradStart + n) by chunk. */
export function sumsq(gpu: Gpu, args: SumsqArgs, params: Params[]): Dispatch {
  const { grad, gradStart, n, partials, partStart, label } = args;
  const pipeline = gpu.pipelines.get('grad-norm', gradNormSource(), 'sumsq_v1', { WG, PER });
  const gw = bindWindow(gpu, grad, gradStart, n, `${label} gradient`);
  const u = new Params(gpu, [n, gw.elemOffset, partStart, { f32: 0 }], `${label} params`);
  params.push(u);
  const count = sumsqPartials(n);
  const bindGroup = gpu.device.createBindGroup({
    label,
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: u.buffer } },
      { binding: 1, resource: gw.binding },
      { binding: 2, resource: bindWhole(gpu, partials, partStart + count, `${label} partials`) },
    ],
  });
  return { kind: 'dispatch', label, pipeline, bindGroup, workgroups: grid1d(gpu, count, 1) };
}

export interface ClipArgs {
  partials: GPUBuffer; // [count]
  count: number;
  /** the training clock (grad_norm and grad_scale are written there) */
  clock: GPUBuffer;
  /** 0: no clipping. */
  maxNorm: number;
  label: string;
}

/** clock.grad_norm = sqrt(sum of partials[0, count)); clock.grad_scale = min(1, maxNorm / (norm + 1e-6)), or 1 for maxNorm 0. */
export function clip(gpu: Gpu, args: ClipArgs, params: Params[]): Dispatch {
  const { partials, count, clock, maxNorm, label } = args;
  const pipeline = gpu.pipelines.get('grad-norm', gradNormSource(), 'clip_v1', { WG, PER });
  const u = new Params(gpu, [count, 0, 0, { f32: maxNorm }], `${label} params`);
  params.push(u);
  const bindGroup = gpu.device.createBindGroup({
    label,
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: u.buffer } },
      { binding: 2, resource: bindWhole(gpu, partials, count, `${label} partials`) },
      { binding: 3, resource: { buffer: clock } },
    ],
  });
  return { kind: 'dispatch', label, pipeline, bindGroup, workgroups: [1, 1, 1] };
}
