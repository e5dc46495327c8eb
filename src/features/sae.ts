/**
 * A sparse autoencoder or transcoder on the GPU: its weights, the dispatches that encode and
 * decode rows of a hook's activation (used by `splice.ts` inside a model run), and `run`, which
 * does both outside any model (tests, the CLI, a figure's own use).
 *
 *   pre    = x @ W_enc + b_enc                          hook_sae_acts_pre   [rows, d_sae]
 *   acts   = act(pre)  (ReLU, JumpReLU, TopK)           hook_sae_acts_post  [rows, d_sae]
 *   recons = acts @ W_dec + b_dec (+ x @ W_skip)        hook_sae_recons     [rows, d_out]
 *
 * Weights are fp32 on the GPU (BF16 / F16 files are widened on load). W_enc is stored in column
 * blocks and W_dec in row blocks, each within one storage binding, so an SAE wider than a binding
 * still loads; `apply_b_dec_to_input` is folded into b_enc (b_enc - b_dec @ W_enc) on load.
 */
import type { Gpu } from '../gpu/device.ts';
import { OutOfMemoryError, formatBytes } from '../gpu/errors.ts';
import { WeightArena } from '../gpu/chunked.ts';
import { matmul } from '../gpu/kernels/matmul.ts';
import { saeActivation, saeCompact, saeDecode, saeEncode, type CompactActs, type DecoderChunk, type EncoderChunk } from '../gpu/kernels/sae.ts';
import { encoderBlocks, saeDecodeBackward, saeEncodeBackward } from '../gpu/kernels/sae-backward.ts';
import { submitSteps, type Dispatch, type Params } from '../gpu/recorder.ts';
import { Tensor, readBuffer } from '../gpu/tensor.ts';
import type { SaeConfig } from './sae-config.ts';
import type { HookName } from '../model/hook-points.ts';

/** An SAE's parameters on the CPU, fp32, in the layouts the kernels read. */
export interface HostSae {
  W_enc: Float32Array; // [d_in, d_sae]
  b_enc: Float32Array; // [d_sae]
  W_dec: Float32Array; // [d_sae, d_out]
  b_dec: Float32Array; // [d_out]
  threshold: Float32Array | null; // [d_sae], JumpReLU
  W_skip: Float32Array | null; // [d_in, d_out]: recons += x @ W_skip
}

/** Encoder columns per block: a multiple of 64 so every block's columns start on an aligned element. */
function encoderBlockCols(gpu: Gpu, dIn: number): number {
  const limit = Math.min(gpu.maxBinding, gpu.limits.maxBufferSize);
  return Math.max(64, Math.floor(limit / (dIn * 4) / 64) * 64);
}

/** Bytes the SAE's weights take on the GPU. */
export function saeBytes(cfg: SaeConfig): number {
  const { d_in, d_sae, d_out } = cfg;
  return 4 * (d_in * d_sae + d_sae + d_sae * d_out + d_out + (cfg.architecture === 'jumprelu' ? d_sae : 0) + (cfg.skip ? d_in * d_out : 0));
}

export class Sae {
  private destroyed = false;

  private constructor(
    readonly gpu: Gpu,
    readonly config: SaeConfig,
    private readonly enc: EncoderChunk[],
    private readonly dec: DecoderChunk[],
    private readonly bDec: GPUBuffer,
    private readonly threshold: GPUBuffer | null,
    private readonly wSkip: GPUBuffer | null,
    private readonly arena: WeightArena,
  ) {}

