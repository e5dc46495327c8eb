/**
 * `patchbay cache`: run a batch of token ids through a model and write the activations at every
 * hook point (or those matching --names), plus the logits, to one safetensors file. Names are
 * TransformerLens', tensors batch-first fp32, so the file compares directly with a
 * TransformerLens `run_with_cache` dump.
 */
import { formatBytes } from '../gpu/errors.ts';
import type { RunResult } from '../hooks/model.ts';
import { writeSafetensors } from '../model/safetensors.ts';
import { UsageError, parseArgs, parseIdRows, parseNamesRegex, DTYPE_HELP, parseDtypeFlag, PROCESSING_HELP, parseProcessingFlag } from './args.ts';
import { checkTokenRows, withModel } from './experiment.ts';
import { OutputFile } from './output-file.ts';
import { nodeSaeSource } from './sae-source.ts';
import { loadSae } from '../features/sae-load.ts';
import type { Sae } from '../features/sae.ts';
import { withErrorTerm } from '../hooks/splice.ts';

export const CACHE_USAGE = `usage: patchbay cache <model-dir-or-url> --ids 0,5,9 [--ids ...] --out FILE.safetensors [--names REGEX]
                      [--sae DIR ...] [--processing P]

Runs the model on a batch of token ids and writes every hook activation (TransformerLens names,
batch first, fp32) plus "logits" to FILE.safetensors.

  <model-dir-or-url>  a Hugging Face GPT-2 folder (config.json + model.safetensors, or a sharded
                      model.safetensors.index.json), or an http(s) URL of one
  --ids 0,5,9         one batch row of token ids; repeat the flag for more rows (equal lengths)
  --out FILE          the safetensors file to write (its folder is created if needed; checked
                      before the model loads, and written only when the run succeeds)
  --names REGEX       keep only hook points whose name matches (JavaScript regex, unanchored),
                      e.g. 'hook_pattern$' or '^blocks\\.0\\.'; logits are always written
  --sae DIR           splice an SAE or transcoder (a folder, URL or hf://owner/repo/folder; repeat
                      for more) with its error term, and write its hook points too
                      (<hook>.hook_sae_input, .hook_sae_acts_pre, .hook_sae_acts_post,
                      .hook_sae_recons, .hook_sae_error, .hook_sae_output); the logits stay the model's
${DTYPE_HELP}
${PROCESSING_HELP}
  --help              this text`;

const FLAGS = {
  ids: { repeated: true, required: true },
  out: { required: true },
  names: {},
  sae: { repeated: true },
  dtype: {},
  processing: {},
  help: { boolean: true },
} as const;

export async function cacheCommand(argv: readonly string[], print: (line: string) => void): Promise<void> {
  const { positionals, flags } = parseArgs(argv, FLAGS, 'cache');
  if (flags.has('help')) {
    print(CACHE_USAGE);
    return;
  }
  if (positionals.length === 0) throw new UsageError('cache needs a model folder or URL (see patchbay cache --help)');
  if (positionals.length > 1) throw new UsageError(`cache takes one model, got also: ${positionals.slice(1).join(' ')}`);
  const [modelArg] = positionals;
  const ids = parseIdRows(flags.get('ids')!);
  const outPath = flags.get('out')![0];
  const namesFlag = flags.get('names')?.[0];
  const names = namesFlag === undefined ? undefined : parseNamesRegex(namesFlag);
  const f16 = parseDtypeFlag(flags);
  const processing = parseProcessingFlag(flags);

  // Everything above, the --out path and the ids against the model's config are checked before
  // the GPU is touched, so typos fail fast.
  const saeSources = await Promise.all((flags.get('sae') ?? []).map((s) => nodeSaeSource(s)));
  const out = await OutputFile.claim(outPath, '--out');
  try {
    await withModel(
      modelArg,
      (c) => checkTokenRows(ids, c, '--ids'),
      async ({ model, gpu, source, loadMs }) => {
        let result: RunResult | undefined;
        const saes: Sae[] = [];
        try {
          for (const s of saeSources) saes.push(await loadSae(gpu, s));
          const t1 = performance.now();
          result = await model.run(ids, { cache: names ?? (() => true), saes: saes.map(withErrorTerm) });
          const tensors: Array<{ name: string; shape: number[]; data: Float32Array }> = [];
          for (const name of result.cache.names) {
            const t = result.cache.get(name);
            tensors.push({ name, shape: [...t.shape], data: await t.read() });
          }
          tensors.push({ name: 'logits', shape: [...result.logits.shape], data: await result.logits.read() });
          const tRun = performance.now() - t1;

          const bytes = writeSafetensors(tensors, { producer: 'patchbay cache', model: source.describe });
          await out.commit(bytes);

          const c = model.config;
          const hookCount = tensors.length - 1;
          print(`patchbay cache: ${source.describe}`);
          print(`  model    ${c.architecture}: ${c.n_layers} layers, d_model ${c.d_model}, ${c.n_heads} heads, vocab ${c.d_vocab}, n_ctx ${c.n_ctx}`);
          print(`  adapter  ${gpu.adapterName}`);
          print(`  input    ${ids.length} × ${ids[0].length} tokens (batch × pos)`);
          print(`  wrote    ${outPath}: ${hookCount} hook activations + logits, ${formatBytes(bytes.length)}` + (names && hookCount === 0 ? ` (--names ${namesFlag} matched no hook point)` : ''));
          print(`  time     load ${loadMs.toFixed(0)} ms, forward + readback ${tRun.toFixed(0)} ms`);
        } finally {
          result?.release();
          for (const s of saes) s.destroy();
        }
      },
      { f16, processing },
    );
  } finally {
    await out.discard(); // a no-op once written
  }
}
