/**
 * Causal attention kernels (`shaders/attention.wgsl.ts`): scores, softmax pattern and z, three
 * dispatches so each intermediate exists as a tensor a hook can read or overwrite.
 * CPU reference: `attention.cpu.ts`.
 */
import { attentionSource } from '../../../shaders/attention.wgsl.ts';
import type { Gpu } from '../device.ts';
import { Params, grid1d, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';

export interface AttentionDims {
  B: number;
  T: number;
  H: number;
  dh: number;
}

const NEG_INF_BITS = 0xff800000;

function prepare(
  gpu: Gpu,
  entry: 'attn_scores' | 'attn_softmax' | 'attn_z',
  dims: AttentionDims,
  bufs: { a: [GPUBuffer, number]; b: [GPUBuffer, number] | null; out: [GPUBuffer, number] },
  items: number,
  params: Params[],
  label: string,
): Dispatch {
  const pipeline = gpu.pipelines.get('attention', attentionSource(), entry);
  const u = new Params(gpu, [dims.B, dims.T, dims.H, dims.dh, { f32: 1 / Math.sqrt(dims.dh) }, NEG_INF_BITS], `${label} params`);
  params.push(u);
  // The softmax reads no second input; bind the first again to satisfy the shared layout.
  const b = bufs.b ?? bufs.a;
  const layout = pipeline.getBindGroupLayout(0);
  const entries: GPUBindGroupEntry[] = [
    { binding: 0, resource: { buffer: u.buffer } },
    { binding: 1, resource: bindWhole(gpu, bufs.a[0], bufs.a[1], `${label} input`) },
    { binding: 3, resource: bindWhole(gpu, bufs.out[0], bufs.out[1], `${label} output`) },
  ];
  if (bufs.b) entries.push({ binding: 2, resource: bindWhole(gpu, b[0], b[1], `${label} input`) });
  const bindGroup = gpu.device.createBindGroup({ label, layout, entries });
  return { kind: 'dispatch', label, pipeline, bindGroup, workgroups: grid1d(gpu, items, 64) };
}

/** scores [B, H, T, T] from q, k [B, T, H, dh]. */
export function attnScores(gpu: Gpu, d: AttentionDims, scores: GPUBuffer, q: GPUBuffer, k: GPUBuffer, params: Params[], label: string): Dispatch {
  const qkv = d.B * d.T * d.H * d.dh;
  const sc = d.B * d.H * d.T * d.T;
  return prepare(gpu, 'attn_scores', d, { a: [q, qkv], b: [k, qkv], out: [scores, sc] }, sc, params, label);
}

/** pattern [B, H, T, T] = causal softmax of scores. */
export function attnSoftmax(gpu: Gpu, d: AttentionDims, pattern: GPUBuffer, scores: GPUBuffer, params: Params[], label: string): Dispatch {
  const sc = d.B * d.H * d.T * d.T;
  return prepare(gpu, 'attn_softmax', d, { a: [scores, sc], b: null, out: [pattern, sc] }, d.B * d.H * d.T, params, label);
}

/** z [B, T, H, dh] = pattern @ v per head. */
export function attnZ(gpu: Gpu, d: AttentionDims, z: GPUBuffer, pattern: GPUBuffer, v: GPUBuffer, params: Params[], label: string): Dispatch {
  const qkv = d.B * d.T * d.H * d.dh;
  const sc = d.B * d.H * d.T * d.T;
  return prepare(gpu, 'attn_z', d, { a: [pattern, sc], b: [v, qkv], out: [z, qkv] }, qkv, params, label);
}
