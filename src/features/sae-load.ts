/**
 * Loading an SAE or transcoder: from a URL folder, a Hub path (`hf://owner/repo/folder[@rev]`), or
 * files in memory / picked by the reader (`blobModelSource`). The format is read from the files
 * present (see `sae-config.ts`):
 *
 *   cfg.json + sae_weights.safetensors        SAELens
 *   config.json + params.safetensors          Gemma Scope 2
 *   params.npz                                Gemma Scope (Gemma 2)
 *
 * Everything is read and checked (config, every tensor's shape and dtype, memory) before anything
 * is allocated on the GPU, and nothing is left allocated when loading fails.
 */
import type { Gpu } from '../gpu/device.ts';
import { NpzFile } from '../model/npz.ts';
import { SafetensorsFile } from '../model/safetensors.ts';
import { hubSource, parseHubPath, type HubOptions } from '../model/hub-source.ts';
import { urlModelSource, type ModelSource, type ProgressFn } from '../model/source.ts';
import { Sae, type HostSae } from './sae.ts';
import { SaeConfigError, gemmaScope2Config, gemmaScopeConfig, saelensConfig, type SaeConfig } from './sae-config.ts';

export interface SaeLoadOptions extends Omit<HubOptions, 'path' | 'revision'> {
  onProgress?: ProgressFn;
  /** For a Gemma Scope params.npz, which carries no config: the hook point it reads. */
  hookName?: string;
  /** …and, for a transcoder, the hook point it writes. */
  hookNameOut?: string;
}

/** Tensors by name from either container. */
interface Tensors {
  has(name: string): boolean;
  shape(name: string): number[];
  dtype(name: string): string;
  float32(name: string): Float32Array;
}

function fromSafetensors(f: SafetensorsFile): Tensors {
  return { has: (n) => f.has(n), shape: (n) => f.info(n).shape, dtype: (n) => f.info(n).dtype, float32: (n) => f.float32(n) };
}

function fromNpz(f: NpzFile): Tensors {
  return { has: (n) => f.has(n), shape: (n) => f.info(n).shape, dtype: (n) => f.info(n).descr, float32: (n) => f.float32(n) };
}

const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', '<f4', '<f2', '<f8', '>f4', '>f2', '>f8']);

function json(bytes: Uint8Array, where: string): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw new SaeConfigError(`${where} is not valid JSON: ${(e as Error).message}`);
  }
}

/** A source from a URL folder, an `hf://` path, or an existing `ModelSource`. */
export function saeSource(source: string | ModelSource, options: SaeLoadOptions = {}): ModelSource {
  if (typeof source !== 'string') return source;
  const hub = parseHubPath(source);
  if (hub) return hubSource(hub.repo, { ...options, path: hub.path, ...(hub.revision ? { revision: hub.revision } : {}) });
  return urlModelSource(source, options.fetch);
}

