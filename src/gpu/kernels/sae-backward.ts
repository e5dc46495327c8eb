/**
 * SAE and transcoder backward kernels (`shaders/sae-backward.wgsl.ts`): the decoder's, the
 * activation's mask, the encoder's (and a skip transcoder's W_skip), and the input copy's (with
 * its gain). The SAE's weights arrive in the forward's blocks (`EncoderChunk`, `DecoderChunk`),
 * one dispatch per block. CPU reference: `sae-backward.cpu.ts`.
 */
import { SAE_BACKWARD_WG, saeBackwardSource } from '../../../shaders/sae-backward.wgsl.ts';
import type { Gpu } from '../device.ts';
import { Params, grid1d, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';
import type { DecoderChunk, EncoderChunk } from './sae.ts';

type Entry = 'sae_decode_backward_v1' | 'sae_mask_backward_v1' | 'sae_encode_backward_v1' | 'sae_input_backward_v1';

function dispatch(
  gpu: Gpu,
  entry: Entry,
  fields: [rows: number, n: number, ld: number, f0: number, nf: number, acc: boolean, coef: number],
  bind: Array<[number, GPUBuffer, number]>,
  workgroups: [number, number, number],
  params: Params[],
  label: string,
  gain = false,
): Dispatch {
  const pipeline = gpu.pipelines.get('sae-backward', saeBackwardSource({ gain }), entry);
  const [rows, n, ld, f0, nf, acc, coef] = fields;
  const u = new Params(gpu, [rows, n, ld, f0, nf, acc ? 1 : 0, { f32: coef }], `${label} params`);
  params.push(u);
  const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: u.buffer } }];
  for (const [binding, buffer, floats] of bind) entries.push({ binding, resource: bindWhole(gpu, buffer, floats, `${label} binding ${binding}`) });
  const bindGroup = gpu.device.createBindGroup({ label, layout: pipeline.getBindGroupLayout(0), entries });
  return { kind: 'dispatch', label, pipeline, bindGroup, workgroups };
}

/** Workgroups for `cols` outputs along each of `rows` rows (64 per workgroup, rows folded over y and z). */
function rowGrid(gpu: Gpu, cols: number, rows: number): [number, number, number] {
  const y = Math.min(rows, gpu.limits.maxComputeWorkgroupsPerDimension);
  return [Math.ceil(cols / SAE_BACKWARD_WG), y, Math.ceil(rows / y)];
}

/** dActs [rows, d_sae] = g [rows, d_out] W_dec^T, one dispatch per decoder chunk (its feature columns). */
export function saeDecodeBackward(
  gpu: Gpu,
  a: { dActs: GPUBuffer; g: GPUBuffer; chunks: readonly DecoderChunk[]; rows: number; dSae: number; dOut: number; label: string },
  params: Params[],
): Dispatch[] {
  return a.chunks.map((c) =>
    dispatch(
      gpu,
      'sae_decode_backward_v1',
      [a.rows, a.dOut, a.dSae, c.row0, c.rows, false, 1],
      [
        [1, a.g, a.rows * a.dOut],
        [2, c.buffer, c.rows * a.dOut],
        [3, a.dActs, a.rows * a.dSae],
      ],
      rowGrid(gpu, c.rows, a.rows),
      params,
      `${a.label} W_dec[${c.row0}+${c.rows}]^T`,
    ),
  );
}

/** dPre = dActs where ref (the activation's output) is non-zero, else 0; n elements. */
export function saeMaskBackward(gpu: Gpu, a: { dPre: GPUBuffer; dActs: GPUBuffer; ref: GPUBuffer; n: number; label: string }, params: Params[]): Dispatch {
  return dispatch(
    gpu,
    'sae_mask_backward_v1',
    [0, a.n, 0, 0, 0, false, 1],
    [
      [1, a.dActs, a.n],
      [3, a.dPre, a.n],
      [4, a.ref, a.n],
    ],
    grid1d(gpu, a.n, SAE_BACKWARD_WG),
    params,
    a.label,
  );
}

/** A matrix [d_in, cols] whose columns are columns col0 .. of d (an encoder block, or W_skip with col0 0). */
export interface InputBlock {
  w: GPUBuffer;
  col0: number;
  cols: number;
}

/**
 * dx [rows, d_in] (+)= coef d W^T over blocks of W [d_in, cols] (d's columns col0 .. col0 + cols,
 * row stride `ld`): the first block writes (unless `accumulate`), the rest add.
 */
export function saeEncodeBackward(
  gpu: Gpu,
  a: { dx: GPUBuffer; d: GPUBuffer; ld: number; blocks: readonly InputBlock[]; rows: number; dIn: number; coef?: number; accumulate?: boolean; label: string },
  params: Params[],
): Dispatch[] {
  return a.blocks.map((b, i) =>
    dispatch(
      gpu,
      'sae_encode_backward_v1',
      [a.rows, a.dIn, a.ld, b.col0, b.cols, !!a.accumulate || i > 0, a.coef ?? 1],
      [
        [1, a.d, a.rows * a.ld],
        [2, b.w, a.dIn * b.cols],
        [3, a.dx, a.rows * a.dIn],
      ],
      rowGrid(gpu, a.dIn, a.rows),
      params,
      `${a.label} [${b.col0}+${b.cols}]^T`,
    ),
  );
}

/** The encoder's column blocks as input blocks. */
export const encoderBlocks = (chunks: readonly EncoderChunk[]): InputBlock[] => chunks.map((c) => ({ w: c.w, col0: c.col0, cols: c.cols }));

/** out [n] (+)= d, or d * gain per column of `width`: the SAE input copy's backward. */
export function saeInputBackward(gpu: Gpu, a: { out: GPUBuffer; d: GPUBuffer; gain?: GPUBuffer | null; n: number; width: number; accumulate?: boolean; label: string }, params: Params[]): Dispatch {
  const bind: Array<[number, GPUBuffer, number]> = [
    [1, a.d, a.n],
    [3, a.out, a.n],
  ];
  if (a.gain) bind.push([5, a.gain, a.width]);
  return dispatch(gpu, 'sae_input_backward_v1', [0, a.n, a.width, 0, 0, !!a.accumulate, 1], bind, grid1d(gpu, a.n, SAE_BACKWARD_WG), params, a.label, !!a.gain);
}
