/**
 * `patchbay patch`: activation patching over a grid. For every layer L and position p, the
 * corrupted prompt is run with `blocks.L.hook_resid_pre[:, p]` replaced by the clean run's value,
 * and the metric of that run is recorded (TransformerLens' `get_act_patch_resid_pre`).
 *
 * Batched: the clean run's resid_pre is cached once, then ONE forward runs n_layers × n_pos copies
 * of the corrupted prompt, row l*T+p carrying the patch of (l, p). If that batch does not fit the
 * device, it is run in passes of fewer rows (halved until they fit).
 */
import { OutOfMemoryError } from '../gpu/errors.ts';
import type { Model, RunResult } from '../model/model.ts';
import { patchFrom, type Intervention } from '../hooks/interventions.ts';
import type { ActivationCache } from '../hooks/activation-cache.ts';
import { UsageError, parseArgs, parseIdRow } from './args.ts';
import { describeModel, fmt, withModel } from './experiment.ts';
import { METRIC_SYNTAX, checkMetric, describeMetric, metricValue, parseMetric, type Metric } from './metric.ts';

export const SITES = ['resid_pre'] as const;

export const PATCH_USAGE = `usage: patchbay patch <model-dir-or-url> --clean 0,5,9 --corrupt 0,7,9 --site resid_pre
                     --metric ${METRIC_SYNTAX} [--json]

Activation patching: for every layer L and position p, runs the corrupted prompt with
blocks.L.hook_resid_pre[:, p] replaced by the clean run's value, and reports the metric of each
patched run as an [n_layers, n_pos] grid (TransformerLens' get_act_patch_resid_pre). All
n_layers × n_pos patched runs go through the GPU as one batch (in chunks if it does not fit).

  <model-dir-or-url>  a Hugging Face GPT-2 folder or an http(s) URL of one (as for patchbay cache)
  --clean 0,5,9       the clean prompt's token ids (the source of the patched activations)
  --corrupt 0,7,9     the corrupted prompt's token ids (the run that is patched); same length
  --site resid_pre    what is patched; supported: ${SITES.join(', ')}
  --metric ${METRIC_SYNTAX}
                      logits[0, POS, GOOD] - logits[0, POS, BAD] of each patched run
  --json              print {"site": "resid_pre", "shape": [n_layers, n_pos], "values": [[...], ...]}
                      (values[L][p]: the metric with layer L's resid_pre patched at position p)
  --help              this text`;

const FLAGS = {
  clean: { required: true },
  corrupt: { required: true },
  site: { required: true },
  metric: { required: true },
  json: { boolean: true },
  help: { boolean: true },
} as const;

