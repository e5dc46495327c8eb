/**
 * What `patchbay ablate` and `patchbay patch` share: open the model argument, check the
 * command's options against the model's config before the GPU is touched (so a head or token
 * out of range fails fast, as other usage errors do), load, run, and free everything.
 */
import { acquireGpu, type Gpu } from '../gpu/device.ts';
import type { ModelConfig } from '../model/config.ts';
import { loadModel } from '../hooks/load.ts';
import type { Model } from '../hooks/model.ts';
import { normalizeConfig } from '../model/normalize-config.ts';
import { TokenInputError, validateTokens } from '../model/tokens.ts';
import { UsageError } from './args.ts';
import type { ModelSource } from '../model/source.ts';
import type { Processing } from '../model/processing.ts';
import { nodeModelSource } from './node-source.ts';

/** `source`, with `config.json` read at most once (it is read early for the checks, then by the loader). */
function memoizeConfig(source: ModelSource): ModelSource {
  let config: Promise<Uint8Array | null> | undefined;
  return {
    describe: source.describe,
    file(name, onProgress) {
      if (name !== 'config.json') return source.file(name, onProgress);
      config ??= source.file(name, onProgress);
      return config;
    },
    // Weights are read by range where the source can.
    ...(source.open ? { open: source.open.bind(source) } : {}),
  };
}

/**
 * The normalized config, or undefined when it cannot be read or parsed: the loader then reports
 * that problem in its own words, and the checks run after loading instead.
 */
export async function peekConfig(source: ModelSource): Promise<ModelConfig | undefined> {
  try {
    const bytes = await source.file('config.json');
    return bytes ? normalizeConfig(JSON.parse(new TextDecoder().decode(bytes))) : undefined;
  } catch {
    return undefined;
  }
}

export interface Session {
  model: Model;
  gpu: Gpu;
  source: ModelSource;
  /** Milliseconds spent loading the weights. */
  loadMs: number;
}

/**
 * Opens `modelArg`, runs `check` on its config (throw a UsageError to reject the options), then
 * loads it and runs `fn`. The model and the device are freed however `fn` ends.
 */
export async function withModel<T>(
  modelArg: string,
  check: (config: ModelConfig) => void,
  fn: (s: Session) => Promise<T>,
  options: { f16?: boolean | 'auto'; processing?: Processing } = {},
): Promise<T> {
  const source = memoizeConfig(await nodeModelSource(modelArg));
  const early = await peekConfig(source);
  if (early) check(early);
  const gpu = await acquireGpu();
  let model: Model | undefined;
  try {
    const t0 = performance.now();
    model = await loadModel(gpu, source, { f16: options.f16, processing: options.processing });
    const loadMs = performance.now() - t0;
    if (!early) check(model.config);
    return await fn({ model, gpu, source, loadMs });
  } finally {
    model?.destroy();
    gpu.destroy();
  }
}

/**
 * Token ids from the command line checked against the model (vocabulary, context length), as a
 * usage error naming the option: a typo in --ids is the user's to fix, like any other option.
 */
export function checkTokenRows(rows: readonly (readonly number[])[], c: ModelConfig, flag: string): void {
  try {
    validateTokens(rows, c);
  } catch (e) {
    if (e instanceof TokenInputError) throw new UsageError(`${flag}: ${e.message}`);
    throw e;
  }
}

/** "GPT2LMHeadModel: 2 layers, 4 heads, d_model 64, vocab 1000" */
export function describeModel(c: ModelConfig): string {
  return `${c.architecture}: ${c.n_layers} layers, ${c.n_heads} heads, d_model ${c.d_model}, vocab ${c.d_vocab}, n_ctx ${c.n_ctx}`;
}

/** Formats a metric value for human output. */
export const fmt = (x: number, digits = 4): string => (Number.isFinite(x) ? x.toFixed(digits) : String(x));

/** "+1.2345" / "-0.5000" */
export const fmtSigned = (x: number, digits = 4): string => (x >= 0 ? `+${fmt(x, digits)}` : fmt(x, digits));
