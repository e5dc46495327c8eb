/**
 * Causal attention kernels (`shaders/attention.wgsl.ts`): scores, softmax pattern and z, three
 * dispatches so each intermediate exists as a tensor a hook can read or overwrite.
 * CPU reference: `attention.cpu.ts`.
 */
import { attentionSource } from '../../../shaders/attention.wgsl.ts';
import type { Gpu } from '../device.ts';
import { itemConstants, itemGrid, Params, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';

export interface AttentionDims {
  B: number;
  /** Key positions (and query positions unless `Tq` is given). */
  T: number;
  H: number;
  dh: number;
  /** Query rows, when fewer than the keys (a forward resuming at position `q0`). */
  Tq?: number;
  /** Absolute position of query row 0 (default 0). */
  q0?: number;
  /** Key/value heads (default H); H must be a multiple. */
  Hkv?: number;
  /** The scores' factor (default 1 / sqrt(dh); see `attentionScale` in model/config.ts). */
  scale?: number;
  /** Sliding window: each query sees only its last `window` keys, itself included (default: all). */
  window?: number;
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
  const pipeline = gpu.pipelines.get('attention', attentionSource(), entry, itemConstants(gpu));
  const Tq = dims.Tq ?? dims.T;
  const q0 = dims.q0 ?? 0;
  if (q0 + Tq > dims.T) throw new Error(`${label}: query rows ${q0} + ${Tq} exceed the ${dims.T} key positions`);
  const Hkv = dims.Hkv ?? dims.H;
  if (dims.H % Hkv !== 0) throw new Error(`${label}: ${dims.H} query heads are not a multiple of ${Hkv} key/value heads`);
  const u = new Params(gpu, [dims.B, Tq, dims.T, dims.H, Hkv, dims.dh, q0, { f32: dims.scale ?? 1 / Math.sqrt(dims.dh) }, NEG_INF_BITS, dims.window ?? 0], `${label} params`);
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
  return { kind: 'dispatch', label, pipeline, bindGroup, workgroups: itemGrid(gpu, items) };
}

const sizes = (d: AttentionDims) => {
  const Tq = d.Tq ?? d.T;
  return { q: d.B * Tq * d.H * d.dh, kv: d.B * d.T * (d.Hkv ?? d.H) * d.dh, scores: d.B * d.H * Tq * d.T, rows: d.B * d.H * Tq };
};

/** One attention dispatch's tensors: the dimensions, the named buffers and the label. */
type AttentionArgs<Bufs extends string> = { dims: AttentionDims; label: string } & Record<Bufs, GPUBuffer>;

export type AttnScoresArgs = AttentionArgs<'scores' | 'q' | 'k'>;
export type AttnSoftmaxArgs = AttentionArgs<'pattern' | 'scores'>;
export type AttnZArgs = AttentionArgs<'z' | 'pattern' | 'v'>;

/** scores [B, H, Tq, T] from q [B, Tq, H, dh] and k [B, T, Hkv, dh]. */
export function attnScores(gpu: Gpu, args: AttnScoresArgs, params: Params[]): Dispatch {
  const { dims: d, scores, q, k, label } = args;
  const n = sizes(d);
  return prepare(gpu, 'attn_scores', d, { a: [q, n.q], b: [k, n.kv], out: [scores, n.scores] }, n.scores, params, label);
}

/** pattern [B, H, Tq, T] = causal softmax of scores. */
export function attnSoftmax(gpu: Gpu, args: AttnSoftmaxArgs, params: Params[]): Dispatch {
  const { dims: d, pattern, scores, label } = args;
  const n = sizes(d);
  return prepare(gpu, 'attn_softmax', d, { a: [scores, n.scores], b: null, out: [pattern, n.scores] }, n.rows, params, label);
}

/** z [B, Tq, H, dh] = pattern @ v per head. */
export function attnZ(gpu: Gpu, args: AttnZArgs, params: Params[]): Dispatch {
  const { dims: d, z, pattern, v, label } = args;
  const n = sizes(d);
  return prepare(gpu, 'attn_z', d, { a: [pattern, n.scores], b: [v, n.kv], out: [z, n.q] }, n.q, params, label);
}
