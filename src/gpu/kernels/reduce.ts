/** Batch means for mean-ablation (`shaders/reduce.wgsl.ts`). CPU reference: `reduce.cpu.ts`. */
import { reduceSource } from '../../../shaders/reduce.wgsl.ts';
import type { Gpu } from '../device.ts';
import { itemConstants, itemGrid, Params, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';
import type { SiteLayout } from './intervene.ts';

export interface BatchMeanArgs {
  out: GPUBuffer; // [pooled ? 1 : pos, heads, F]
  /** the activation, addressed by `layout` */
  x: GPUBuffer;
  layout: SiteLayout;
  /** Average over positions too. */
  pooled: boolean;
  label: string;
}

/** out [pooled ? 1 : pos, heads, F] = mean over batch rows (and positions when pooled) of x. */
export function batchMean(gpu: Gpu, args: BatchMeanArgs, params: Params[]): Dispatch {
  const { out, x, layout, pooled, label } = args;
  const pipeline = gpu.pipelines.get('reduce', reduceSource(), 'batch_mean_v1', itemConstants(gpu));
  const L = layout;
  const u = new Params(gpu, [L.sb, L.sp, L.sh, L.F, L.batch, L.pos, L.heads, pooled ? 1 : 0], `${label} params`);
  params.push(u);
  const n = (pooled ? 1 : L.pos) * L.heads * L.F;
  const bindGroup = gpu.device.createBindGroup({
    label,
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: u.buffer } },
      { binding: 1, resource: bindWhole(gpu, x, L.batch * L.sb, `${label} input`) },
      { binding: 2, resource: bindWhole(gpu, out, n, `${label} output`) },
    ],
  });
  return { kind: 'dispatch', label, pipeline, bindGroup, workgroups: itemGrid(gpu, n) };
}