/** Reads the config and the host weights (no GPU work). */
export async function readSae(source: string | ModelSource, options: SaeLoadOptions = {}): Promise<{ config: SaeConfig; host: HostSae }> {
  const src = saeSource(source, options);
  const where = src.describe;
  const onProgress = options.onProgress;
  let config: SaeConfig;
  let t: Tensors;
  let names: { W_enc: string; b_enc: string; W_dec: string; b_dec: string; threshold: string; W_skip: string | null; skipTransposed: boolean };

  const cfgBytes = await src.file('cfg.json', onProgress);
  if (cfgBytes) {
    config = saelensConfig(json(cfgBytes, `${where}/cfg.json`), `${where}/cfg.json`);
    const w = await src.file('sae_weights.safetensors', onProgress);
    if (!w) throw new SaeConfigError(`${where} has cfg.json but no sae_weights.safetensors`);
    const file = new SafetensorsFile(w, `${where}/sae_weights.safetensors`);
    const scaling = file.has('scaling_factor') ? file.float32('scaling_factor') : null;
    if (scaling && scaling.some((v) => v !== 1)) throw new SaeConfigError(`${where}: a scaling_factor other than 1 (finetuning scaling) is not supported`);
    t = fromSafetensors(file);
    names = { W_enc: 'W_enc', b_enc: 'b_enc', W_dec: 'W_dec', b_dec: 'b_dec', threshold: 'threshold', W_skip: config.skip ? 'W_skip' : null, skipTransposed: true };
    // Some JumpReLU SAEs store log_threshold (SAELens' training form); exp() gives the threshold.
    if (config.architecture === 'jumprelu' && !file.has('threshold') && file.has('log_threshold')) {
      const tt = t;
      t = {
        ...tt,
        has: (n) => n === 'threshold' || tt.has(n),
        shape: (n) => tt.shape(n === 'threshold' ? 'log_threshold' : n),
        dtype: (n) => tt.dtype(n === 'threshold' ? 'log_threshold' : n),
        float32: (n) => (n === 'threshold' ? tt.float32('log_threshold').map(Math.exp) : tt.float32(n)),
      };
    }
  } else {
    const gs2 = await src.file('config.json', onProgress);
    if (gs2) {
      const p = await src.file('params.safetensors', onProgress);
      if (!p) throw new SaeConfigError(`${where} has config.json but no params.safetensors (a Gemma Scope 2 folder holds both)`);
      const file = new SafetensorsFile(p, `${where}/params.safetensors`);
      for (const n of ['w_enc', 'w_dec']) if (!file.has(n)) throw new SaeConfigError(`${where}/params.safetensors has no "${n}" (tensors: ${file.names.join(', ')})`);
      const skip = file.has('affine_skip_connection');
      config = gemmaScope2Config(json(gs2, `${where}/config.json`), { w_enc: file.info('w_enc').shape, w_dec: file.info('w_dec').shape, skip }, `${where}/config.json`);
      t = fromSafetensors(file);
      names = { W_enc: 'w_enc', b_enc: 'b_enc', W_dec: 'w_dec', b_dec: 'b_dec', threshold: 'threshold', W_skip: skip ? 'affine_skip_connection' : null, skipTransposed: false };
    } else {
      const npz = await src.file('params.npz', onProgress);
      if (!npz) {
        throw new SaeConfigError(`no SAE in ${where}: expected cfg.json + sae_weights.safetensors (SAELens), config.json + params.safetensors (Gemma Scope 2) or params.npz (Gemma Scope)`);
      }
      const file = await NpzFile.read(npz, `${where}/params.npz`);
      for (const n of ['W_enc', 'W_dec']) if (!file.has(n)) throw new SaeConfigError(`${where}/params.npz has no "${n}" (arrays: ${file.names.join(', ')})`);
      config = gemmaScopeConfig({ W_enc: file.info('W_enc').shape, W_dec: file.info('W_dec').shape }, where, options.hookName, options.hookNameOut);
      t = fromNpz(file);
      names = { W_enc: 'W_enc', b_enc: 'b_enc', W_dec: 'W_dec', b_dec: 'b_dec', threshold: 'threshold', W_skip: null, skipTransposed: false };
    }
  }

  const { d_in, d_sae, d_out } = config;
  const get = (name: string, shape: number[]): Float32Array => {
    if (!t.has(name)) throw new SaeConfigError(`${where}: tensor "${name}" is missing (expected shape [${shape.join(', ')}])`);
    const got = t.shape(name);
    if (got.length !== shape.length || got.some((v, i) => v !== shape[i])) {
      throw new SaeConfigError(`${where}: tensor "${name}" has shape [${got.join(', ')}], the config needs [${shape.join(', ')}]`);
    }
    const dt = t.dtype(name);
    if (!FLOAT_DTYPES.has(dt)) throw new SaeConfigError(`${where}: tensor "${name}" has dtype ${dt}; SAE weights must be F32, F16 or BF16 (or float64, rounded)`);
    return t.float32(name);
  };
  let W_skip: Float32Array | null = null;
  if (names.W_skip) {
    const raw = get(names.W_skip, names.skipTransposed ? [d_out, d_in] : [d_in, d_out]);
    // SAELens stores W_skip [d_out, d_in] and adds x @ W_skip.T: keep [d_in, d_out] for x @ W.
    W_skip = names.skipTransposed ? transpose(raw, d_out, d_in) : raw;
  }
  const host: HostSae = {
    W_enc: get(names.W_enc, [d_in, d_sae]),
    b_enc: get(names.b_enc, [d_sae]),
    W_dec: get(names.W_dec, [d_sae, d_out]),
    b_dec: get(names.b_dec, [d_out]),
    threshold: config.architecture === 'jumprelu' ? get(names.threshold, [d_sae]) : null,
    W_skip,
  };
  return { config, host };
}

function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = m[r * cols + c];
  return out;
}

/**
 * Loads an SAE or transcoder onto the GPU.
 *
 *   await loadSae(gpu, 'https://example.org/saes/blocks.3.hook_resid_post/')
 *   await loadSae(gpu, 'hf://google/gemma-scope-2-270m-pt/resid_post/layer_12_width_16k_l0_medium')
 *   await loadSae(gpu, blobModelSource({ 'cfg.json': file1, 'sae_weights.safetensors': file2 }))
 */
export async function loadSae(gpu: Gpu, source: string | ModelSource, options: SaeLoadOptions = {}): Promise<Sae> {
  const { config, host } = await readSae(source, options);
  return Sae.upload(gpu, config, host);
}
