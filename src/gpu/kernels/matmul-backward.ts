/**
 * Matmul backward (`shaders/matmul-backward.wgsl.ts`): the input gradient, the weight gradient
 * and the bias gradient of the forward's `matmul`. CPU reference: `matmul-backward.cpu.ts`.
 */
import { DW_TILE, DX_TILE, matmulBackwardSource, type MatmulBackwardVariant } from '../../../shaders/matmul-backward.wgsl.ts';
import type { Gpu } from '../device.ts';
import { Params, itemConstants, itemGrid, type Dispatch } from '../recorder.ts';
import { bindWindow } from '../window.ts';
import { matmul, matmulTileColumns } from './matmul.ts';

export type MatmulBackwardVersion = 'v1' | 'v2';
/** The version the backward runs where the layout allows v2 (it falls back to v1 otherwise). */
export const MATMUL_BACKWARD_VERSION: MatmulBackwardVersion = 'v2';

/** Workgroup of the v2 tiles (16 x 1 invocations): must match `@workgroup_size(16, 1)`. */
const V2_GROUP = 16;

interface Common {
  /** Rows of the forward's product. */
  M: number;
  /** The forward's output width. */
  N: number;
  /** The forward's input width. */
  K: number;
  /** G = dL/dY, [M, N] at row stride `ldg` (default N) from element `gStart`. */
  g: GPUBuffer;
  gStart?: number;
  ldg?: number;
  /** Row m is buffer row rows[m] of X, G and dX ([M] u32); `bufferRows` rows are bound. */
  rows?: GPUBuffer | null;
  bufferRows?: number;
  /** Add into the output instead of overwriting it. */
  accumulate?: boolean;
  label: string;
}

export interface MatmulDxArgs extends Common {
  /** dX [M, K] (row stride `ldx`, default K) from element `dxStart`. */
  dx: GPUBuffer;
  dxStart?: number;
  ldx?: number;
  /** W [K, N], or [N, K] with `transW`. */
  w: GPUBuffer;
  transW?: boolean;
  f16W?: boolean;
}

export interface MatmulDwArgs extends Common {
  /** X [M, K] (row stride `ldx`, default K), the forward's input. */
  x: GPUBuffer;
  xStart?: number;
  ldx?: number;
  /** X' = X * gain + bias per column: the norm output the forward multiplied, from hook_normalized. */
  affine?: { gain: GPUBuffer; bias: GPUBuffer } | null;
  /** dW [K, N], or [N, K] with `transOut`, from element `dwStart`. */
  dw: GPUBuffer;
  dwStart?: number;
  transOut?: boolean;
}

export interface BiasGradArgs {
  M: number;
  N: number;
  g: GPUBuffer;
  gStart?: number;
  ldg?: number;
  rows?: GPUBuffer | null;
  bufferRows?: number;
  /** db [N] from element `dbStart`. */
  db: GPUBuffer;
  dbStart?: number;
  accumulate?: boolean;
  label: string;
}

const pad4 = (n: number) => Math.ceil(n / 4) * 4;

/**
 * Floats of G to bind: the v2 tiles read each row up to N rounded up to 4 (a padded gradient's
 * zeros, or the next chunk's columns, never used), so bind that much where the buffer has it.
 */
function gSpan(g: GPUBuffer, gStart: number, rows: number, ldg: number, N: number): { floats: number; padded: boolean } {
  const padded = (gStart + (rows - 1) * ldg + pad4(N)) * 4 <= g.size;
  return { floats: (rows - 1) * ldg + (padded ? pad4(N) : N), padded };
}

function dispatch(gpu: Gpu, label: string, variant: MatmulBackwardVariant, entry: string, entries: GPUBindGroupEntry[], workgroups: [number, number, number]): Dispatch {
  const perItem = entry === 'bias_grad_v1' || entry === 'transpose_v1' || entry === 'copy_block_v1';
  const pipeline = gpu.pipelines.get('matmul-backward', matmulBackwardSource(variant), entry, perItem ? itemConstants(gpu) : {});
  const bindGroup = gpu.device.createBindGroup({ label, layout: pipeline.getBindGroupLayout(0), entries });
  return { kind: 'dispatch', label, pipeline, bindGroup, workgroups };
}

