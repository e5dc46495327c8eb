/**
 * LayerNorm / RMSNorm kernels (`shaders/layernorm.wgsl.ts`), CPU references in `layernorm.cpu.ts`.
 *
 * `layernorm` is the fused kernel a forward runs (y and the scale in one step). `layernormNormalize`
 * and `layernormAffine` split it at TransformerLens' hook points for runs that read or change
 * `hook_normalized` or `hook_scale`: the normalized input from x and a (possibly changed) scale,
 * then the gain and bias applied to a (possibly changed) normalized input.
 */
import { layernormSource } from '../../../shaders/layernorm.wgsl.ts';
import type { Gpu } from '../device.ts';
import { Params, grid1d, itemConstants, itemGrid, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';

export type LayerNormVersion = 'v1' | 'v2';
export const LAYERNORM_VERSION: LayerNormVersion = 'v2';
/**
 * Invocations per row in v2 and in normalize: 64 covers GPT-2's 768 in 12 strided steps and keeps
 * barriers cheap. Normalize must use v2's value: it recomputes the mean with v2's reduction, so
 * the two agree bit for bit.
 */
const V2_WG = 64;

export interface LayerNormArgs {
  out: GPUBuffer; // [rows, C]
  scale: GPUBuffer; // [rows]
  x: GPUBuffer; // [rows, C]
  w: GPUBuffer; // [C]
  /** [C]; null for RMSNorm (no centring, no bias). */
  b: GPUBuffer | null;
  rows: number;
  C: number;
  eps: number;
  label: string;
}

function pipelineFor(gpu: Gpu, rms: boolean, entry: string) {
  const constants = entry === 'layernorm_v1' || entry === 'layernorm_affine_v1' ? itemConstants(gpu) : { WG: V2_WG };
  return gpu.pipelines.get(rms ? 'rmsnorm' : 'layernorm', layernormSource({ rms }), entry, constants);
}

export function layernorm(gpu: Gpu, a: LayerNormArgs, params: Params[], version: LayerNormVersion = LAYERNORM_VERSION): Dispatch {
  const rms = a.b === null;
  const pipeline = pipelineFor(gpu, rms, `layernorm_${version}`);
  const u = new Params(gpu, [a.rows, a.C, { f32: a.eps }], `${a.label} params`);
  params.push(u);
  const n = a.rows * a.C;
  const bindGroup = gpu.device.createBindGroup({
    label: a.label,
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: u.buffer } },
      { binding: 1, resource: bindWhole(gpu, a.x, n, `${a.label} input`) },
      { binding: 2, resource: bindWhole(gpu, a.w, a.C, `${a.label} weight`) },
      ...(a.b ? [{ binding: 3, resource: bindWhole(gpu, a.b, a.C, `${a.label} bias`) }] : []),
      { binding: 4, resource: bindWhole(gpu, a.out, n, `${a.label} output`) },
      { binding: 5, resource: bindWhole(gpu, a.scale, a.rows, `${a.label} scale`) },
    ],
  });
  return {
    kind: 'dispatch',
    label: a.label,
    pipeline,
    bindGroup,
    workgroups: version === 'v2' ? grid1d(gpu, a.rows, 1) : itemGrid(gpu, a.rows),
  };
}

export interface NormalizeArgs {
  normalized: GPUBuffer; // [rows, C] out
  x: GPUBuffer; // [rows, C]
  scale: GPUBuffer; // [rows]
  /** RMSNorm: x / scale (no centring). */
  rms: boolean;
  rows: number;
  C: number;
  label: string;
}

/** normalized = (x - mean(x)) / scale (RMSNorm: x / scale), per row, with the scale as given. */
export function layernormNormalize(gpu: Gpu, a: NormalizeArgs, params: Params[]): Dispatch {
  const pipeline = pipelineFor(gpu, a.rms, 'layernorm_normalize_v1');
  const u = new Params(gpu, [a.rows, a.C, { f32: 0 }], `${a.label} params`);
  params.push(u);
  const n = a.rows * a.C;
  const bindGroup = gpu.device.createBindGroup({
    label: a.label,
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: u.buffer } },
      { binding: 1, resource: bindWhole(gpu, a.x, n, `${a.label} input`) },
      { binding: 5, resource: bindWhole(gpu, a.scale, a.rows, `${a.label} scale`) },
      { binding: 6, resource: bindWhole(gpu, a.normalized, n, `${a.label} normalized`) },
    ],
  });
  return { kind: 'dispatch', label: a.label, pipeline, bindGroup, workgroups: grid1d(gpu, a.rows, 1) };
}

export interface AffineArgs {
  out: GPUBuffer; // [rows, C]
  normalized: GPUBuffer; // [rows, C]
  w: GPUBuffer; // [C]
  /** [C]; null for RMSNorm. */
  b: GPUBuffer | null;
  rows: number;
  C: number;
  label: string;
}

/** out = normalized * w + b (RMSNorm: normalized * w). */
export function layernormAffine(gpu: Gpu, a: AffineArgs, params: Params[]): Dispatch {
  const rms = a.b === null;
  const pipeline = pipelineFor(gpu, rms, 'layernorm_affine_v1');
  const u = new Params(gpu, [a.rows, a.C, { f32: 0 }], `${a.label} params`);
  params.push(u);
  const n = a.rows * a.C;
  const bindGroup = gpu.device.createBindGroup({
    label: a.label,
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: u.buffer } },
      { binding: 2, resource: bindWhole(gpu, a.w, a.C, `${a.label} weight`) },
      ...(a.b ? [{ binding: 3, resource: bindWhole(gpu, a.b, a.C, `${a.label} bias`) }] : []),
      { binding: 4, resource: bindWhole(gpu, a.out, n, `${a.label} output`) },
      { binding: 6, resource: bindWhole(gpu, a.normalized, n, `${a.label} normalized`) },
    ],
  });
  return { kind: 'dispatch', label: a.label, pipeline, bindGroup, workgroups: itemGrid(gpu, n) };
}
