/**
 * Matmul kernels: y = x @ W + b (projections) and logits = x @ W_E^T (the unembedding).
 * Source and versions: `shaders/matmul.wgsl.ts`. CPU reference: `matmul.cpu.ts`.
 */
import { V5_COL_VEC4S, V5_ROWS, matmulSource, v6WorkgroupWidth, type MatmulVariant } from '../../../shaders/matmul.wgsl.ts';
import type { Gpu } from '../device.ts';
import { Params, type Dispatch } from '../recorder.ts';
import { bindWindow } from '../window.ts';

export type MatmulVersion = 'v1' | 'v2' | 'v3' | 'v4' | 'v5' | 'v6';
/** The version the model runs (see the shader header for what each does). */
export const MATMUL_VERSION: MatmulVersion = 'v6';

/** Outputs per workgroup along (N, M) for each version (v6: for subgroup size S); must match the shader's tiling. */
function tile(version: MatmulVersion, S: number, narrow: boolean): [number, number] {
  switch (version) {
    case 'v1':
      return [16, 16];
    case 'v2':
      return [32, 32];
    case 'v3':
      return [64, 32];
    case 'v4':
      return [128, 8];
    case 'v5':
      return [16 * 4 * V5_COL_VEC4S, V5_ROWS];
    case 'v6':
      return [v6WorkgroupWidth(S, narrow) * 4 * V5_COL_VEC4S, V5_ROWS];
  }
}

/** Subgroup sizes v6 is built for: powers of two up to 64 (64 invocations fit any device's workgroup). */
const V6_SUBGROUP_SIZES = [1, 2, 4, 8, 16, 32, 64];

export interface MatmulArgs {
  /** Output buffer and the element where row 0, column 0 of this product lands. */
  out: GPUBuffer;
  outStart?: number;
  /** Row stride of the output (defaults to N). */
  ldc?: number;
  /** First output column written (a vocabulary chunk's first token). */
  colStart?: number;
  a: GPUBuffer; // [M, K]
  aStart?: number;
  b: GPUBuffer; // [K, N], or [N, K] with transB
  /** Element of `b` where B starts (a block of rows of a larger matrix). */
  bStart?: number;
  bias?: GPUBuffer | null; // [N]
  M: number;
  N: number;
  K: number;
  transB?: boolean;
  /** B holds f16 weights. */
  f16B?: boolean;
  /** Row m of A and of the output is row `rows[m]` ([M] u32): only the listed rows are computed. */
  rows?: GPUBuffer | null;
  /** With `rows`: how many rows A and the output hold (every index in the table is below it). */
  bufferRows?: number;
  /** Store the output transposed, [N, M] at row stride `ldc` (default M): no row table, no colStart. */
  transC?: boolean;
  /** Add the product into the output instead of overwriting it. */
  accumulate?: boolean;
  /** v6: one subgroup per workgroup (half v6's 256 columns per workgroup where subgroups are 8 wide). */
  narrow?: boolean;
  label: string;
}

/**
 * The version that runs when `version` is asked for on this device. v6 shares A loads across a
 * subgroup, so it needs a fixed subgroup size (a power of two up to 64: 8 on lavapipe, 32 on
 * NVIDIA and Apple GPUs); without one it is v5, the same tile without subgroups.
 */
export function matmulEntry(gpu: Gpu, version: MatmulVersion = MATMUL_VERSION): MatmulVersion {
  if (version !== 'v6') return version;
  const sg = gpu.subgroupSize;
  return sg !== null && V6_SUBGROUP_SIZES.includes(sg) ? 'v6' : 'v5';
}

/** Output columns one workgroup of the pinned matmul computes on this device (`narrow`: v6's one-subgroup workgroups). */
export function matmulTileColumns(gpu: Gpu, narrow = false): number {
  const entry = matmulEntry(gpu);
  return tile(entry, entry === 'v6' ? gpu.subgroupSize! : 0, narrow && entry === 'v6')[0];
}

/** Prepares one matmul dispatch; `params` collects its uniform buffer for the owner to destroy. */
export function matmul(gpu: Gpu, args: MatmulArgs, params: Params[], version: MatmulVersion = MATMUL_VERSION): Dispatch {
  const { M, N, K } = args;
  const transC = !!args.transC;
  const ldc = args.ldc ?? (transC ? M : N);
  const colStart = args.colStart ?? 0;
  if (args.rows && !(args.bufferRows! >= M)) throw new Error(`${args.label}: a row table needs bufferRows >= M`);
  if (transC && (args.rows || colStart)) throw new Error(`${args.label}: a transposed output takes no row table or column start`);
  const spanRows = args.rows ? args.bufferRows! : M; // rows the A and output windows cover
  const aw = bindWindow(gpu, args.a, args.aStart ?? 0, spanRows * K, `${args.label} input`);
  const bw = bindWindow(gpu, args.b, args.bStart ?? 0, K * N, `${args.label} weight`, args.f16B ? 2 : 4);
  // B as vec4s where the layout allows (v3's fast path); any version reads it correctly.
  const vec4B = !args.transB && !args.f16B && N % 4 === 0 && bw.elemOffset % 4 === 0;
  const entry = matmulEntry(gpu, version);
  const subgroupSize = entry === 'v6' ? gpu.subgroupSize! : 0;
  const narrow = entry === 'v6' && !!args.narrow;
  const variant: MatmulVariant = { transB: !!args.transB, bias: !!args.bias, f16B: !!args.f16B, vec4B, rows: !!args.rows, subgroupSize, narrow, transC, accC: !!args.accumulate };
  const pipeline = gpu.pipelines.get('matmul', matmulSource(variant), `matmul_${entry}`);
  const outStart = args.outStart ?? 0;
  // The output window spans M rows of stride ldc starting at column colStart (transposed: N rows of M).
  const cw = bindWindow(gpu, args.out, outStart, transC ? (N - 1) * ldc + M : (spanRows - 1) * ldc + colStart + N, `${args.label} output`);
  const u = new Params(gpu, [M, N, K, ldc, colStart, aw.elemOffset, cw.elemOffset, bw.elemOffset], `${args.label} params`);
  params.push(u);
  const entries: GPUBindGroupEntry[] = [
    { binding: 0, resource: { buffer: u.buffer } },
    { binding: 1, resource: aw.binding },
    { binding: 2, resource: bw.binding },
    { binding: 3, resource: cw.binding },
  ];
  if (args.bias) entries.push({ binding: 4, resource: { buffer: args.bias, offset: 0, size: N * 4 } });
  if (args.rows) entries.push({ binding: 5, resource: { buffer: args.rows, offset: 0, size: M * 4 } });
  const bindGroup = gpu.device.createBindGroup({ label: args.label, layout: pipeline.getBindGroupLayout(0), entries });
  const [tn, tm] = tile(entry, subgroupSize, narrow);
  return {
    kind: 'dispatch',
    label: args.label,
    pipeline,
    bindGroup,
    workgroups: [Math.ceil(N / tn), Math.ceil(M / tm), 1],
  };
}
