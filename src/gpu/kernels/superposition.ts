/**
 * Toy Models of Superposition's forward and backward (`shaders/superposition.wgsl.ts`).
 * CPU reference: `superposition.cpu.ts`.
 */
import { superpositionSource } from '../../../shaders/superposition.wgsl.ts';
import type { Gpu } from '../device.ts';
import { matmul } from './matmul.ts';
import { Params, grid1d, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';
import type { TmsDims } from './superposition.cpu.ts';

/** The buffers of one toy model's step (shapes in `shaders/superposition.wgsl.ts`). */
export interface TmsBuffers {
  W: GPUBuffer; // [I, F, H]
  b: GPUBuffer; // [I, F]
  importance: GPUBuffer; // [I, F]
  x: GPUBuffer; // [I, B, F]
  h: GPUBuffer; // [I, B, H]
  y: GPUBuffer; // [I, B, F]
  lossPart: GPUBuffer; // [I, B]
  loss: GPUBuffer; // [I]
  /** Backward only. */
  dpre?: GPUBuffer; // [I, B, F]
  dh?: GPUBuffer; // [I, B, H]
  dW?: GPUBuffer; // [I, F, H]
  db?: GPUBuffer; // [I, F]
  /** v2: h and dh of each instance side by side, and dpre^T, x^T side by side. */
  hh?: GPUBuffer; // [I, 2B, H] (v2)
  xt?: GPUBuffer; // [I, F, 2B] (v2), [I, F, B] (v3)
  /** v3: W^T, h^T, dh^T and the two halves of dW^T. */
  wt?: GPUBuffer; // [I, H, F]
  ht?: GPUBuffer; // [I, H, B]
  dht?: GPUBuffer; // [I, H, B]
  dwa?: GPUBuffer; // [I, H, F]
  dwb?: GPUBuffer; // [I, H, F]
}

export type TmsVersion = 'v1' | 'v2' | 'v3';

/** v3 (products on the matmul) from this many weights per instance (F H); below, v1's few dispatches win. */
export const TMS_MATMUL_FROM = 64;

type Entry =
  | 'tms_forward_v1'
  | 'tms_backward_v1'
  | 'tms_weight_grad_v1'
  | 'tms_bias_grad_v1'
  | 'tms_loss_v1'
  | 'tms_relu_v2'
  | 'tms_transpose_w_v3'
  | 'tms_relu_v3'
  | 'tms_loss_v3'
  | 'tms_bias_grad_v3'
  | 'tms_dw_v3';

/** Binding number and element count of every buffer (the shader's declarations). */
function layout(d: TmsDims, entry: Entry): Record<keyof TmsBuffers, [number, number]> {
  const { B, I, F, H } = d;
  const v2 = entry.endsWith('_v2'); // xt holds dpre^T and x^T side by side
  const v3 = entry.endsWith('_v3'); // loss_part holds [I, F] sums
  return {
    W: [1, I * F * H],
    b: [2, I * F],
    importance: [3, I * F],
    x: [4, B * I * F],
    h: [5, B * I * H],
    y: [6, B * I * F],
    lossPart: [7, v3 ? I * F : B * I],
    dpre: [8, B * I * F],
    dh: [9, B * I * H],
    dW: [10, I * F * H],
    db: [11, I * F],
    loss: [12, I],
    hh: [0, 0],
    xt: [13, I * F * (v2 ? 2 * B : B)],
    wt: [14, I * H * F],
    ht: [0, 0],
    dht: [0, 0],
    dwa: [15, I * H * F],
    dwb: [16, I * H * F],
  };
}

/** What each entry point reads and writes, and how many invocations it runs. */
const USES: Record<Entry, { buffers: (keyof TmsBuffers)[]; n: (d: TmsDims) => number }> = {
  tms_forward_v1: { buffers: ['W', 'b', 'importance', 'x', 'h', 'y', 'lossPart'], n: (d) => d.B * d.I },
  tms_backward_v1: { buffers: ['W', 'importance', 'x', 'y', 'dpre', 'dh'], n: (d) => d.B * d.I },
  tms_weight_grad_v1: { buffers: ['x', 'h', 'dpre', 'dh', 'dW'], n: (d) => d.I * d.F * d.H },
  tms_bias_grad_v1: { buffers: ['dpre', 'db'], n: (d) => d.I * d.F },
  tms_loss_v1: { buffers: ['lossPart', 'loss'], n: (d) => d.I },
  tms_relu_v2: { buffers: ['b', 'importance', 'x', 'y', 'lossPart', 'dpre', 'xt'], n: (d) => d.B * d.I },
  tms_transpose_w_v3: { buffers: ['W', 'wt'], n: (d) => d.I * d.F * d.H },
  tms_relu_v3: { buffers: ['b', 'importance', 'x', 'y', 'lossPart', 'dpre', 'xt'], n: (d) => d.I * d.F },
  tms_loss_v3: { buffers: ['lossPart', 'loss'], n: (d) => d.I },
  tms_bias_grad_v3: { buffers: ['dpre', 'db'], n: (d) => d.I * d.F },
  tms_dw_v3: { buffers: ['dwa', 'dwb', 'dW'], n: (d) => d.I * d.F * d.H },
};

function dispatch(gpu: Gpu, entry: Entry, bufs: TmsBuffers, d: TmsDims, params: Params[], label: string): Dispatch {
  const pipeline = gpu.pipelines.get('superposition', superpositionSource(), entry);
  const u = new Params(gpu, [d.B, d.I, d.F, d.H], `${label} params`);
  params.push(u);
  const where = layout(d, entry);
  const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: u.buffer } }];
  for (const name of USES[entry].buffers) {
    const buffer = bufs[name];
    if (!buffer) throw new Error(`${label}: ${entry} needs the ${name} buffer`);
    const [binding, count] = where[name];
    entries.push({ binding, resource: bindWhole(gpu, buffer, count, `${label} ${name}`) });
  }
  const bindGroup = gpu.device.createBindGroup({ label, layout: pipeline.getBindGroupLayout(0), entries });
  return { kind: 'dispatch', label, pipeline, bindGroup, workgroups: grid1d(gpu, USES[entry].n(d), 64) };
}

