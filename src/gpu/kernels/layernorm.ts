/**
 * LayerNorm kernel (`shaders/layernorm.wgsl.ts`), CPU reference in `layernorm.cpu.ts`.
 */
import { layernormSource } from '../../../shaders/layernorm.wgsl.ts';
import type { Gpu } from '../device.ts';
import { Params, grid1d, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';

export type LayerNormVersion = 'v1' | 'v2';
export const LAYERNORM_VERSION: LayerNormVersion = 'v2';
/** Invocations per row in v2: 64 covers GPT-2's 768 in 12 strided steps and keeps barriers cheap. */
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

export function layernorm(gpu: Gpu, a: LayerNormArgs, params: Params[], version: LayerNormVersion = LAYERNORM_VERSION): Dispatch {
  const rms = a.b === null;
  const pipeline = gpu.pipelines.get(rms ? 'rmsnorm' : 'layernorm', layernormSource({ rms }), `layernorm_${version}`, version === 'v2' ? { WG: V2_WG } : {});
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
    workgroups: version === 'v2' ? grid1d(gpu, a.rows, 1) : grid1d(gpu, a.rows, 64),
  };
}
