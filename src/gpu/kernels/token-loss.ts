/** Cross-entropy over chosen targets, with its gradient (`shaders/token-loss.wgsl.ts`). CPU reference: `token-loss.cpu.ts`. */
import { tokenLossSource } from '../../../shaders/token-loss.wgsl.ts';
import type { Gpu } from '../device.ts';
import { Params, grid1d, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';

/** Invocations per logits row (a power of two: the reductions halve it). */
const WG = 64;

export interface TokenLossArgs {
  logits: GPUBuffer; // [R, V]
  targets: GPUBuffer; // [R] u32, NO_TARGET for unscored rows
  count: GPUBuffer; // [1] u32: scored rows
  /** [R, V] gradient output; absent: written over the logits. */
  dlogits?: GPUBuffer | null;
  lossPart: GPUBuffer; // [R]
  loss: GPUBuffer; // [1]: the mean over scored rows
  R: number;
  V: number;
  label: string;
}

/** The loss and gradient dispatches (one workgroup per row, then the mean). */
export function tokenLoss(gpu: Gpu, a: TokenLossArgs, params: Params[], standIn: GPUBuffer): Dispatch[] {
  const src = tokenLossSource();
  const inPlace = !a.dlogits;
  const u = new Params(gpu, [a.R, a.V, inPlace ? 1 : 0], `${a.label} params`);
  params.push(u);
  const rows = gpu.pipelines.get('token-loss', src, 'token_loss_v1', { WG });
  const sum = gpu.pipelines.get('token-loss', src, 'token_loss_sum_v1', { WG });
  const rowsGroup = gpu.device.createBindGroup({
    label: a.label,
    layout: rows.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: u.buffer } },
      { binding: 1, resource: bindWhole(gpu, a.logits, a.R * a.V, `${a.label} logits`) },
      { binding: 2, resource: bindWhole(gpu, a.targets, a.R, `${a.label} targets`) },
      { binding: 3, resource: bindWhole(gpu, a.count, 1, `${a.label} count`) },
      { binding: 4, resource: a.dlogits ? bindWhole(gpu, a.dlogits, a.R * a.V, `${a.label} dlogits`) : { buffer: standIn } },
      { binding: 5, resource: bindWhole(gpu, a.lossPart, a.R, `${a.label} loss per row`) },
    ],
  });
  const sumGroup = gpu.device.createBindGroup({
    label: `${a.label} sum`,
    layout: sum.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: u.buffer } },
      { binding: 3, resource: bindWhole(gpu, a.count, 1, `${a.label} count`) },
      { binding: 5, resource: bindWhole(gpu, a.lossPart, a.R, `${a.label} loss per row`) },
      { binding: 6, resource: bindWhole(gpu, a.loss, 1, `${a.label} loss`) },
    ],
  });
  return [
    { kind: 'dispatch', label: a.label, pipeline: rows, bindGroup: rowsGroup, workgroups: grid1d(gpu, a.R, 1) },
    { kind: 'dispatch', label: `${a.label} mean`, pipeline: sum, bindGroup: sumGroup, workgroups: [1, 1, 1] },
  ];
}
