/**
 * SAE and transcoder kernels (`shaders/sae.wgsl.ts`): the encoder's product through the matmul
 * kernel, the activation (ReLU, JumpReLU, TopK), the sparse-aware decoder with its fused error
 * term, and the error alone. CPU reference: `sae.cpu.ts`.
 */
import { DECODE_MODE, SAE_WG, saeSource } from '../../../shaders/sae.wgsl.ts';
import type { Gpu } from '../device.ts';
import { Params, grid1d, type Dispatch } from '../recorder.ts';
import { bindWhole } from '../window.ts';
import { matmul } from './matmul.ts';

export type SaeActivationKind = 'relu' | 'jumprelu' | 'topk';

export type SaeDecodeVersion = 'v1' | 'v2';
/** The decoder the SAE runs: v2 loops over the compacted active features (see the shader header). */
export const SAE_DECODE_VERSION: SaeDecodeVersion = 'v2';

/** Where `saeCompact` writes the active features of each row: list [rows, d_sae] u32, counts [rows] u32. */
export interface CompactActs {
  list: GPUBuffer;
  counts: GPUBuffer;
}

/** A block of encoder columns: W_enc[:, col0 .. col0 + cols) as [d_in, cols], and its b_enc slice. */
export interface EncoderChunk {
  w: GPUBuffer;
  bias: GPUBuffer;
  col0: number;
  cols: number;
}

/** A block of decoder rows: W_dec[f0 .. f0 + rows) as [rows, d_out]. */
export interface DecoderChunk {
  buffer: GPUBuffer;
  row0: number;
  rows: number;
}

/** Storage buffers bound where a kernel's optional input or output is unused (one read-only, one writable: WebGPU forbids aliasing a writable binding). */
const dummies = new WeakMap<Gpu, { ro: GPUBuffer; rw: GPUBuffer }>();
function unused(gpu: Gpu): { ro: GPUBuffer; rw: GPUBuffer } {
  let d = dummies.get(gpu);
  if (!d) {
    const make = (label: string) => gpu.device.createBuffer({ size: 256, usage: 0x80 /* STORAGE */, label });
    d = { ro: make('sae unused input'), rw: make('sae unused output') };
    dummies.set(gpu, d);
  }
  return d;
}

const pipeline = (gpu: Gpu, entry: string) => gpu.pipelines.get('sae', saeSource(), entry);

/** pre [rows, d_sae] = x [rows, d_in] @ W_enc + b_enc, one matmul per encoder chunk (columns colStart.. of pre). */
export function saeEncode(
  gpu: Gpu,
  a: { pre: GPUBuffer; x: GPUBuffer; xStart?: number; chunks: readonly EncoderChunk[]; rows: number; dIn: number; dSae: number; label: string },
  params: Params[],
): Dispatch[] {
  return a.chunks.map((c) =>
    matmul(
      gpu,
      { out: a.pre, ldc: a.dSae, colStart: c.col0, a: a.x, aStart: a.xStart ?? 0, b: c.w, bias: c.bias, M: a.rows, N: c.cols, K: a.dIn, label: `${a.label} W_enc[:, ${c.col0}+${c.cols}]` },
      params,
    ),
  );
}

