/**
 * Optimizer updates (`shaders/optim.wgsl.ts`), one dispatch per parameter tensor, reading the
 * step's learning rate, bias corrections and clipping factor from the training clock.
 * CPU references: `optim.cpu.ts`.
 */
import { optimSource } from '../../../shaders/optim.wgsl.ts';
import type { Gpu } from '../device.ts';
import { Params, grid1d, type Dispatch } from '../recorder.ts';
import { bindWhole, bindWindow } from '../window.ts';
import type { AdamWHyper, SgdHyper } from './optim.cpu.ts';

export interface UpdateTarget {
  /** The parameter, updated in place, starting at element `paramStart`. */
  param: GPUBuffer;
  paramStart?: number;
  /** Its gradient, starting at element `gradStart`. */
  grad: GPUBuffer;
  gradStart?: number;
  /** Elements. */
  n: number;
  /** The training clock (`clock.ts`). */
  clock: GPUBuffer;
  label: string;
}

function bindings(gpu: Gpu, t: UpdateTarget) {
  const pw = bindWindow(gpu, t.param, t.paramStart ?? 0, t.n, `${t.label} parameter`);
  const gw = bindWindow(gpu, t.grad, t.gradStart ?? 0, t.n, `${t.label} gradient`);
  return { pw, gw };
}

export interface AdamWArgs extends UpdateTarget {
  m: GPUBuffer; // [n] exp_avg
  v: GPUBuffer; // [n] exp_avg_sq
  hyper: AdamWHyper;
}

/** AdamW on one tensor; `m`, `v` ([n] each) are its exp_avg and exp_avg_sq. */
export function adamw(gpu: Gpu, args: AdamWArgs, params: Params[]): Dispatch {
  const { m, v, hyper: h } = args;
  const t: UpdateTarget = args;
  const pipeline = gpu.pipelines.get('optim', optimSource(), 'adamw_v1');
  const { pw, gw } = bindings(gpu, t);
  const u = new Params(
    gpu,
    [t.n, pw.elemOffset, gw.elemOffset, 0, { f32: h.weightDecay }, { f32: h.beta1 }, { f32: h.beta2 }, { f32: 1 - h.beta1 }, { f32: 1 - h.beta2 }, { f32: h.eps }],
    `${t.label} params`,
  );
  params.push(u);
  const bindGroup = gpu.device.createBindGroup({
    label: t.label,
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: u.buffer } },
      { binding: 1, resource: pw.binding },
      { binding: 2, resource: gw.binding },
      { binding: 3, resource: bindWhole(gpu, m, t.n, `${t.label} exp_avg`) },
      { binding: 4, resource: bindWhole(gpu, v, t.n, `${t.label} exp_avg_sq`) },
      { binding: 5, resource: { buffer: t.clock } },
    ],
  });
  return { kind: 'dispatch', label: t.label, pipeline, bindGroup, workgroups: grid1d(gpu, t.n, 64) };
}

export interface SgdArgs extends UpdateTarget {
  /** [n]: the momentum buffer (without momentum: any buffer but the parameter's or gradient's, never touched). */
  buf: GPUBuffer;
  hyper: SgdHyper;
}

/** SGD on one tensor; `buf` ([n]) is its momentum buffer. */
export function sgd(gpu: Gpu, args: SgdArgs, params: Params[]): Dispatch {
  const { buf, hyper: h } = args;
  const t: UpdateTarget = args;
  const pipeline = gpu.pipelines.get('optim', optimSource(), 'sgd_v1');
  const { pw, gw } = bindings(gpu, t);
  const u = new Params(
    gpu,
    [t.n, pw.elemOffset, gw.elemOffset, h.nesterov ? 1 : 0, { f32: h.weightDecay }, { f32: h.momentum }, { f32: 0 }, { f32: 1 - h.dampening }, { f32: 0 }, { f32: 0 }],
    `${t.label} params`,
  );
  params.push(u);
  // The momentum buffer is statically used (inside the momentum branch), so it is always bound.
  const bindGroup = gpu.device.createBindGroup({
    label: t.label,
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: u.buffer } },
      { binding: 1, resource: pw.binding },
      { binding: 2, resource: gw.binding },
      { binding: 3, resource: { buffer: buf } },
      { binding: 5, resource: { buffer: t.clock } },
    ],
  });
  return { kind: 'dispatch', label: t.label, pipeline, bindGroup, workgroups: grid1d(gpu, t.n, 64) };
}
