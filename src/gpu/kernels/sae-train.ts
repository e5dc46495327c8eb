/**
 * SAE training kernels (`shaders/sae-train.wgsl.ts`): one prepared dispatch per call, binding the
 * buffers its entry point reads and writes. CPU reference: `sae-train.cpu.ts`.
 */
import { saeTrainSource } from '../../../shaders/sae-train.wgsl.ts';
import type { Gpu } from '../device.ts';
import { Params, grid1d, type Dispatch } from '../recorder.ts';
import type { SaeArchitecture } from './sae-train.cpu.ts';

export type SaeEntry =
  | 'sae_gather_v1'
  | 'sae_activate_v1'
  | 'sae_topk_v1'
  | 'sae_norms_v1'
  | 'sae_mean_v1'
  | 'sae_recon_grad_v1'
  | 'sae_sparsity_v1'
  | 'sae_aux_grad_v1'
  | 'sae_act_backward_v1'
  | 'sae_colsum_v1'
  | 'sae_dec_l1_v1'
  | 'sae_bias_dec_v1'
  | 'sae_threshold_grad_v1'
  | 'sae_fired_v1'
  | 'sae_dead_v1'
  | 'sae_reduce_v1';

/** The shader's bindings by name (its declarations, binding numbers 1 to 21). */
const BINDING = {
  clk: 1,
  store: 2,
  b_dec: 3,
  x: 4,
  xc: 5,
  pre: 6,
  log_threshold: 7,
  acts: 8,
  aux_sel: 9,
  since: 10,
  stats: 11,
  W_dec: 12,
  norms: 13,
  mean: 14,
  recon: 15,
  g_out: 16,
  row_stats: 17,
  d_in_a: 18,
  d_in_b: 19,
  W_enc: 20,
  metrics: 21,
} as const;

export type SaeBinding = keyof typeof BINDING;

export interface SaeKernelDims {
  B: number;
  D: number;
  S: number;
  /** Rows in the activation store. */
  N?: number;
  seed?: number;
  k?: number;
  architecture: SaeArchitecture;
  window?: number;
  bandwidth?: number;
}

/** Which buffers each entry point uses (the WGSL's static uses) and how many invocations it runs. */
const ENTRIES: Record<SaeEntry, { uses: SaeBinding[]; n: (d: SaeKernelDims, extra: Extra) => number }> = {
  sae_gather_v1: { uses: ['clk', 'store', 'b_dec', 'x', 'xc'], n: (d) => d.B * d.D },
  sae_activate_v1: { uses: ['pre', 'log_threshold', 'acts'], n: (d) => d.B * d.S },
  sae_topk_v1: { uses: ['pre', 'acts', 'aux_sel', 'since', 'stats'], n: (d) => d.B },
  sae_norms_v1: { uses: ['W_dec', 'norms'], n: (d) => d.S },
  sae_mean_v1: { uses: ['x', 'mean'], n: (d) => d.D },
  sae_recon_grad_v1: { uses: ['x', 'recon', 'mean', 'g_out', 'row_stats'], n: (d) => d.B },
  sae_sparsity_v1: { uses: ['acts', 'norms', 'pre', 'log_threshold', 'row_stats'], n: (d) => d.B },
  sae_aux_grad_v1: { uses: ['clk', 'stats', 'recon', 'x', 'd_in_a', 'g_out', 'row_stats'], n: (d) => d.B },
  sae_act_backward_v1: { uses: ['clk', 'acts', 'd_in_a', 'norms', 'aux_sel', 'd_in_b', 'g_out'], n: (d) => d.B * d.S },
  sae_colsum_v1: { uses: ['d_in_a', 'g_out'], n: (_d, e) => e.I! },
  sae_dec_l1_v1: { uses: ['clk', 'norms', 'g_out', 'd_in_b', 'W_dec'], n: (d) => d.S * d.D },
  sae_bias_dec_v1: { uses: ['W_enc', 'd_in_a', 'g_out', 'd_in_b'], n: (d) => d.D },
  sae_threshold_grad_v1: { uses: ['clk', 'log_threshold', 'pre', 'd_in_a', 'g_out'], n: (d) => d.S },
  sae_fired_v1: { uses: ['acts', 'since'], n: (d) => d.S },
  sae_dead_v1: { uses: ['since', 'stats'], n: () => 1 },
  sae_reduce_v1: { uses: ['row_stats', 'clk', 'stats', 'metrics'], n: () => 1 },
};

/** Per-call settings beyond the dimensions. */
export interface Extra {
  /** topk: 0 main, 1 AuxK. */
  mode?: number;
  /** colsum: add to the output instead of overwriting it. */
  accumulate?: boolean;
  /** colsum: columns. */
  I?: number;
}

const ARCH: Record<SaeArchitecture, number> = { standard: 0, topk: 1, jumprelu: 2 };

export interface SaeKernelArgs {
  entry: SaeEntry;
  dims: SaeKernelDims;
  /** What `entry` binds, by its WGSL name. */
  buffers: Partial<Record<SaeBinding, GPUBuffer>>;
  extra?: Extra;
  label: string;
}

/**
 * One SAE training dispatch. `buffers` names what `entry` binds (see ENTRIES; the WGSL names):
 * a missing one is an error naming it.
 */
export function saeKernel(gpu: Gpu, args: SaeKernelArgs, params: Params[]): Dispatch {
  const { entry, dims: d, buffers, label } = args;
  const extra = args.extra ?? {};
  const pipeline = gpu.pipelines.get('sae-train', saeTrainSource(), entry);
  const u = new Params(
    gpu,
    [d.B, d.D, d.S, d.N ?? 1, (d.seed ?? 0) >>> 0, d.k ?? 0, ARCH[d.architecture], d.window ?? 0, { f32: d.bandwidth ?? 0 }, extra.accumulate ? 1 : 0, extra.mode ?? 0, extra.I ?? 0],
    `${label} params`,
  );
  params.push(u);
  const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: u.buffer } }];
  for (const name of ENTRIES[entry].uses) {
    const buffer = buffers[name];
    if (!buffer) throw new Error(`${label}: ${entry} needs the ${name} buffer`);
    entries.push({ binding: BINDING[name], resource: { buffer } });
  }
  const bindGroup = gpu.device.createBindGroup({ label, layout: pipeline.getBindGroupLayout(0), entries });
  const n = ENTRIES[entry].n(d, extra);
  const single = entry === 'sae_dead_v1' || entry === 'sae_reduce_v1';
  return { kind: 'dispatch', label, pipeline, bindGroup, workgroups: single ? [1, 1, 1] : grid1d(gpu, n, 64) };
}