/** acts = act(pre) over [rows, d_sae]; `threshold` [d_sae] for JumpReLU, `k` for TopK. */
export function saeActivation(
  gpu: Gpu,
  a: { kind: SaeActivationKind; acts: GPUBuffer; pre: GPUBuffer; threshold?: GPUBuffer | null; rows: number; dSae: number; k?: number; label: string },
  params: Params[],
): Dispatch {
  const n = a.rows * a.dSae;
  if (a.kind === 'topk' && !(Number.isInteger(a.k) && a.k! >= 1 && a.k! <= a.dSae)) {
    throw new Error(`${a.label}: TopK needs 1 <= k <= d_sae (${a.dSae}), got ${a.k}`);
  }
  if (a.kind === 'jumprelu' && !a.threshold) throw new Error(`${a.label}: JumpReLU needs a threshold`);
  const pl = pipeline(gpu, `sae_${a.kind}_v1`);
  const u = new Params(gpu, [a.rows, a.kind === 'topk' ? a.dSae : n, a.dSae, 0, 0, 0, a.k ?? 0], `${a.label} params`);
  params.push(u);
  const entries: GPUBindGroupEntry[] = [
    { binding: 0, resource: { buffer: u.buffer } },
    { binding: 1, resource: bindWhole(gpu, a.pre, n, `${a.label} pre`) },
    { binding: 3, resource: bindWhole(gpu, a.acts, n, `${a.label} acts`) },
  ];
  if (a.kind === 'jumprelu') entries.push({ binding: 2, resource: bindWhole(gpu, a.threshold!, a.dSae, `${a.label} threshold`) });
  const bindGroup = gpu.device.createBindGroup({ label: a.label, layout: pl.getBindGroupLayout(0), entries });
  const workgroups = a.kind === 'topk' ? grid1d(gpu, a.rows, 1) : grid1d(gpu, n, SAE_WG);
  return { kind: 'dispatch', label: a.label, pipeline: pl, bindGroup, workgroups };
}

export interface DecodeArgs {
  /** [rows, n] reconstruction, written (and accumulated over decoder chunks). */
  recons: GPUBuffer;
  acts: GPUBuffer; // [rows, d_sae]
  chunks: readonly DecoderChunk[];
  bDec: GPUBuffer; // [n]
  /** [rows, n] added to the reconstruction (a transcoder's x @ W_skip), or null. */
  skip?: GPUBuffer | null;
  /** With `x` [rows, n]: also write err = x - recons into `err`. */
  error?: { x: GPUBuffer; err: GPUBuffer } | null;
  /** The compacted active features (`saeCompact`), which v2 reads. */
  compact?: CompactActs | null;
  rows: number;
  dSae: number;
  n: number;
  label: string;
}

/**
 * The indices of each row's non-zero activations, in index order, and their count (what decode v2
 * loops over). One workgroup per row.
 */
export function saeCompact(gpu: Gpu, a: { acts: GPUBuffer; out: CompactActs; rows: number; dSae: number; label: string }, params: Params[]): Dispatch {
  const pl = pipeline(gpu, 'sae_compact_v1');
  const u = new Params(gpu, [a.rows, 0, a.dSae, 0, 0, 0, 0], `${a.label} params`);
  params.push(u);
  const n = a.rows * a.dSae;
  const bindGroup = gpu.device.createBindGroup({
    label: a.label,
    layout: pl.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: u.buffer } },
      { binding: 4, resource: bindWhole(gpu, a.acts, n, `${a.label} acts`) },
      { binding: 14, resource: bindWhole(gpu, a.out.list, n, `${a.label} list`) },
      { binding: 15, resource: bindWhole(gpu, a.out.counts, a.rows, `${a.label} counts`) },
    ],
  });
  return { kind: 'dispatch', label: a.label, pipeline: pl, bindGroup, workgroups: grid1d(gpu, a.rows, 1) };
}

/**
 * recons = acts @ W_dec + b_dec (+ skip), one dispatch per decoder chunk; the last may write the
 * error. v2 (pinned) needs `compact`, filled by `saeCompact` from the same acts.
 */