export async function patchCommand(argv: readonly string[], print: (line: string) => void): Promise<void> {
  const { positionals, flags } = parseArgs(argv, FLAGS, 'patch');
  if (flags.has('help')) {
    print(PATCH_USAGE);
    return;
  }
  if (positionals.length === 0) throw new UsageError('patch needs a model folder or URL (see patchbay patch --help)');
  if (positionals.length > 1) throw new UsageError(`patch takes one model, got also: ${positionals.slice(1).join(' ')}`);
  const [modelArg] = positionals;
  const clean = parseIdRow(flags.get('clean')![0], '--clean');
  const corrupt = parseIdRow(flags.get('corrupt')![0], '--corrupt');
  if (clean.length !== corrupt.length) {
    throw new UsageError(`--clean has ${clean.length} tokens and --corrupt ${corrupt.length}; patching needs prompts of equal length`);
  }
  const site = flags.get('site')![0];
  if (!(SITES as readonly string[]).includes(site)) {
    throw new UsageError(`--site ${site}: unsupported site; supported sites: ${SITES.join(', ')}`);
  }
  const metric = parseMetric(flags.get('metric')![0]);
  const json = flags.has('json');
  const T = clean.length;

  await withModel(
    modelArg,
    (c) => checkMetric(metric, T, c.d_vocab),
    async ({ model, gpu, source, loadMs }) => {
      const L = model.config.n_layers;
      const t0 = performance.now();
      const cleanRun = await model.run([clean], { cache: /hook_resid_pre$/ });
      let grid: { values: number[][]; chunkRows: number; passes: number };
      let cleanMetric: number;
      try {
        cleanMetric = metricValue(metric, await cleanRun.logits.read(), cleanRun.logits.shape);
        grid = await patchResidPre(model, cleanRun.cache, corrupt, metric);
      } finally {
        cleanRun.release();
      }
      const runMs = performance.now() - t0;

      if (json) {
        print(JSON.stringify({ site, shape: [L, T], values: grid.values }));
        return;
      }
      const plain = await model.run([corrupt]);
      let corruptMetric: number;
      try {
        corruptMetric = metricValue(metric, await plain.logits.read(), plain.logits.shape);
      } finally {
        plain.release();
      }
      print(`patchbay patch: ${source.describe}`);
      print(`  model    ${describeModel(model.config)}`);
      print(`  adapter  ${gpu.adapterName}`);
      print(`  input    clean and corrupt, ${T} tokens each`);
      print(`  metric   ${describeMetric(metric)}: clean ${fmt(cleanMetric)}, corrupt ${fmt(corruptMetric)}`);
      print(
        `  patched  ${site} at ${L} layers × ${T} positions = ${L * T} runs in ` +
          (grid.passes === 1 ? 'one batched pass' : `${grid.passes} passes of up to ${grid.chunkRows} rows (the full batch did not fit)`),
      );
      print(`  time     load ${loadMs.toFixed(0)} ms, runs + readback ${runMs.toFixed(0)} ms`);
      print('');
      print(`  metric with blocks.L.hook_${site}[:, p] patched from clean (rows L, columns p):`);
      const width = Math.max(...grid.values.flat().map((v) => fmt(v, 3).length), String(T - 1).length) + 1;
      print(`  ${'L\\p'.padStart(4)}${Array.from({ length: T }, (_, p) => String(p).padStart(width)).join('')}`);
      grid.values.forEach((row, l) => print(`  ${String(l).padStart(4)}${row.map((v) => fmt(v, 3).padStart(width)).join('')}`));
    },
  );
}

/**
 * The resid_pre patching grid: values[l][p] = metric of the corrupted prompt with
 * blocks.l.hook_resid_pre[:, p] taken from `cleanCache` (one row, broadcast to every patch).
 */
export async function patchResidPre(
  model: Model,
  cleanCache: ActivationCache,
  corrupt: readonly number[],
  metric: Metric,
): Promise<{ values: number[][]; /** Rows per pass. */ chunkRows: number; passes: number }> {
  const L = model.config.n_layers;
  const T = corrupt.length;
  const total = L * T;
  const values = Array.from({ length: L }, () => new Array<number>(T).fill(NaN));
  // Start with every row in one pass, unless its logits alone exceed one GPU buffer.
  const logitRowBytes = T * model.config.d_vocab * 4;
  let chunk = Math.max(1, Math.min(total, Math.floor(model.gpu.limits.maxBufferSize / logitRowBytes)));
  let passes = 0;
  let widest = 0;
  for (let start = 0; start < total; ) {
    const n = Math.min(chunk, total - start);
    // Every pass runs `chunk` rows, the last one padded with unpatched rows: one forward shape,
    // so the pass reuses the plan (and its scratch memory) of the passes before it.
    const batch = chunk;
    const hooks: Intervention[] = [];
    for (let i = 0; i < n; i++) {
      const r = start + i;
      const l = Math.floor(r / T);
      const p = r % T;
      hooks.push(patchFrom(`blocks.${l}.hook_resid_pre`, cleanCache, { batch: i, pos: p }));
    }
    let run: RunResult;
    try {
      run = await model.run(Array.from({ length: batch }, () => corrupt), { hooks });
    } catch (e) {
      if (e instanceof OutOfMemoryError && chunk > 1) {
        chunk = Math.ceil(chunk / 2);
        continue; // retry the same rows in smaller passes
      }
      throw e;
    }
    try {
      const logits = await run.logits.read();
      for (let i = 0; i < n; i++) {
        const r = start + i;
        values[Math.floor(r / T)][r % T] = metricValue(metric, logits, run.logits.shape, i);
      }
    } finally {
      run.release();
    }
    passes++;
    widest = Math.max(widest, batch);
    start += n;
  }
  return { values, chunkRows: widest, passes };
}
