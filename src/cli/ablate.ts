/**
 * `patchbay ablate`: run a batch of token ids with some attention heads ablated (their
 * `blocks.L.attn.hook_z` output, at every position, all listed heads together in one run) and
 * report a metric (--metric) plus the logits at its position, batch row 0.
 */
import type { ModelConfig } from '../model/config.ts';
import type { RunResult } from '../hooks/model.ts';
import { runHeadAblation, type AblationMode, type HeadRef } from '../experiments/ablation.ts';
import { writeSpecOut } from './spec-file.ts';
import { headInterventions } from '../experiments/spec.ts';
import { UsageError, parseArgs, parseIdRows, DTYPE_HELP, parseDtypeFlag, PROCESSING_HELP, parseProcessingFlag } from './args.ts';
import { checkTokenRows, describeModel, fmt, fmtSigned, withModel } from './experiment.ts';
import { checkMetric, describeMetric, metricHelp, metricReadPos, metricValue, parseMetric } from './metric.ts';
import { ALLOW_NONFINITE_FLAG, ALLOW_NONFINITE_HELP, checkFinite, jsonLine } from './finite.ts';

export const ABLATE_USAGE = `usage: patchbay ablate <model-dir-or-url> --ids 0,5,9 [--ids ...] --heads L.H[,L.H...]
                      [--mode zero|mean] --metric METRIC [--processing P] [--json]

Runs the model on the token ids with the listed attention heads ablated, all of them together in
one run, at every position and batch row, and reports the metric on batch row 0.

  <model-dir-or-url>  a Hugging Face GPT-2 folder or an http(s) URL of one (as for patchbay cache)
  --ids 0,5,9         one batch row of token ids; repeat the flag for more rows (equal lengths)
  --heads L.H,...     heads to ablate, layer.head counted from 0, e.g. 0.2,1.3 (may be repeated)
  --mode zero         set each head's output (blocks.L.attn.hook_z) to 0 (the default)
  --mode mean         set it to its mean over a plain (unablated) run on the same --ids: the mean
                      over every batch row and every position, one vector per head
                      (meanHead(L, H, cache, { pooled: true }) with the plain run's hook_z)
${metricHelp('the metric of the ablated run, batch row 0', "the first --ids row's own tokens")}
  --json              print {"metric": x, "logits_at_pos": [...]} (the full logits row at POS,
                      batch row 0; for loss, at END-1) instead of a summary
${ALLOW_NONFINITE_HELP}
${DTYPE_HELP}
${PROCESSING_HELP}
  --spec-out FILE     also write the experiment spec of this run to FILE (patchbay run FILE
                      runs it again; patchbay export FILE writes it as a Python script)
  --help              this text`;

const FLAGS = {
  ids: { repeated: true, required: true },
  heads: { repeated: true, required: true },
  mode: {},
  metric: { required: true },
  json: { boolean: true },
  'allow-nonfinite': ALLOW_NONFINITE_FLAG,
  dtype: {},
  processing: {},
  'spec-out': {},
  help: { boolean: true },
} as const;

const MODES: readonly AblationMode[] = ['zero', 'mean'];

/** Every `--heads` value, "0.2,1.3", as heads in the order given, duplicates dropped. */
export function parseHeads(values: readonly string[]): HeadRef[] {
  const heads: HeadRef[] = [];
  const seen = new Set<string>();
  for (const text of values) {
    for (const part of text.split(',')) {
      const s = part.trim();
      const m = /^(\d+)\.(\d+)$/.exec(s);
      if (!m) {
        throw new UsageError(
          s === '' ? `--heads ${text}: empty head; expected L.H[,L.H...], e.g. --heads 0.2,1.3` : `--heads ${text}: "${s}" is not a head; expected L.H (layer.head, from 0), e.g. 1.3`,
        );
      }
      const h = { layer: Number(m[1]), head: Number(m[2]) };
      const key = `${h.layer}.${h.head}`;
      if (seen.has(key)) continue;
      seen.add(key);
      heads.push(h);
    }
  }
  return heads;
}

/** Rejects heads the model does not have, naming its n_layers / n_heads. */
export function checkHeads(heads: readonly HeadRef[], c: ModelConfig): void {
  for (const { layer, head } of heads) {
    if (layer >= c.n_layers) {
      throw new UsageError(`--heads: head ${layer}.${head}: layer ${layer} is out of range; the model has ${c.n_layers} layers (n_layers), 0 .. ${c.n_layers - 1}`);
    }
    if (head >= c.n_heads) {
      throw new UsageError(`--heads: head ${layer}.${head}: head ${head} is out of range; the model has ${c.n_heads} heads per layer (n_heads), 0 .. ${c.n_heads - 1}`);
    }
  }
}

