/**
 * `patchbay sweep-ablate`: ablate each attention head in turn (its `blocks.L.attn.hook_z`
 * output, at every position), one prompt, and report the metric of every ablated run as a
 * [layer, head] grid. All n_layers × n_heads runs go through the sweep engine
 * (`headAblationSweep`, src/experiments/ablation.ts) as rows of a few batched passes.
 */
import { headAblationSweep } from '../experiments/ablation.ts';
import { writeSpecOut } from './spec-file.ts';
import { UsageError, parseArgs, parseIdRow, DTYPE_HELP, parseDtypeFlag, PROCESSING_HELP, parseProcessingFlag } from './args.ts';
import { checkTokenRows, describeModel, fmt, withModel } from './experiment.ts';
import { describeShape, nest, printGrid } from './grid.ts';
import { checkMetric, describeMetric, metricHelp, parseMetric, toMetric } from './metric.ts';
import { ALLOW_NONFINITE_FLAG, ALLOW_NONFINITE_HELP, checkFinite, jsonLine } from './finite.ts';

export const SWEEP_ABLATE_USAGE = `usage: patchbay sweep-ablate <model-dir-or-url> --ids 0,5,9 --metric METRIC
                            [--mode zero|mean] [--processing P] [--json]

Ablates every attention head alone, one run per head, and reports the metric of each ablated run
as an [n_layers, n_heads] grid. The runs go through the GPU as rows of a few batched passes.

  <model-dir-or-url>  a Hugging Face GPT-2 folder or an http(s) URL of one (as for patchbay cache)
  --ids 0,5,9         the prompt's token ids (one row)
  --mode zero         set the head's output (blocks.L.attn.hook_z) to 0 at every position (default)
  --mode mean         set it to its mean over the prompt's positions (one vector per head, from the
                      unablated run)
${metricHelp('the metric of each ablated run', "the prompt's own tokens (--ids)")}
  --json              print {"shape": [n_layers, n_heads], "axes": ["layer", "head"],
                      "values": [[...], ...], "unablated": m} (values[L][h]: the metric with head
                      L.h ablated; unablated: the metric of the plain run)
${ALLOW_NONFINITE_HELP}
${DTYPE_HELP}
${PROCESSING_HELP}
  --spec-out FILE     also write the experiment spec of this run to FILE (patchbay run FILE
                      runs it again; patchbay export FILE writes it as a Python script)
  --help              this text`;

const FLAGS = {
  ids: { required: true },
  mode: {},
  metric: { required: true },
  json: { boolean: true },
  'allow-nonfinite': ALLOW_NONFINITE_FLAG,
  dtype: {},
  processing: {},
  'spec-out': {},
  help: { boolean: true },
} as const;

const MODES = ['zero', 'mean'] as const;

export async function sweepAblateCommand(argv: readonly string[], print: (line: string) => void): Promise<void> {
  const { positionals, flags } = parseArgs(argv, FLAGS, 'sweep-ablate');
  if (flags.has('help')) {
    print(SWEEP_ABLATE_USAGE);
    return;
  }
  if (positionals.length === 0) throw new UsageError('sweep-ablate needs a model folder or URL (see patchbay sweep-ablate --help)');
  if (positionals.length > 1) throw new UsageError(`sweep-ablate takes one model, got also: ${positionals.slice(1).join(' ')}`);
  const [modelArg] = positionals;
  const ids = parseIdRow(flags.get('ids')![0]);
  const modeText = flags.get('mode')?.[0] ?? 'zero';
  if (!(MODES as readonly string[]).includes(modeText)) throw new UsageError(`--mode ${modeText}: unknown mode; expected ${MODES.join(' or ')}`);
  const mode = modeText as (typeof MODES)[number];
  const metricOpt = parseMetric(flags.get('metric')![0]);
  const json = flags.has('json');
  const f16 = parseDtypeFlag(flags);
  const processing = parseProcessingFlag(flags);
  const allowNonfinite = flags.has('allow-nonfinite');
  const T = ids.length;

  await withModel(
    modelArg,
    (c) => {
      checkTokenRows([ids], c, '--ids');
      checkMetric(metricOpt, T, c.d_vocab);
    },
    async ({ model, gpu, source, loadMs }) => {
      const t0 = performance.now();
      const grid = await headAblationSweep(model, ids, toMetric(metricOpt, ids), { mode });
      const runMs = performance.now() - t0;
      const specOut = flags.get('spec-out')?.[0];
      if (specOut) await writeSpecOut(specOut, modelArg, { prompts: { clean: ids }, experiment: { kind: 'sweep-ablate', metric: metricOpt.text, mode } });
      if (json) {
        print(jsonLine({ shape: grid.shape, axes: grid.axes, values: nest(grid.values, grid.shape), unablated: grid.clean }));
        checkFinite([grid.clean, ...grid.values], 'the metric (unablated and every cell)', allowNonfinite);
        return;
      }
      const runs = grid.values.length;
      print(`patchbay sweep-ablate: ${source.describe}`);
      print(`  model    ${describeModel(model.config)}`);
      print(`  adapter  ${gpu.adapterName}`);
      print(`  input    ${T} tokens`);
      print(`  metric   ${describeMetric(metricOpt)}: unablated ${fmt(grid.clean)}`);
      print(
        `  ablated  each head alone, hook_z ${mode === 'zero' ? 'set to 0' : 'set to its mean over the positions'} at every position: ` +
          `${describeShape(grid.shape, grid.axes)} = ${runs} runs in ${grid.stats.passes === 1 ? 'one batched pass' : `${grid.stats.passes} batched passes`}`,
      );
      print(`  time     load ${loadMs.toFixed(0)} ms, sweep + readback ${runMs.toFixed(0)} ms`);
      print('');
      print('  metric with head L.h ablated (rows layer, columns head):');
      printGrid(print, grid.values, grid.shape, grid.axes);
      checkFinite([grid.clean, ...grid.values], 'the metric (unablated and every cell)', allowNonfinite);
    },
    { f16, processing },
  );
}
