/**
 * The intervention kernel (`shaders/intervene.wgsl.ts`): applies a table of entries to an
 * activation in place. CPU reference: `intervene.cpu.ts`.
 */
import { ENTRY_WORDS, interveneSource } from '../../../shaders/intervene.wgsl.ts';
import type { Gpu } from '../device.ts';
import { itemConstants, Params, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';

/** How an activation is addressed: index = b*sb + p*sp + h*sh + f, f < F. */
export interface SiteLayout {
  sb: number;
  sp: number;
  sh: number;
  F: number;
  /** Batch rows, positions and heads the activation has (heads = 1 without a head axis). */
  batch: number;
  pos: number;
  heads: number;
}

/** The most entries one dispatch can address (workgroup y); more are split across dispatches. */
const MAX_ENTRIES_PER_DISPATCH = 65535;

export interface InterveneArgs {
  x: GPUBuffer; // the activation, modified in place
  xFloats: number;
  layout: SiteLayout;
  entries: GPUBuffer; // table of ENTRY_WORDS-word records
  entry0: number;
  nEntries: number;
  /** Largest head span of any entry (sizes the x dimension of the dispatch, with F: an entry's feature range is at most F). */
  maxHeadSpan: number;
  src: GPUBuffer; // source values for add / replace (any buffer when unused)
  srcFloats: number;
  srcHeadStride: number;
  label: string;
}

export function intervene(gpu: Gpu, a: InterveneArgs, params: Params[]): Dispatch[] {
  const pipeline = gpu.pipelines.get('intervene', interveneSource(), 'intervene_v1', itemConstants(gpu));
  const out: Dispatch[] = [];
  for (let e0 = 0; e0 < a.nEntries; e0 += MAX_ENTRIES_PER_DISPATCH) {
    const n = Math.min(MAX_ENTRIES_PER_DISPATCH, a.nEntries - e0);
    const L = a.layout;
    const u = new Params(gpu, [L.sb, L.sp, L.sh, L.F, a.srcHeadStride, a.entry0 + e0, n], `${a.label} params`);
    params.push(u);
    const bindGroup = gpu.device.createBindGroup({
      label: a.label,
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: u.buffer } },
        { binding: 1, resource: bindWhole(gpu, a.x, a.xFloats, `${a.label} activation`) },
        { binding: 2, resource: bindWhole(gpu, a.entries, (a.entry0 + e0 + n) * ENTRY_WORDS, `${a.label} entries`) },
        { binding: 3, resource: bindWhole(gpu, a.src, Math.max(1, a.srcFloats), `${a.label} source`) },
      ],
    });
    out.push({
      kind: 'dispatch',
      label: a.label,
      pipeline,
      bindGroup,
      workgroups: [Math.max(1, Math.ceil((a.maxHeadSpan * L.F) / gpu.workgroupSize)), n, 1],
    });
  }
  return out;
}