/** dX (+)= G W^T (or G W with `transW`). */
export function matmulDx(gpu: Gpu, a: MatmulDxArgs, params: Params[], version: MatmulBackwardVersion = MATMUL_BACKWARD_VERSION): Dispatch {
  const { M, N, K } = a;
  const ldg = a.ldg ?? N;
  const ldx = a.ldx ?? K;
  const span = a.rows ? a.bufferRows! : M;
  if (a.rows && !(span >= M)) throw new Error(`${a.label}: a row table needs bufferRows >= M`);
  const gs = gSpan(a.g, a.gStart ?? 0, span, ldg, N);
  const gw = bindWindow(gpu, a.g, a.gStart ?? 0, gs.floats, `${a.label} gradient`);
  const ww = bindWindow(gpu, a.w, 0, K * N, `${a.label} weight`, a.f16W ? 2 : 4);
  const xw = bindWindow(gpu, a.dx, a.dxStart ?? 0, (span - 1) * ldx + K, `${a.label} input gradient`);
  // G as vec4 needs its rows and offset aligned; the transposed-weight tile can read it as scalars.
  const gVec4 = ldg % 4 === 0 && gs.padded && gw.elemOffset % 4 === 0;
  const aligned = !a.f16W && K % 4 === 0 && ldx % 4 === 0 && xw.elemOffset % 4 === 0 && ww.elemOffset % 4 === 0 && (a.transW || (N % 4 === 0 && gVec4));
  const v = version === 'v2' && aligned ? 'v2' : 'v1';
  const variant: MatmulBackwardVariant = { transW: !!a.transW, f16W: !!a.f16W, rows: !!a.rows, acc: !!a.accumulate, scalarG: v === 'v2' && !gVec4 };
  const u = new Params(gpu, [M, N, K, ldx, ldg, xw.elemOffset, gw.elemOffset, ww.elemOffset], `${a.label} params`);
  params.push(u);
  const entries: GPUBindGroupEntry[] = [
    { binding: 0, resource: { buffer: u.buffer } },
    { binding: 1, resource: gw.binding },
    { binding: 2, resource: ww.binding },
    { binding: 3, resource: xw.binding },
  ];
  if (a.rows) entries.push({ binding: 5, resource: { buffer: a.rows, offset: 0, size: M * 4 } });
  let groups: [number, number, number];
  if (v === 'v1') groups = [Math.ceil(K / 16), Math.ceil(M / 16), 1];
  else {
    const [tm, tk] = a.transW ? DX_TILE.transW : DX_TILE.plain;
    groups = [Math.ceil(K / (tk * V2_GROUP)), Math.ceil(M / tm), 1];
  }
  return dispatch(gpu, a.label, variant, `matmul_dx_${v}`, entries, groups);
}

