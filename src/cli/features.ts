/**
 * `patchbay features`: the SAE's most active features at every position of a batch of token
 * ids, with their activations, from a model with the SAE spliced in (error term on unless
 * --no-error-term).
 */
import { loadSae } from '../features/sae-load.ts';
import type { Sae } from '../features/sae.ts';
import { saeHook } from '../hooks/feature-interventions.ts';
import { withErrorTerm } from '../hooks/splice.ts';
import { DTYPE_HELP, PROCESSING_HELP, UsageError, parseArgs, parseDtypeFlag, parseIdRows, parsePositiveInt, parseProcessingFlag } from './args.ts';
import { checkTokenRows, withModel } from './experiment.ts';
import { nodeSaeSource } from './sae-source.ts';

export const FEATURES_USAGE = `usage: patchbay features <model-dir-or-url> --sae DIR --ids 0,5,9 [--ids ...] [--top K] [--no-error-term] [--json]
                         [--processing P]

Runs the model on token ids with an SAE (or transcoder) spliced in and prints, for every
position, the K most active features (SAELens' hook_sae_acts_post) and their activations.

  <model-dir-or-url>  a Hugging Face model folder or an http(s) URL of one
  --sae DIR           the SAE: a folder (SAELens cfg.json + sae_weights.safetensors, Gemma Scope 2
                      config.json + params.safetensors, or Gemma Scope params.npz), an http(s)
                      URL, or hf://owner/repo/folder (HF_TOKEN is sent for gated repositories)
  --ids 0,5,9         one batch row of token ids; repeat the flag for more rows (equal lengths)
  --top K             features per position (default 10)
  --no-error-term     splice without the error term (the model then runs on the reconstruction)
  --json              print {"sae": {...}, "rows": [[{"pos", "token", "features": [[id, act], ...]}, ...]]}
${DTYPE_HELP}
${PROCESSING_HELP}
                      (the SAE then reads the processed model: only for SAEs trained on one)
  --help              this text`;

const FLAGS = {
  sae: { required: true },
  ids: { repeated: true, required: true },
  top: {},
  'no-error-term': { boolean: true },
  json: { boolean: true },
  dtype: {},
  processing: {},
  help: { boolean: true },
} as const;

export async function featuresCommand(argv: readonly string[], print: (line: string) => void): Promise<void> {
  const { positionals, flags } = parseArgs(argv, FLAGS, 'features');
  if (flags.has('help')) {
    print(FEATURES_USAGE);
    return;
  }
  if (positionals.length !== 1) throw new UsageError('features takes one model folder or URL (see patchbay features --help)');
  const ids = parseIdRows(flags.get('ids')!);
  const k = flags.has('top') ? parsePositiveInt(flags.get('top')![0], '--top') : 10;
  const f16 = parseDtypeFlag(flags);
  const processing = parseProcessingFlag(flags);
  const errorTerm = !flags.has('no-error-term');
  const saeSrc = await nodeSaeSource(flags.get('sae')![0]);
  await withModel(
    positionals[0],
    (c) => checkTokenRows(ids, c, '--ids'),
    async ({ model, gpu, source }) => {
      let sae: Sae | undefined;
      try {
        sae = await loadSae(gpu, saeSrc);
        const name = saeHook(sae, 'hook_sae_acts_post');
        const run = await model.run(ids, { saes: [errorTerm ? withErrorTerm(sae) : sae], cache: [name] });
        const acts = await run.cache.read(name);
        run.release();
        const F = sae.config.d_sae;
        const T = ids[0].length;
        const rows = ids.map((row, b) =>
          row.map((token, pos) => {
            const a = acts.subarray((b * T + pos) * F, (b * T + pos + 1) * F);
            const live: number[] = [];
            for (let f = 0; f < F; f++) if (a[f] > 0) live.push(f);
            live.sort((x, y) => a[y] - a[x] || x - y);
            return { pos, token, features: live.slice(0, k).map((f) => [f, a[f]] as [number, number]) };
          }),
        );
        const c = sae.config;
        const info = {
          source: c.source,
          format: c.format,
          architecture: c.architecture,
          hook_name: c.hook_name,
          hook_name_out: c.hook_name_out,
          d_in: c.d_in,
          d_sae: c.d_sae,
          k: c.k,
          error_term: errorTerm,
        };
        if (flags.has('json')) {
          print(JSON.stringify({ sae: info, rows }));
          return;
        }
        print(`patchbay features: ${source.describe} with ${c.source} (${c.architecture}, ${c.d_sae} features on ${c.hook_name})`);
        rows.forEach((row, b) => {
          if (rows.length > 1) print(`row ${b}`);
          for (const r of row) print(`  ${String(r.pos).padStart(4)}  token ${String(r.token).padEnd(7)} ${r.features.map(([f, a]) => `#${f} ${a.toFixed(3)}`).join('  ') || '(no active feature)'}`);
        });
      } finally {
        sae?.destroy();
      }
    },
    { f16, processing },
  );
}
