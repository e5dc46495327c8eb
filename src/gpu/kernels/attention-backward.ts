/**
 * Attention backward (`shaders/attention-backward.wgsl.ts`): the gradients of the pattern, the
 * values, the scores, the queries and the keys, one dispatch each. CPU reference:
 * `attention-backward.cpu.ts`. Dimensions as the forward's `AttentionDims`.
 */
import { attentionBackwardSource } from '../../../shaders/attention-backward.wgsl.ts';
import type { Gpu } from '../device.ts';
import { Params, grid1d, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';
import type { AttentionDims } from './attention.ts';

type Entry = 'attn_dpattern_v1' | 'attn_dv_v1' | 'attn_softmax_backward_v1' | 'attn_dq_v1' | 'attn_dk_v1';

const sizes = (d: AttentionDims) => {
  const Tq = d.Tq ?? d.T;
  return { q: d.B * Tq * d.H * d.dh, kv: d.B * d.T * (d.Hkv ?? d.H) * d.dh, scores: d.B * d.H * Tq * d.T, rows: d.B * d.H * Tq };
};

function prepare(gpu: Gpu, entry: Entry, d: AttentionDims, a: [GPUBuffer, number], b: [GPUBuffer, number], out: [GPUBuffer, number], items: number, params: Params[], label: string): Dispatch {
  const pipeline = gpu.pipelines.get('attention-backward', attentionBackwardSource(), entry);
  const Tq = d.Tq ?? d.T;
  const Hkv = d.Hkv ?? d.H;
  if (d.H % Hkv !== 0) throw new Error(`${label}: ${d.H} query heads are not a multiple of ${Hkv} key/value heads`);
  const u = new Params(gpu, [d.B, Tq, d.T, d.H, Hkv, d.dh, d.q0 ?? 0, { f32: d.scale ?? 1 / Math.sqrt(d.dh) }], `${label} params`);
  params.push(u);
  const bindGroup = gpu.device.createBindGroup({
    label,
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: u.buffer } },
      { binding: 1, resource: bindWhole(gpu, a[0], a[1], `${label} input a`) },
      { binding: 2, resource: bindWhole(gpu, b[0], b[1], `${label} input b`) },
      { binding: 3, resource: bindWhole(gpu, out[0], out[1], `${label} output`) },
    ],
  });
  return { kind: 'dispatch', label, pipeline, bindGroup, workgroups: grid1d(gpu, items, 64) };
}

/** dpattern [B, H, Tq, T] from dz [B, Tq, H, dh] and v [B, T, Hkv, dh]. */
export function attnDPattern(gpu: Gpu, d: AttentionDims, dpattern: GPUBuffer, dz: GPUBuffer, v: GPUBuffer, params: Params[], label: string): Dispatch {
  const n = sizes(d);
  return prepare(gpu, 'attn_dpattern_v1', d, [dz, n.q], [v, n.kv], [dpattern, n.scores], n.scores, params, label);
}

/** dv [B, T, Hkv, dh] from pattern [B, H, Tq, T] and dz. */
export function attnDV(gpu: Gpu, d: AttentionDims, dv: GPUBuffer, pattern: GPUBuffer, dz: GPUBuffer, params: Params[], label: string): Dispatch {
  const n = sizes(d);
  return prepare(gpu, 'attn_dv_v1', d, [pattern, n.scores], [dz, n.q], [dv, n.kv], n.kv, params, label);
}

/** dscores [B, H, Tq, T] from pattern and dpattern (zero where masked). */
export function attnSoftmaxBackward(gpu: Gpu, d: AttentionDims, dscores: GPUBuffer, pattern: GPUBuffer, dpattern: GPUBuffer, params: Params[], label: string): Dispatch {
  const n = sizes(d);
  return prepare(gpu, 'attn_softmax_backward_v1', d, [pattern, n.scores], [dpattern, n.scores], [dscores, n.scores], n.rows, params, label);
}

/** dq [B, Tq, H, dh] from dscores and k [B, T, Hkv, dh]. */
export function attnDQ(gpu: Gpu, d: AttentionDims, dq: GPUBuffer, dscores: GPUBuffer, k: GPUBuffer, params: Params[], label: string): Dispatch {
  const n = sizes(d);
  return prepare(gpu, 'attn_dq_v1', d, [dscores, n.scores], [k, n.kv], [dq, n.q], n.q, params, label);
}

/** dk [B, T, Hkv, dh] from dscores and q [B, Tq, H, dh]. */
export function attnDK(gpu: Gpu, d: AttentionDims, dk: GPUBuffer, dscores: GPUBuffer, q: GPUBuffer, params: Params[], label: string): Dispatch {
  const n = sizes(d);
  return prepare(gpu, 'attn_dk_v1', d, [dscores, n.scores], [q, n.q], [dk, n.kv], n.kv, params, label);
}