export function saeDecode(gpu: Gpu, a: DecodeArgs, params: Params[], version: SaeDecodeVersion = a.compact ? SAE_DECODE_VERSION : 'v1'): Dispatch[] {
  if (version === 'v2' && !a.compact) throw new Error(`${a.label}: decode v2 reads the compacted activations (saeCompact)`);
  const pl = pipeline(gpu, `sae_decode_${version}`);
  const dummy = unused(gpu);
  const out: Dispatch[] = [];
  const rowsY = Math.min(a.rows, gpu.limits.maxComputeWorkgroupsPerDimension);
  a.chunks.forEach((c, i) => {
    let mode = 0;
    if (i === 0) mode |= DECODE_MODE.first | (a.skip ? DECODE_MODE.skip : 0);
    if (i === a.chunks.length - 1 && a.error) mode |= DECODE_MODE.error;
    const u = new Params(gpu, [a.rows, a.n, a.dSae, c.row0, c.rows, mode, 0], `${a.label} params`);
    params.push(u);
    const rn = a.rows * a.n;
    const bindGroup = gpu.device.createBindGroup({
      label: a.label,
      layout: pl.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: u.buffer } },
        { binding: 4, resource: bindWhole(gpu, a.acts, a.rows * a.dSae, `${a.label} acts`) },
        { binding: 5, resource: bindWhole(gpu, c.buffer, c.rows * a.n, `${a.label} W_dec`) },
        { binding: 6, resource: bindWhole(gpu, a.bDec, a.n, `${a.label} b_dec`) },
        { binding: 7, resource: a.skip ? bindWhole(gpu, a.skip, rn, `${a.label} skip`) : { buffer: dummy.ro } },
        { binding: 8, resource: a.error ? bindWhole(gpu, a.error.x, rn, `${a.label} x`) : { buffer: dummy.ro } },
        { binding: 9, resource: bindWhole(gpu, a.recons, rn, `${a.label} recons`) },
        { binding: 10, resource: a.error ? bindWhole(gpu, a.error.err, rn, `${a.label} error`) : { buffer: dummy.rw } },
        ...(version === 'v2'
          ? [
              { binding: 16, resource: bindWhole(gpu, a.compact!.list, a.rows * a.dSae, `${a.label} list`) },
              { binding: 17, resource: bindWhole(gpu, a.compact!.counts, a.rows, `${a.label} counts`) },
            ]
          : []),
      ],
    });
    out.push({
      kind: 'dispatch',
      label: `${a.label} W_dec[${c.row0}+${c.rows}]`,
      pipeline: pl,
      bindGroup,
      workgroups: [Math.ceil(a.n / SAE_WG), rowsY, Math.ceil(a.rows / rowsY)],
    });
  });
  return out;
}

/** err = x - r over n values. */
export function saeError(gpu: Gpu, a: { err: GPUBuffer; x: GPUBuffer; r: GPUBuffer; n: number; label: string }, params: Params[]): Dispatch {
  const pl = pipeline(gpu, 'sae_error_v1');
  const u = new Params(gpu, [0, a.n, 0, 0, 0, 0, 0], `${a.label} params`);
  params.push(u);
  const bindGroup = gpu.device.createBindGroup({
    label: a.label,
    layout: pl.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: u.buffer } },
      { binding: 8, resource: bindWhole(gpu, a.x, a.n, `${a.label} x`) },
      { binding: 10, resource: bindWhole(gpu, a.err, a.n, `${a.label} error`) },
      { binding: 11, resource: bindWhole(gpu, a.r, a.n, `${a.label} reconstruction`) },
    ],
  });
  return { kind: 'dispatch', label: a.label, pipeline: pl, bindGroup, workgroups: grid1d(gpu, a.n, SAE_WG) };
}

/** out = x, or x * gain per column ([width]): the copy an SAE encodes, so hooks on it leave the model's tensor alone. */
export function saeInput(gpu: Gpu, a: { out: GPUBuffer; x: GPUBuffer; gain?: GPUBuffer | null; n: number; width: number; label: string }, params: Params[]): Dispatch {
  const pl = pipeline(gpu, 'sae_input_v1');
  const u = new Params(gpu, [0, a.n, a.width, 0, 0, a.gain ? 1 : 0, 0], `${a.label} params`);
  params.push(u);
  const bindGroup = gpu.device.createBindGroup({
    label: a.label,
    layout: pl.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: u.buffer } },
      { binding: 8, resource: bindWhole(gpu, a.x, a.n, `${a.label} x`) },
      { binding: 12, resource: a.gain ? bindWhole(gpu, a.gain, a.width, `${a.label} gain`) : { buffer: unused(gpu).ro } },
      { binding: 13, resource: bindWhole(gpu, a.out, a.n, `${a.label} out`) },
    ],
  });
  return { kind: 'dispatch', label: a.label, pipeline: pl, bindGroup, workgroups: grid1d(gpu, a.n, SAE_WG) };
}
