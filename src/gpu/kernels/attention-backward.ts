/**
 * Attention backward (`shaders/attention-backward.wgsl.ts`): the gradients of the pattern, the
 * values, the scores, the queries and the keys, one dispatch each. CPU reference:
 * `attention-backward.cpu.ts`. Dimensions as the forward's `AttentionDims`.
 */
import { COL_VEC4S, DP_TILE, ROW_TILE, V2_GROUP, attentionBackwardSource } from '../../../shaders/attention-backward.wgsl.ts';
import type { Gpu } from '../device.ts';
import { itemConstants, itemGrid, Params, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';
import type { AttentionDims } from './attention.ts';

export type AttentionBackwardVersion = 'v1' | 'v2';
/**
 * The version the backward runs: v2's register tiles (5-10x v1 on lavapipe at GPT-2-small's
 * 128 positions) where dh is a multiple of 4, v1 otherwise. The softmax backward is v1 in both.
 */
export const ATTENTION_BACKWARD_VERSION: AttentionBackwardVersion = 'v2';

type Kernel = 'attn_dpattern' | 'attn_dv' | 'attn_softmax_backward' | 'attn_dq' | 'attn_dk';

const sizes = (d: AttentionDims) => {
  const Tq = d.Tq ?? d.T;
  return { q: d.B * Tq * d.H * d.dh, kv: d.B * d.T * (d.Hkv ?? d.H) * d.dh, scores: d.B * d.H * Tq * d.T, rows: d.B * d.H * Tq };
};

/** v2's workgroups: tiles of one (batch, head) along x, (batch, head) along z; must match the shader's tiling. */
function v2Groups(kernel: Kernel, d: AttentionDims): [number, number, number] {
  const Tq = d.Tq ?? d.T;
  const Hkv = d.Hkv ?? d.H;
  const nD = Math.ceil(d.dh / (4 * COL_VEC4S));
  const along = (tiles: number, heads: number): [number, number, number] => [Math.ceil(tiles / V2_GROUP), 1, d.B * heads];
  switch (kernel) {
    case 'attn_dpattern':
      return along(Math.ceil(Tq / DP_TILE[0]) * Math.ceil(d.T / DP_TILE[1]), d.H);
    case 'attn_dq':
      return along(Math.ceil(Tq / ROW_TILE) * nD, d.H);
    default: // dv, dk
      return along(Math.ceil(d.T / ROW_TILE) * nD, Hkv);
  }
}

function prepare(
  gpu: Gpu,
  kernel: Kernel,
  d: AttentionDims,
  a: [GPUBuffer, number],
  b: [GPUBuffer, number],
  out: [GPUBuffer, number],
  items: number,
  params: Params[],
  label: string,
  version: AttentionBackwardVersion,
): Dispatch {
  // v2 reads rows of dh as vec4s; the softmax backward has v1 only.
  const v = version === 'v2' && d.dh % 4 === 0 && kernel !== 'attn_softmax_backward' ? 'v2' : 'v1';
  const pipeline = gpu.pipelines.get('attention-backward', attentionBackwardSource(), `${kernel}_${v}`, v === 'v1' ? itemConstants(gpu) : {});
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
  const workgroups = v === 'v2' ? v2Groups(kernel, d) : itemGrid(gpu, items);
  return { kind: 'dispatch', label, pipeline, bindGroup, workgroups };
}

/** One attention-backward dispatch's tensors: the dimensions, the named buffers and the label. */
type AttentionBackwardArgs<Bufs extends string> = { dims: AttentionDims; label: string } & Record<Bufs, GPUBuffer>;

export type AttnDPatternArgs = AttentionBackwardArgs<'dpattern' | 'dz' | 'v'>;
export type AttnDVArgs = AttentionBackwardArgs<'dv' | 'pattern' | 'dz'>;
export type AttnSoftmaxBackwardArgs = AttentionBackwardArgs<'dscores' | 'pattern' | 'dpattern'>;
export type AttnDQArgs = AttentionBackwardArgs<'dq' | 'dscores' | 'k'>;
export type AttnDKArgs = AttentionBackwardArgs<'dk' | 'dscores' | 'q'>;

/** dpattern [B, H, Tq, T] from dz [B, Tq, H, dh] and v [B, T, Hkv, dh]. */
export function attnDPattern(gpu: Gpu, args: AttnDPatternArgs, params: Params[], version = ATTENTION_BACKWARD_VERSION): Dispatch {
  const { dims: d, dpattern, dz, v, label } = args;
  const n = sizes(d);
  return prepare(gpu, 'attn_dpattern', d, [dz, n.q], [v, n.kv], [dpattern, n.scores], n.scores, params, label, version);
}

/** dv [B, T, Hkv, dh] from pattern [B, H, Tq, T] and dz. */
export function attnDV(gpu: Gpu, args: AttnDVArgs, params: Params[], version = ATTENTION_BACKWARD_VERSION): Dispatch {
  const { dims: d, dv, pattern, dz, label } = args;
  const n = sizes(d);
  return prepare(gpu, 'attn_dv', d, [pattern, n.scores], [dz, n.q], [dv, n.kv], n.kv, params, label, version);
}

/** dscores [B, H, Tq, T] from pattern and dpattern (zero where masked). */
export function attnSoftmaxBackward(gpu: Gpu, args: AttnSoftmaxBackwardArgs, params: Params[]): Dispatch {
  const { dims: d, dscores, pattern, dpattern, label } = args;
  const n = sizes(d);
  return prepare(gpu, 'attn_softmax_backward', d, [pattern, n.scores], [dpattern, n.scores], [dscores, n.scores], n.rows, params, label, 'v1');
}

/** dq [B, Tq, H, dh] from dscores and k [B, T, Hkv, dh]. */
export function attnDQ(gpu: Gpu, args: AttnDQArgs, params: Params[], version = ATTENTION_BACKWARD_VERSION): Dispatch {
  const { dims: d, dq, dscores, k, label } = args;
  const n = sizes(d);
  return prepare(gpu, 'attn_dq', d, [dscores, n.scores], [k, n.kv], [dq, n.q], n.q, params, label, version);
}

/** dk [B, T, Hkv, dh] from dscores and q [B, Tq, H, dh]. */
export function attnDK(gpu: Gpu, args: AttnDKArgs, params: Params[], version = ATTENTION_BACKWARD_VERSION): Dispatch {
  const { dims: d, dk, dscores, q, label } = args;
  const n = sizes(d);
  return prepare(gpu, 'attn_dk', d, [dscores, n.scores], [q, n.q], [dk, n.kv], n.kv, params, label, version);
}