  /**
   * Uploads `host` after checking that it fits: shapes against the config, the total against the
   * memory budget, and W_skip against one binding. Nothing is left allocated if any step fails.
   */
  static async upload(gpu: Gpu, cfg: SaeConfig, host: HostSae): Promise<Sae> {
    const { d_in, d_sae, d_out } = cfg;
    const expect = (name: string, got: Float32Array | null, n: number) => {
      if (!got || got.length !== n) throw new Error(`${cfg.source}: ${name} has ${got?.length ?? 0} values, the config needs ${n}`);
    };
    expect('W_enc', host.W_enc, d_in * d_sae);
    expect('b_enc', host.b_enc, d_sae);
    expect('W_dec', host.W_dec, d_sae * d_out);
    expect('b_dec', host.b_dec, d_out);
    if (cfg.architecture === 'jumprelu') expect('threshold', host.threshold, d_sae);
    if (cfg.skip) expect('W_skip', host.W_skip, d_in * d_out);
    const bytes = saeBytes(cfg);
    if (bytes > gpu.pool.availableBytes) {
      throw new OutOfMemoryError(
        `the SAE ${cfg.source} (d_in ${d_in}, d_sae ${d_sae}) needs ${formatBytes(bytes)} of GPU memory but ${formatBytes(Math.max(0, gpu.pool.availableBytes))} is available`,
      );
    }
    const limit = Math.min(gpu.maxBinding, gpu.limits.maxBufferSize);
    if (cfg.skip && d_in * d_out * 4 > limit) throw new OutOfMemoryError(`${cfg.source}: W_skip (${formatBytes(d_in * d_out * 4)}) exceeds one binding (${formatBytes(limit)})`);
    if (d_in * 4 * 64 > limit || d_out * 4 > limit) throw new OutOfMemoryError(`${cfg.source}: rows of ${Math.max(d_in * 64, d_out)} floats exceed one binding (${formatBytes(limit)})`);

    let bEnc = host.b_enc;
    if (cfg.apply_b_dec_to_input) {
      // (x - b_dec) @ W_enc + b_enc = x @ W_enc + (b_enc - b_dec @ W_enc)
      const folded = new Float64Array(d_sae);
      for (let j = 0; j < d_sae; j++) folded[j] = host.b_enc[j];
      for (let i = 0; i < d_in; i++) {
        const b = host.b_dec[i];
        for (let j = 0; j < d_sae; j++) folded[j] -= b * host.W_enc[i * d_sae + j];
      }
      bEnc = Float32Array.from(folded);
    }
    const arena = new WeightArena(gpu);
    try {
      const parts = await gpu.guard(`uploading the SAE ${cfg.source}`, bytes, () => {
        const cols = encoderBlockCols(gpu, d_in);
        const enc: EncoderChunk[] = [];
        for (let c0 = 0; c0 < d_sae; c0 += cols) {
          const n = Math.min(cols, d_sae - c0);
          const block = new Float32Array(d_in * n); // W_enc[:, c0 .. c0 + n) as [d_in, n]
          for (let i = 0; i < d_in; i++) block.set(host.W_enc.subarray(i * d_sae + c0, i * d_sae + c0 + n), i * n);
          enc.push({ w: arena.upload(block, `W_enc[:, ${c0}+${n}]`), bias: arena.upload(bEnc.subarray(c0, c0 + n), `b_enc[${c0}+${n}]`), col0: c0, cols: n });
        }
        const dec = arena.uploadRows(host.W_dec, d_sae, d_out, 'W_dec');
        return {
          enc,
          dec,
          bDec: arena.upload(host.b_dec, 'b_dec'),
          threshold: cfg.architecture === 'jumprelu' ? arena.upload(host.threshold!, 'threshold') : null,
          wSkip: cfg.skip ? arena.upload(host.W_skip!, 'W_skip') : null,
        };
      });
      return new Sae(gpu, cfg, parts.enc, parts.dec, parts.bDec, parts.threshold, parts.wSkip, arena);
    } catch (e) {
      arena.destroy();
      throw e;
    }
  }

  /** The hook point the encoder reads (its config's name; a run refuses one its model lacks). */
  get hookName(): HookName {
    return this.config.hook_name as HookName;
  }

  /** The hook point the reconstruction replaces (the input hook for an SAE). */
  get hookNameOut(): HookName {
    return this.config.hook_name_out as HookName;
  }