/** dW (+)= X'^T G. */
export function matmulDw(gpu: Gpu, a: MatmulDwArgs, params: Params[], version: MatmulBackwardVersion = MATMUL_BACKWARD_VERSION): Dispatch {
  const { M, N, K } = a;
  const ldg = a.ldg ?? N;
  const ldx = a.ldx ?? K;
  const span = a.rows ? a.bufferRows! : M;
  if (a.rows && !(span >= M)) throw new Error(`${a.label}: a row table needs bufferRows >= M`);
  const gs = gSpan(a.g, a.gStart ?? 0, span, ldg, N);
  const gw = bindWindow(gpu, a.g, a.gStart ?? 0, gs.floats, `${a.label} gradient`);
  const xw = bindWindow(gpu, a.x, a.xStart ?? 0, (span - 1) * ldx + K, `${a.label} input`);
  const dw = bindWindow(gpu, a.dw, a.dwStart ?? 0, K * N, `${a.label} weight gradient`);
  const gVec4 = ldg % 4 === 0 && gs.padded && gw.elemOffset % 4 === 0;
  const aligned = K % 4 === 0 && K >= 4 && ldx % 4 === 0 && xw.elemOffset % 4 === 0;
  const v = version === 'v2' && aligned ? 'v2' : 'v1';
  const variant: MatmulBackwardVariant = { rows: !!a.rows, acc: !!a.accumulate, affine: !!a.affine, transOut: !!a.transOut, scalarG: v === 'v2' && !gVec4 };
  const u = new Params(gpu, [M, N, K, ldx, ldg, xw.elemOffset, gw.elemOffset, dw.elemOffset], `${a.label} params`);
  params.push(u);
  const entries: GPUBindGroupEntry[] = [
    { binding: 0, resource: { buffer: u.buffer } },
    { binding: 1, resource: gw.binding },
    { binding: 3, resource: xw.binding },
    { binding: 4, resource: dw.binding },
  ];
  if (a.rows) entries.push({ binding: 5, resource: { buffer: a.rows, offset: 0, size: M * 4 } });
  if (a.affine) {
    entries.push({ binding: 6, resource: { buffer: a.affine.gain, offset: 0, size: K * 4 } });
    entries.push({ binding: 7, resource: { buffer: a.affine.bias, offset: 0, size: K * 4 } });
  }
  const groups: [number, number, number] = v === 'v1' ? [Math.ceil(N / 16), Math.ceil(K / 16), 1] : [Math.ceil(N / (DW_TILE[1] * V2_GROUP)), Math.ceil(K / DW_TILE[0]), 1];
  return dispatch(gpu, a.label, variant, `matmul_dw_${v}`, entries, groups);
}

/** db (+)= column sums of G. */
export function biasGrad(gpu: Gpu, a: BiasGradArgs, params: Params[]): Dispatch {
  const { M, N } = a;
  const ldg = a.ldg ?? N;
  const span = a.rows ? a.bufferRows! : M;
  const gw = bindWindow(gpu, a.g, a.gStart ?? 0, (span - 1) * ldg + N, `${a.label} gradient`);
  const variant: MatmulBackwardVariant = { rows: !!a.rows, acc: !!a.accumulate };
  const dw = bindWindow(gpu, a.db, a.dbStart ?? 0, N, `${a.label} bias gradient`);
  const u = new Params(gpu, [M, N, 0, 0, ldg, dw.elemOffset, gw.elemOffset, 0], `${a.label} params`);
  params.push(u);
  const entries: GPUBindGroupEntry[] = [
    { binding: 0, resource: { buffer: u.buffer } },
    { binding: 1, resource: gw.binding },
    { binding: 3, resource: dw.binding },
  ];
  if (a.rows) entries.push({ binding: 5, resource: { buffer: a.rows, offset: 0, size: M * 4 } });
  return dispatch(gpu, a.label, variant, 'bias_grad_v1', entries, [Math.ceil(N / gpu.workgroupSize), 1, 1]);
}

export interface TransposeArgs {
  /** X [M, K] (row stride `ldx`, default K). */
  x: GPUBuffer;
  xStart?: number;
  ldx?: number;
  M: number;
  K: number;
  /** X' = X * gain + bias per column. */
  affine?: { gain: GPUBuffer; bias: GPUBuffer } | null;
  rows?: GPUBuffer | null;
  bufferRows?: number;
  /** XT [K, M]. */
  out: GPUBuffer;
  label: string;
}

/** XT [K, M] = X'^T: a weight gradient's left operand for the forward's matmul. */
export function transposeInput(gpu: Gpu, a: TransposeArgs, params: Params[]): Dispatch {
  return block(gpu, a, params, 'transpose_v1');
}

/** XB [M, K] = the column block of X's wider rows, contiguous (no affine). */
export function copyBlock(gpu: Gpu, a: Omit<TransposeArgs, 'affine'>, params: Params[]): Dispatch {
  return block(gpu, a, params, 'copy_block_v1');
}