/** One toy-model step's tensors: the named buffers, the dimensions and the label. */
export interface TmsArgs {
  bufs: TmsBuffers;
  dims: TmsDims;
  label: string;
}

/** Forward: h, y, and the instance losses (loss_part, then the `tms_loss_v1` reduction). v1 only. */
export function tmsForward(gpu: Gpu, args: TmsArgs, params: Params[]): Dispatch[] {
  const { bufs, dims: d, label } = args;
  return [dispatch(gpu, 'tms_forward_v1', bufs, d, params, `${label} forward`), dispatch(gpu, 'tms_loss_v1', bufs, d, params, `${label} loss`)];
}

/** Backward of sum_i loss[i]: dpre and dh per row, then dW and db reduced over the batch. v1 only. */
export function tmsBackward(gpu: Gpu, args: TmsArgs, params: Params[]): Dispatch[] {
  const { bufs, dims: d, label } = args;
  return [
    dispatch(gpu, 'tms_backward_v1', bufs, d, params, `${label} backward`),
    dispatch(gpu, 'tms_weight_grad_v1', bufs, d, params, `${label} dW`),
    dispatch(gpu, 'tms_bias_grad_v1', bufs, d, params, `${label} db`),
  ];
}

/**
 * v2's forward and backward in one list (they interleave per instance): the products on the
 * matmul, ReLU / loss / dpre in `tms_relu_v2`, db and the losses as v1. Needs `hh` and `xt`;
 * `h` and `dh` are not used (h lives in hh).
 */
