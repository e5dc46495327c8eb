/**
 * The logit lens on the GPU: final LayerNorm (gain and bias, statistics of each row itself) and
 * the unembedding applied to any residual-stream rows, e.g. a layer's resid_pre.
 */
import type { Gpu } from '../gpu/device.ts';
import { layernorm } from '../gpu/kernels/layernorm.ts';
import { submitSteps, type Dispatch, type Params } from '../gpu/recorder.ts';
import { Tensor, readBuffer } from '../gpu/tensor.ts';
import type { ModelConfig } from './config.ts';
import type { GpuWeights } from './gpu-weights.ts';
import { planUnembed } from './unembed.ts';
import { f16ToNumber } from './safetensors.ts';

/** logits [rows, V] for residual rows [rows, C]; `applyLn: false` unembeds the rows as they are. */
export async function logitLens(gpu: Gpu, cfg: ModelConfig, w: GpuWeights, resid: Float32Array, applyLn = true): Promise<Float32Array> {
  const C = cfg.d_model;
  if (resid.length % C !== 0) throw new Error(`logit lens: ${resid.length} values are not whole rows of d_model = ${C}`);
  const rows = resid.length / C;
  const params: Params[] = [];
  const x = Tensor.from(gpu, resid, [rows, C], 'logit lens input');
  const normed = Tensor.empty(gpu, [rows, C], 'logit lens ln_final');
  const scale = Tensor.empty(gpu, [rows], 'logit lens scale');
  const logits = Tensor.empty(gpu, [rows, cfg.d_vocab], 'logit lens logits');
  try {
    const steps: Dispatch[] = [];
    if (applyLn) {
      steps.push(layernorm(gpu, { out: normed.buffer, scale: scale.buffer, x: x.buffer, w: w.lnf_w, b: w.lnf_b, rows, C, eps: cfg.eps, label: 'logit lens ln_final' }, params));
    }
    steps.push(...planUnembed(gpu, logits.buffer, applyLn ? normed.buffer : x.buffer, w.W_U_rows, rows, C, cfg.d_vocab, params, w.f16, w.b_U));
    submitSteps(gpu, steps, 'logit lens');
    return await logits.read();
  } finally {
    for (const t of [x, normed, scale, logits]) t.release();
    for (const p of params) p.destroy();
  }
}

/** The unembedding column W_U[:, token] (a row of the unembedding rows), read from the GPU. */
export async function unembedColumn(gpu: Gpu, cfg: ModelConfig, w: GpuWeights, token: number): Promise<Float32Array> {
  if (!Number.isInteger(token) || token < 0 || token >= cfg.d_vocab) throw new Error(`token ${token} is out of range 0 .. ${cfg.d_vocab - 1}`);
  const chunk = w.W_U_rows.find((c) => token >= c.row0 && token < c.row0 + c.rows)!;
  const C = cfg.d_model;
  if (!w.f16) return readBuffer(gpu, chunk.buffer, (token - chunk.row0) * C * 4, C * 4);
  // f16 rows: read the half words (4-byte aligned span around them) and widen.
  const start = (token - chunk.row0) * C * 2;
  const aligned = start - (start % 4);
  const raw = await readBuffer(gpu, chunk.buffer, aligned, start - aligned + C * 2);
  const halves = new Uint16Array(raw.buffer, start - aligned, C);
  return Float32Array.from(halves, (h) => f16ToNumber(h));
}
