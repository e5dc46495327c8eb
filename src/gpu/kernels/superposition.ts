/**
 * Toy Models of Superposition's forward and backward (`shaders/superposition.wgsl.ts`).
 * CPU reference: `superposition.cpu.ts`.
 */
import { superpositionSource } from '../../../shaders/superposition.wgsl.ts';
import type { Gpu } from '../device.ts';
import { Params, grid1d, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';
import type { TmsDims } from './superposition.cpu.ts';

/** The buffers of one toy model's step (shapes in `shaders/superposition.wgsl.ts`). */
export interface TmsBuffers {
  W: GPUBuffer; // [I, F, H]
  b: GPUBuffer; // [I, F]
  importance: GPUBuffer; // [I, F]
  x: GPUBuffer; // [B, I, F]
  h: GPUBuffer; // [B, I, H]
  y: GPUBuffer; // [B, I, F]
  lossPart: GPUBuffer; // [B, I]
  loss: GPUBuffer; // [I]
  /** Backward only. */
  dpre?: GPUBuffer; // [B, I, F]
  dh?: GPUBuffer; // [B, I, H]
  dW?: GPUBuffer; // [I, F, H]
  db?: GPUBuffer; // [I, F]
}

type Entry = 'tms_forward_v1' | 'tms_backward_v1' | 'tms_weight_grad_v1' | 'tms_bias_grad_v1' | 'tms_loss_v1';

/** Binding number and element count of every buffer (the shader's declarations). */
function layout(d: TmsDims): Record<keyof TmsBuffers, [number, number]> {
  const { B, I, F, H } = d;
  return {
    W: [1, I * F * H], b: [2, I * F], importance: [3, I * F], x: [4, B * I * F], h: [5, B * I * H], y: [6, B * I * F],
    lossPart: [7, B * I], dpre: [8, B * I * F], dh: [9, B * I * H], dW: [10, I * F * H], db: [11, I * F], loss: [12, I],
  };
}

/** What each entry point reads and writes, and how many invocations it runs. */
const USES: Record<Entry, { buffers: (keyof TmsBuffers)[]; n: (d: TmsDims) => number }> = {
  tms_forward_v1: { buffers: ['W', 'b', 'importance', 'x', 'h', 'y', 'lossPart'], n: (d) => d.B * d.I },
  tms_backward_v1: { buffers: ['W', 'importance', 'x', 'y', 'dpre', 'dh'], n: (d) => d.B * d.I },
  tms_weight_grad_v1: { buffers: ['x', 'h', 'dpre', 'dh', 'dW'], n: (d) => d.I * d.F * d.H },
  tms_bias_grad_v1: { buffers: ['dpre', 'db'], n: (d) => d.I * d.F },
  tms_loss_v1: { buffers: ['lossPart', 'loss'], n: (d) => d.I },
};

function dispatch(gpu: Gpu, entry: Entry, bufs: TmsBuffers, d: TmsDims, params: Params[], label: string): Dispatch {
  const pipeline = gpu.pipelines.get('superposition', superpositionSource(), entry);
  const u = new Params(gpu, [d.B, d.I, d.F, d.H], `${label} params`);
  params.push(u);
  const where = layout(d);
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

/** Forward: h, y, and the instance losses (loss_part, then the `tms_loss_v1` reduction). */
export function tmsForward(gpu: Gpu, bufs: TmsBuffers, d: TmsDims, params: Params[], label: string): Dispatch[] {
  return [dispatch(gpu, 'tms_forward_v1', bufs, d, params, `${label} forward`), dispatch(gpu, 'tms_loss_v1', bufs, d, params, `${label} loss`)];
}

/** Backward of sum_i loss[i]: dpre and dh per row, then dW and db reduced over the batch. */
export function tmsBackward(gpu: Gpu, bufs: TmsBuffers, d: TmsDims, params: Params[], label: string): Dispatch[] {
  return [
    dispatch(gpu, 'tms_backward_v1', bufs, d, params, `${label} backward`),
    dispatch(gpu, 'tms_weight_grad_v1', bufs, d, params, `${label} dW`),
    dispatch(gpu, 'tms_bias_grad_v1', bufs, d, params, `${label} db`),
  ];
}