export function tmsStepV2(gpu: Gpu, args: TmsArgs, params: Params[]): Dispatch[] {
  const { bufs, dims: d, label } = args;
  const { B, I, F, H } = d;
  if (!bufs.hh || !bufs.xt || !bufs.dpre || !bufs.dW || !bufs.db) throw new Error(`${label}: v2 needs the hh, xt, dpre, dW and db buffers`);
  const out: Dispatch[] = [];
  for (let i = 0; i < I; i++) {
    // hh_i[0:B] = x_i W_i   [B, F] [F, H]
    out.push(matmul(gpu, { out: bufs.hh, outStart: i * 2 * B * H, a: bufs.x, aStart: i * B * F, b: bufs.W, bStart: i * F * H, M: B, N: H, K: F, label: `${label} h ${i}` }, params));
    // pre_i = h_i W_i^T     [B, H] [F, H]^T, into y
    out.push(matmul(gpu, { out: bufs.y, outStart: i * B * F, a: bufs.hh, aStart: i * 2 * B * H, b: bufs.W, bStart: i * F * H, transB: true, M: B, N: F, K: H, label: `${label} pre ${i}` }, params));
  }
  out.push(dispatch(gpu, 'tms_relu_v2', bufs, d, params, `${label} relu`));
  for (let i = 0; i < I; i++) {
    // hh_i[B:2B] = dpre_i W_i, then dW_i = [dpre_i^T | x_i^T] [h_i ; dh_i]   [F, 2B] [2B, H]
    out.push(matmul(gpu, { out: bufs.hh, outStart: (i * 2 + 1) * B * H, a: bufs.dpre, aStart: i * B * F, b: bufs.W, bStart: i * F * H, M: B, N: H, K: F, label: `${label} dh ${i}` }, params));
    out.push(matmul(gpu, { out: bufs.dW, outStart: i * F * H, a: bufs.xt, aStart: i * F * 2 * B, b: bufs.hh, bStart: i * 2 * B * H, M: F, N: H, K: 2 * B, label: `${label} dW ${i}` }, params));
  }
  out.push(dispatch(gpu, 'tms_bias_grad_v1', bufs, d, params, `${label} db`), dispatch(gpu, 'tms_loss_v1', bufs, d, params, `${label} loss`));
  return out;
}

/**
 * v3's forward and backward: every product with a wide output (see the shader header). Needs
 * wt, ht, dht, dwa, dwb and xt ([I, F, B]); y and dpre hold the feature-major preT / yT and dpreT.
 */
export function tmsStepV3(gpu: Gpu, args: TmsArgs, params: Params[]): Dispatch[] {
  const { bufs, dims: d, label } = args;
  const { B, I, F, H } = d;
  const { wt, ht, dht, dwa, dwb, xt, dpre, dW } = bufs;
  if (!wt || !ht || !dht || !dwa || !dwb || !xt || !dpre || !dW || !bufs.db) throw new Error(`${label}: v3 needs the wt, ht, dht, dwa, dwb, xt, dpre, dW and db buffers`);
  const out: Dispatch[] = [dispatch(gpu, 'tms_transpose_w_v3', bufs, d, params, `${label} W^T`)];
  const mm = (name: string, i: number, a: GPUBuffer, aStart: number, b: GPUBuffer, bStart: number, o: GPUBuffer, M: number, N: number, K: number, transB: boolean) =>
    matmul(gpu, { out: o, outStart: i * M * N, a, aStart, b, bStart, M, N, K, transB, label: `${label} ${name} ${i}` }, params);
  for (let i = 0; i < I; i++) {
    out.push(mm('hT', i, wt, i * H * F, bufs.x, i * B * F, ht, H, B, F, true)); // WT_i [H, F] x_i^T ([B, F] as [N, K])
    out.push(mm('preT', i, bufs.W, i * F * H, ht, i * H * B, bufs.y, F, B, H, false)); // W_i [F, H] hT_i [H, B]
  }
  out.push(dispatch(gpu, 'tms_relu_v3', bufs, d, params, `${label} relu`));
  for (let i = 0; i < I; i++) {
    out.push(mm('dhT', i, wt, i * H * F, dpre, i * F * B, dht, H, B, F, false)); // WT_i [H, F] dpreT_i [F, B]
    out.push(mm('dWa', i, ht, i * H * B, dpre, i * F * B, dwa, H, F, B, true)); // hT_i [H, B] (dpreT_i [F, B] as [N, K])
    out.push(mm('dWb', i, dht, i * H * B, xt, i * F * B, dwb, H, F, B, true)); // dhT_i [H, B] (xT_i [F, B] as [N, K])
  }
  out.push(
    dispatch(gpu, 'tms_dw_v3', bufs, d, params, `${label} dW`),
    dispatch(gpu, 'tms_bias_grad_v3', bufs, d, params, `${label} db`),
    dispatch(gpu, 'tms_loss_v3', bufs, d, params, `${label} loss`),
  );
  return out;
}