  /** Bytes of GPU memory the weights use. */
  get weightBytes(): number {
    return this.arena.bytes;
  }

  /** Throws when `rows` rows of activations would not fit one binding. */
  checkRows(rows: number): void {
    this.assertLive();
    const bytes = rows * this.config.d_sae * 4;
    if (bytes > this.gpu.maxBinding) {
      throw new OutOfMemoryError(
        `${rows} positions x ${this.config.d_sae} features of ${this.config.source} need ${formatBytes(bytes)} in one binding; this adapter binds at most ${formatBytes(this.gpu.maxBinding)}: use fewer positions or a smaller batch`,
      );
    }
  }

  /** pre = x @ W_enc + b_enc for `rows` rows of x (from element `xStart`). */
  encodeDispatches(x: GPUBuffer, rows: number, pre: GPUBuffer, params: Params[], label: string, xStart = 0): Dispatch[] {
    this.checkRows(rows);
    return saeEncode(this.gpu, { pre, x, xStart, chunks: this.enc, rows, dIn: this.config.d_in, dSae: this.config.d_sae, label: `${label} encode` }, params);
  }

  /** acts = act(pre). */
  activationDispatch(pre: GPUBuffer, acts: GPUBuffer, rows: number, params: Params[], label: string): Dispatch {
    const c = this.config;
    return saeActivation(this.gpu, { kind: c.architecture, acts, pre, threshold: this.threshold, rows, dSae: c.d_sae, k: c.k ?? undefined, label: `${label} ${c.architecture}` }, params);
  }

  /** out = x @ W_skip (a skip transcoder's linear term), or nothing. */
  skipDispatches(x: GPUBuffer, rows: number, out: GPUBuffer, params: Params[], label: string): Dispatch[] {
    if (!this.wSkip) return [];
    return [matmul(this.gpu, { out, a: x, b: this.wSkip, M: rows, N: this.config.d_out, K: this.config.d_in, label: `${label} W_skip` }, params)];
  }

  /** Floats of the scratch `decodeDispatches` needs for `rows` rows: the compacted feature list and its counts. */
  compactFloats(rows: number): number[] {
    return [rows * this.config.d_sae, rows];
  }

  /**
   * recons = acts @ W_dec + b_dec (+ skip); with `error`, also err = x - recons. With `compact`
   * scratch (`compactFloats`), the active features are listed first and the decoder walks only
   * them (decode v2); without, every feature is visited (v1).
   */
  decodeDispatches(
    acts: GPUBuffer,
    rows: number,
    recons: GPUBuffer,
    params: Params[],
    label: string,
    opts: { skip?: GPUBuffer | null; error?: { x: GPUBuffer; err: GPUBuffer } | null; compact?: CompactActs | null } = {},
  ): Dispatch[] {
    const c = this.config;
    const compact = opts.compact ?? null;
    const pre = compact ? [saeCompact(this.gpu, { acts, out: compact, rows, dSae: c.d_sae, label: `${label} compact` }, params)] : [];
    return [
      ...pre,
      ...saeDecode(
        this.gpu,
        { recons, acts, chunks: this.dec, bDec: this.bDec, skip: opts.skip ?? null, error: opts.error ?? null, compact, rows, dSae: c.d_sae, n: c.d_out, label: `${label} decode` },
        params,
      ),
    ];
  }