export async function ablateCommand(argv: readonly string[], print: (line: string) => void): Promise<void> {
  const { positionals, flags } = parseArgs(argv, FLAGS, 'ablate');
  if (flags.has('help')) {
    print(ABLATE_USAGE);
    return;
  }
  if (positionals.length === 0) throw new UsageError('ablate needs a model folder or URL (see patchbay ablate --help)');
  if (positionals.length > 1) throw new UsageError(`ablate takes one model, got also: ${positionals.slice(1).join(' ')}`);
  const [modelArg] = positionals;
  const ids = parseIdRows(flags.get('ids')!);
  const heads = parseHeads(flags.get('heads')!);
  const modeText = flags.get('mode')?.[0] ?? 'zero';
  if (!(MODES as readonly string[]).includes(modeText)) {
    throw new UsageError(`--mode ${modeText}: unknown mode; expected ${MODES.join(' or ')}`);
  }
  const mode = modeText as AblationMode;
  const metric = parseMetric(flags.get('metric')![0]);
  const json = flags.has('json');
  const f16 = parseDtypeFlag(flags);
  const processing = parseProcessingFlag(flags);
  const allowNonfinite = flags.has('allow-nonfinite');
  const T = ids[0].length;
  if (flags.has('spec-out') && ids.length > 1) throw new UsageError('--spec-out: a spec holds one prompt; give one --ids row');

  await withModel(
    modelArg,
    (c) => {
      checkTokenRows(ids, c, '--ids');
      checkMetric(metric, T, c.d_vocab);
      checkHeads(heads, c);
    },
    async ({ model, gpu, source, loadMs }) => {
      const V = model.config.d_vocab;
      let plain: RunResult | null = null;
      let ablated: RunResult | undefined;
      try {
        const t0 = performance.now();
        // The unablated run is kept only for the human summary.
        ({ ablated, plain } = await runHeadAblation(model, ids, heads, { mode, keepPlain: !json }));
        const logits = await ablated.logits.read();
        const shape = ablated.logits.shape;
        const value = metricValue(metric, logits, shape, ids[0]);
        const pos = metricReadPos(metric, ids[0]);
        const row = logits.slice(pos * V, (pos + 1) * V); // batch row 0
        const runMs = performance.now() - t0;
        const specOut = flags.get('spec-out')?.[0];
        if (specOut) {
          await writeSpecOut(specOut, modelArg, {
            prompts: { clean: ids[0] },
            interventions: headInterventions(
              heads.map((h) => `${h.layer}.${h.head}`),
              mode,
            ),
            experiment: { kind: 'ablate', metric: metric.text },
          });
        }

        if (json) {
          print(jsonLine({ metric: value, logits_at_pos: Array.from(row) }));
          checkFinite([value], 'the metric', allowNonfinite);
          return;
        }
        const before = metricValue(metric, await plain!.logits.read(), shape, ids[0]);
        const top = Array.from(row, (v, i) => [i, v] as const)
          .sort((a, b) => b[1] - a[1])
          .slice(0, 5)
          .map(([i, v]) => `${i} (${fmt(v, 2)})`);
        print(`patchbay ablate: ${source.describe}`);
        print(`  model    ${describeModel(model.config)}`);
        print(`  adapter  ${gpu.adapterName}`);
        print(`  input    ${ids.length} × ${T} tokens (batch × pos)`);
        print(`  ablated  ${heads.map((h) => `${h.layer}.${h.head}`).join(', ')}: hook_z ` + (mode === 'zero' ? 'set to 0' : 'set to its mean over the batch and positions') + ' at every position');
        print(`  metric   ${describeMetric(metric)}, row 0: ${fmt(value)} (unablated ${fmt(before)}, change ${fmtSigned(value - before)})`);
        print(`  top 5    logits at pos ${pos}, row 0: ${top.join(', ')}`);
        print(`  time     load ${loadMs.toFixed(0)} ms, runs + readback ${runMs.toFixed(0)} ms`);
        checkFinite([value], 'the metric', allowNonfinite);
      } finally {
        ablated?.release();
        plain?.release();
      }
    },
    { f16, processing },
  );
}