function block(gpu: Gpu, a: TransposeArgs, params: Params[], entry: 'transpose_v1' | 'copy_block_v1'): Dispatch {
  const { M, K } = a;
  const ldx = a.ldx ?? K;
  const span = a.rows ? a.bufferRows! : M;
  const xw = bindWindow(gpu, a.x, a.xStart ?? 0, (span - 1) * ldx + K, `${a.label} input`);
  const ow = bindWindow(gpu, a.out, 0, M * K, `${a.label} output`);
  const variant: MatmulBackwardVariant = { rows: !!a.rows, affine: !!a.affine };
  const u = new Params(gpu, [M, 0, K, ldx, 0, xw.elemOffset, 0, ow.elemOffset], `${a.label} params`);
  params.push(u);
  const entries: GPUBindGroupEntry[] = [
    { binding: 0, resource: { buffer: u.buffer } },
    { binding: 3, resource: xw.binding },
    { binding: 4, resource: ow.binding },
  ];
  if (a.rows) entries.push({ binding: 5, resource: { buffer: a.rows, offset: 0, size: M * 4 } });
  if (a.affine) {
    entries.push({ binding: 6, resource: { buffer: a.affine.gain, offset: 0, size: K * 4 } });
    entries.push({ binding: 7, resource: { buffer: a.affine.bias, offset: 0, size: K * 4 } });
  }
  return dispatch(gpu, a.label, variant, entry, entries, itemGrid(gpu, M * K));
}

export interface InputGradArgs {
  /** dY [M, N], the projection's output gradient. */
  dy: GPUBuffer;
  /** W [K, N], as the forward multiplies it (y = x W). */
  w: GPUBuffer;
  f16W?: boolean;
  /** dX [M, K] (+)= dY W^T. */
  dx: GPUBuffer;
  M: number;
  N: number;
  K: number;
  accumulate?: boolean;
  /** [N, M] floats for dY transposed (the row-major path); null: always read W transposed. */
  scratch: GPUBuffer | null;
  label: string;
}

/**
 * A projection's input gradient dX (+)= dY W^T on the forward's matmul, one of two ways:
 *   - W read transposed (`transB`): each invocation reads 16 of W's rows at one k each, 128
 *     rows apart across a subgroup on lavapipe; about half the rate of W's own row-major reads,
 *     there, once M is a forward's 128 rows;
 *   - dX^T = W dY^T: dY (activation-sized) transposed into `scratch`, then W as the left operand
 *     in its own layout (v6 shares its rows across the subgroup, as the forward shares x's),
 *     dY^T as the right one, and the product stored transposed, so dX comes out [M, K]. One
 *     subgroup per workgroup (`narrow`) halves v6's column tile (128 on lavapipe) to fit M.
 * The second needs M to fill at least half of its column tiles (a 15-row forward's gradient would
 * leave 7/8 of each idle), fp32 W, and M a multiple of 4 (dY^T read as vec4s); else the first.
 * Both sum over n in order with fma: the same bits.
 */
export function inputGrad(gpu: Gpu, a: InputGradArgs, params: Params[]): Dispatch[] {
  const { M, N, K } = a;
  const cols = matmulTileColumns(gpu, true);
  const rowMajor = !!a.scratch && !a.f16W && M % 4 === 0 && 2 * M >= Math.ceil(M / cols) * cols;
  if (!rowMajor) return [matmul(gpu, { out: a.dx, a: a.dy, b: a.w, M, N: K, K: N, transB: true, f16B: a.f16W, accumulate: a.accumulate, label: a.label }, params)]; // (M, K)
  return [
    transposeInput(gpu, { x: a.dy, M, K: N, out: a.scratch!, label: `${a.label} output gradient transposed` }, params), // (N, M)
    matmul(gpu, { out: a.dx, a: a.w, b: a.scratch!, M: K, N: M, K: N, transC: true, narrow: true, accumulate: a.accumulate, label: a.label }, params), // (M, K), stored transposed
  ];
}