  /**
   * Encodes and decodes `rows` rows of x [rows, d_in] outside any model: returns the
   * pre-activations, feature activations and reconstruction, as SAELens' `encode` / `decode`.
   */
  async run(x: Float32Array): Promise<{ pre: Float32Array; acts: Float32Array; recons: Float32Array }> {
    this.assertLive();
    const { d_in, d_sae, d_out } = this.config;
    if (x.length % d_in !== 0) throw new Error(`${this.config.source}: ${x.length} values are not whole rows of d_in = ${d_in}`);
    const rows = x.length / d_in;
    const params: Params[] = [];
    const xT = Tensor.from(this.gpu, x, [rows, d_in], 'sae input');
    const pre = Tensor.empty(this.gpu, [rows, d_sae], 'sae pre');
    const acts = Tensor.empty(this.gpu, [rows, d_sae], 'sae acts');
    const recons = Tensor.empty(this.gpu, [rows, d_out], 'sae recons');
    const skip = this.wSkip ? Tensor.empty(this.gpu, [rows, d_out], 'sae skip') : null;
    const list = Tensor.empty(this.gpu, [rows, d_sae], 'sae active features');
    const counts = Tensor.empty(this.gpu, [rows], 'sae active counts');
    try {
      const steps = [
        ...this.encodeDispatches(xT.buffer, rows, pre.buffer, params, 'sae'),
        this.activationDispatch(pre.buffer, acts.buffer, rows, params, 'sae'),
        ...(skip ? this.skipDispatches(xT.buffer, rows, skip.buffer, params, 'sae') : []),
        ...this.decodeDispatches(acts.buffer, rows, recons.buffer, params, 'sae', { skip: skip?.buffer ?? null, compact: { list: list.buffer, counts: counts.buffer } }),
      ];
      submitSteps(this.gpu, steps, `sae ${this.config.source}`);
      return { pre: await pre.read(), acts: await acts.read(), recons: await recons.read() };
    } finally {
      for (const t of [xT, pre, acts, recons, skip, list, counts]) t?.release();
      for (const p of params) p.destroy();
    }
  }

  /** dActs [rows, d_sae] = g [rows, d_out] W_dec^T: the decoder's backward (the features' gradient). */
  decodeBackwardDispatches(g: GPUBuffer, rows: number, dActs: GPUBuffer, params: Params[], label: string): Dispatch[] {
    const c = this.config;
    return saeDecodeBackward(this.gpu, { dActs, g, chunks: this.dec, rows, dSae: c.d_sae, dOut: c.d_out, label: `${label} decode backward` }, params);
  }

  /** dx [rows, d_in] (+)= coef dPre W_enc^T: the encoder's backward (bias folding changes nothing here). */
  encodeBackwardDispatches(dPre: GPUBuffer, rows: number, dx: GPUBuffer, params: Params[], label: string, o: { coef?: number; accumulate?: boolean } = {}): Dispatch[] {
    const c = this.config;
    return saeEncodeBackward(this.gpu, { dx, d: dPre, ld: c.d_sae, blocks: encoderBlocks(this.enc), rows, dIn: c.d_in, ...o, label: `${label} encode backward` }, params);
  }

  /** dx (+)= coef g W_skip^T (a skip transcoder's linear term), or nothing. */
  skipBackwardDispatches(g: GPUBuffer, rows: number, dx: GPUBuffer, params: Params[], label: string, o: { coef?: number; accumulate?: boolean } = {}): Dispatch[] {
    if (!this.wSkip) return [];
    const c = this.config;
    return saeEncodeBackward(this.gpu, { dx, d: g, ld: c.d_out, blocks: [{ w: this.wSkip, col0: 0, cols: c.d_out }], rows, dIn: c.d_in, ...o, label: `${label} W_skip backward` }, params);
  }

  /** A feature's decoder direction W_dec[feature] [d_out], read from the GPU (steering vectors). */
  async decoderRow(feature: number): Promise<Float32Array> {
    this.assertLive();
    const { d_sae, d_out } = this.config;
    if (!Number.isInteger(feature) || feature < 0 || feature >= d_sae) throw new Error(`feature ${feature} is out of range 0 .. ${d_sae - 1} of ${this.config.source}`);
    const chunk = this.dec.find((c) => feature >= c.row0 && feature < c.row0 + c.rows)!;
    return readBuffer(this.gpu, chunk.buffer, (feature - chunk.row0) * d_out * 4, d_out * 4);
  }

  assertLive(): void {
    if (this.destroyed) throw new Error(`the SAE ${this.config.source} was destroyed`);
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.arena.destroy();
  }
}
