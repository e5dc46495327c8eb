/**
 * `patchbay run SPEC.json`: runs an experiment spec (src/experiments/spec.ts) and prints its
 * result: with --json, the JSON of src/experiments/run-spec.ts, which the Python scripts of
 * `patchbay export` print too.
 */
import { dirname, resolve } from 'node:path';
import { runSpec } from '../experiments/run-spec.ts';
import { SpecError, describeIntervention, describeModelRef } from '../experiments/spec.ts';
import { UsageError, parseArgs } from './args.ts';
import { describeModel, fmt, withModel } from './experiment.ts';
import { describeShape, printFeatureCells, printGrid } from './grid.ts';
import { readSpecFile } from './spec-file.ts';
import { modelLocation } from './spec-model.ts';
import { withSpecSae } from './spec-sae.ts';

export const RUN_USAGE = `usage: patchbay run SPEC.json [--json]

Runs the experiment a spec file describes (its model, prompts, interventions, and the sweep with
its site and metric; see schema/experiment-v2.schema.json; version 1 specs are read too) and
prints the result.

  SPEC.json   the experiment spec; a relative model path in it is relative to the file
  --json      print the result as JSON:
                ablate        {"kind": "ablate", "prompts", "metric", "unablated", "top"}
                              (lists, one entry per row, for a batch of clean prompts)
                patch         {"kind": "patch", "prompts", "site", "shape", "axes", "values",
                               "clean", "corrupt", "normalize"}
                sweep-ablate  {"kind": "sweep-ablate", "prompts", "mode", "shape", "axes",
                               "values", "unablated"}
                attribute     {"kind": "attribute", "prompts", "site", "method", "shape", "axes",
                               "values", "effects", "signed", "clean", "corrupt", "normalize"
                               [, "verified", "max_error"]}; site "features" adds "hook",
                               "positions", "features" and "acts" (as patchbay attribute --json)
              (the same JSON as the script of patchbay export SPEC.json --to transformers)
  --help      this text`;

const FLAGS = { json: { boolean: true }, help: { boolean: true } } as const;

export async function runCommand(argv: readonly string[], print: (line: string) => void): Promise<void> {
  const { positionals, flags } = parseArgs(argv, FLAGS, 'run');
  if (flags.has('help')) {
    print(RUN_USAGE);
    return;
  }
  if (positionals.length !== 1) throw new UsageError('run takes one spec file (see patchbay run --help)');
  const path = positionals[0];
  const spec = await readSpecFile(path);
  const specDir = dirname(resolve(path));
  const location = modelLocation(spec.model, specDir);
  await withModel(
    location,
    () => undefined,
    async ({ model, gpu, loadMs }) => {
      const tokenizer = model.tokenizer;
      const t0 = performance.now();
      let result;
      try {
        result = await withSpecSae(gpu, spec, specDir, (sae) => runSpec(model, spec, tokenizer, { sae }));
      } catch (e) {
        if (e instanceof SpecError) throw new UsageError(`${path}: ${e.message}`);
        throw e;
      }
      if (flags.has('json')) {
        print(JSON.stringify(result));
        return;
      }
      print(`patchbay run: ${path}`);
      print(`  model    ${describeModelRef(spec.model)}: ${describeModel(model.config)}`);
      print(`  adapter  ${gpu.adapterName}`);
      print(`  time     load ${loadMs.toFixed(0)} ms, run ${(performance.now() - t0).toFixed(0)} ms`);
      const e = spec.experiment;
      if (result.kind === 'ablate') {
        for (const iv of spec.interventions ?? []) print(`  hook     ${describeIntervention(iv)}`);
        const batch = Array.isArray(result.top) && Array.isArray((result.top as unknown[][])[0]?.[0]);
        const rows = batch ? (result.top as unknown[]).length : 1;
        const at = <X>(v: unknown, b: number) => (batch ? (v as X[])[b] : (v as X));
        for (let b = 0; b < rows; b++) {
          const tag = batch ? ` [row ${b}]` : '';
          print(`  metric${tag}   ${e.kind === 'ablate' && e.metric ? `${e.metric}: ${fmt(at<number>(result.metric, b))} (unablated ${fmt(at<number>(result.unablated, b))})` : 'none'}`);
          print(
            `  top${tag}      ${at<[number, number][]>(result.top, b)
              .map(([id, p]) => `${id} (${(100 * p).toFixed(1)}%)`)
              .join(', ')}`,
          );
        }
        return;
      }
      const shape = result.shape as number[];
      const axes = result.axes as string[];
      if (result.kind === 'attribute') {
        print(`  metric   ${e.kind === 'attribute' ? e.metric : ''}: clean ${fmt(result.clean as number)}, corrupt ${fmt(result.corrupt as number)}`);
        print(`  method   ${result.method === 'atp' ? 'AtP' : 'AtP* (QK fix, GradDrop)'} on ${result.site === 'features' ? `the SAE's features at ${String(result.hook)}` : String(result.site)}`);
      }
      if (result.kind === 'attribute' && result.site === 'features') {
        printFeatureCells(print, result.positions as number[], result.features as number[][], result.effects as number[][]);
        printVerified(print, result);
        return;
      }
      print(`  ${result.kind}  ${describeShape(shape, axes)}`);
      const flat = (result.values as unknown[]).flat(3) as number[];
      printGrid(print, flat, shape, axes);
      printVerified(print, result);
    },
    { processing: spec.processing ?? 'none' },
  );
}

function printVerified(print: (line: string) => void, result: Record<string, unknown>): void {
  const cells = result.verified as { coords: number[]; estimate: number; exact: number; pos?: number; feature?: number }[] | undefined;
  if (!cells) return;
  print(`  the ${cells.length} largest cells, estimated and exact effect (m_patched - m_corrupt):`);
  for (const c of cells) print(`    ${c.feature !== undefined ? `pos ${c.pos} feature #${c.feature}` : `[${c.coords.join(', ')}]`}  estimate ${fmt(c.estimate)}  exact ${fmt(c.exact)}`);
  print(`  largest error ${fmt(result.max_error as number)}`);
}
