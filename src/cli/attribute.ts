/**
 * `patchbay attribute`: attribution patching (`attributionSweep`): every cell of a patching grid
 * estimated from one clean forward, one corrupted forward and one backward (AtP), or with
 * AtP*'s QK fix and GradDrop; --verify K re-runs the K largest cells exactly. With --sae and
 * --site features, AtP over the SAE's features (`featureAttribution`), verified by exact feature
 * patching (`verifyFeatureTopK`).
 */
import { attributionSweep, verifyTopK, type AttributionMethod } from '../experiments/attribution.ts';
import { featureAttribution } from '../experiments/feature-attribution.ts';
import { attributionFields, featureAttributionFields, verifiedFields } from '../experiments/grid-json.ts';
import { verifyFeatureTopK } from '../experiments/feature-verify.ts';
import { loadSae } from '../features/sae-load.ts';
import type { Sae } from '../features/sae.ts';
import { nodeSaeSource } from './sae-source.ts';
import { writeSpecOut } from './spec-file.ts';
import type { PatchSite } from '../experiments/patching.ts';
import { UsageError, parseArgs, parseIdRow, parsePositiveInt } from './args.ts';
import { describeModel, fmt, withModel } from './experiment.ts';
import { describeShape, nest, printFeatureCells, printGrid } from './grid.ts';
import { checkMetric, describeMetric, metricHelp, parseMetric, toMetric } from './metric.ts';
import { SITES } from './patch.ts';

export const ATTRIBUTE_USAGE = `usage: patchbay attribute <model-dir-or-url> --clean 0,5,9 --corrupt 0,7,9 --site SITE
                         --metric METRIC [--method atp|atp*] [--verify K] [--normalize] [--json]
       patchbay attribute <model-dir-or-url> --clean IDS --corrupt IDS --site features --sae DIR
                         --metric METRIC [--top K] [--no-error-term] [--verify K] [--normalize] [--json]

Attribution patching: estimates, for every cell of the site's grid (as patchbay patch), how far
patching the clean activation into the corrupted run moves the metric, from gradients:
(clean - corrupt) . d metric / d activation on the corrupted run, summed over the cell. One
clean forward, one corrupted forward and one backward for the whole grid.

  <model-dir-or-url>  a Hugging Face model folder or an http(s) URL of one
  --clean, --corrupt  the two prompts' token ids (equal lengths)
  --site SITE         ${SITES.join(', ')}; or features (with --sae)
                      (grids as patchbay patch --help describes them)
${metricHelp('the metric whose change is estimated', "the CLEAN prompt's tokens")}
  --method atp        (default) the first-order estimate, signed
  --method atp*       AtP* (Kramár et al. 2024): query and key cells recompute the patched head's
                      attention exactly (the QK fix), and GradDrop averages |estimate| over backwards
                      with each layer's outputs dropped: unsigned magnitudes, L more backwards
  --verify K          re-run the K cells with the largest estimated |effect| exactly (activation
                      patching of those cells only) and report both
  --normalize         values as (m - m_corrupt) / (m_clean - m_corrupt) (atp*: over |m_clean - m_corrupt|)
  --json              print {"site", "method", "shape", "axes", "values", "effects", "signed",
                      "clean", "corrupt"[, "verified": [{"index", "coords", "estimate", "exact"}],
                      "max_error"]}: values (the estimated patched metric; atp*: the magnitude)
                      and effects (the estimates) nested following shape

Features (--site features --sae DIR): AtP over an SAE's (or transcoder's) features, spliced with
its error term: (clean - corrupt feature activation) x d metric / d activation on the corrupted
run, for every feature at every position, from the same two forwards and one backward. The grid
is [pos, rank]: at each position the K features whose activation differs most between the runs
(the cells of an exact feature patching sweep).
  --sae DIR           the SAE, as patchbay features --sae takes it (folder, URL or hf://…)
  --top K             features per position (default 5)
  --no-error-term     splice without the error term
  --verify K          runs the exact feature patching sweep over the grid (one batch row per
                      cell) and reports the K largest estimates beside their exact effects
  --json              adds "hook", "positions", "features" and "acts" ([pos, rank]: each cell's
                      feature, -1 where a position has fewer than K, and its clean activation);
                      verified cells add "pos" and "feature"
  --spec-out FILE     also write the experiment spec of this run to FILE (patchbay run FILE
                      runs it again)
  --help              this text`;

const FLAGS = {
  clean: { required: true },
  corrupt: { required: true },
  site: { required: true },
  metric: { required: true },
  method: {},
  verify: {},
  sae: {},
  top: {},
  'no-error-term': { boolean: true },
  'spec-out': {},
  normalize: { boolean: true },
  json: { boolean: true },
  help: { boolean: true },
} as const;

export async function attributeCommand(argv: readonly string[], print: (line: string) => void): Promise<void> {
  const { positionals, flags } = parseArgs(argv, FLAGS, 'attribute');
  if (flags.has('help')) {
    print(ATTRIBUTE_USAGE);
    return;
  }
  if (positionals.length === 0) throw new UsageError('attribute needs a model folder or URL (see patchbay attribute --help)');
  if (positionals.length > 1) throw new UsageError(`attribute takes one model, got also: ${positionals.slice(1).join(' ')}`);
  const [modelArg] = positionals;
  const clean = parseIdRow(flags.get('clean')![0], '--clean');
  const corrupt = parseIdRow(flags.get('corrupt')![0], '--corrupt');
  if (clean.length !== corrupt.length) throw new UsageError(`--clean has ${clean.length} tokens and --corrupt ${corrupt.length}; attribution needs prompts of equal length`);
  const siteText = flags.get('site')![0];
  const methodText = flags.get('method')?.[0] ?? 'atp';
  if (methodText !== 'atp' && methodText !== 'atp*') throw new UsageError(`--method ${methodText}: unknown method; use atp or atp*`);
  const method = methodText as AttributionMethod;
  const verify = flags.has('verify') ? parsePositiveInt(flags.get('verify')![0], '--verify') : 0;
  const metricOpt = parseMetric(flags.get('metric')![0]);
  const normalize = flags.has('normalize');
  const json = flags.has('json');
  const T = clean.length;
  if (siteText === 'features' || flags.has('sae')) {
    if (siteText !== 'features') throw new UsageError(`--sae attributes to the SAE's features: use --site features (not --site ${siteText}), or leave --sae out`);
    if (!flags.has('sae')) throw new UsageError('--site features needs the SAE: --sae DIR');
    if (method !== 'atp') throw new UsageError('--method atp*: AtP* corrects query and key cells; features take --method atp');
    const k = flags.has('top') ? parsePositiveInt(flags.get('top')![0], '--top') : 5;
    return attributeFeatures(
      modelArg,
      { clean, corrupt, saeArg: flags.get('sae')![0], k, errorTerm: !flags.has('no-error-term'), verify, metricOpt, normalize, json, specOut: flags.get('spec-out')?.[0] },
      print,
    );
  }
  for (const f of ['top', 'no-error-term'] as const) if (flags.has(f)) throw new UsageError(`--${f} is for --site features (with --sae)`);
  if (!(SITES as readonly string[]).includes(siteText)) throw new UsageError(`--site ${siteText}: unknown site; the sites are ${SITES.join(', ')}, or features (with --sae)`);
  const site = siteText as PatchSite;

  await withModel(
    modelArg,
    (c) => checkMetric(metricOpt, T, c.d_vocab),
    async ({ model, gpu, source, loadMs }) => {
      const metric = toMetric(metricOpt, clean);
      const t0 = performance.now();
      const grid = await attributionSweep(model, clean, corrupt, site, metric, { method, normalize });
      const runMs = performance.now() - t0;
      if (normalize && !(grid.clean !== grid.corrupt && Number.isFinite(grid.clean) && Number.isFinite(grid.corrupt))) {
        throw new Error(`--normalize: the clean and corrupted metrics are ${fmt(grid.clean)} and ${fmt(grid.corrupt)}; the normalization is undefined when they are equal`);
      }
      const t1 = performance.now();
      const v = verify > 0 ? await verifyTopK(model, clean, corrupt, grid, metric, verify) : null;
      const verifyMs = performance.now() - t1;
      const specOut = flags.get('spec-out')?.[0];
      if (specOut) {
        await writeSpecOut(specOut, modelArg, {
          prompts: { clean, corrupt },
          experiment: { kind: 'attribute', site, metric: metricOpt.text, ...(method !== 'atp' ? { method } : {}), ...(normalize ? { normalize } : {}), ...(verify ? { verify } : {}) },
        });
      }
      if (json) {
        print(JSON.stringify({ ...attributionFields(site, method, grid), ...verifiedFields(v) }));
        return;
      }
      print(`patchbay attribute: ${source.describe}`);
      print(`  model    ${describeModel(model.config)}`);
      print(`  adapter  ${gpu.adapterName}`);
      print(`  input    clean and corrupt, ${T} tokens each`);
      print(`  metric   ${describeMetric(metricOpt)}: clean ${fmt(grid.clean)}, corrupt ${fmt(grid.corrupt)}`);
      print(
        `  method   ${method === 'atp' ? 'AtP' : 'AtP* (QK fix, GradDrop)'}: ${describeShape(grid.shape, grid.axes)} cells from ${grid.passes.forward} forwards and ${grid.passes.backward} backward${grid.passes.backward === 1 ? '' : 's'}`,
      );
      print(`  time     load ${loadMs.toFixed(0)} ms, attribution ${runMs.toFixed(0)} ms${v ? `, verifying ${verify} cells ${verifyMs.toFixed(0)} ms` : ''}`);
      print('');
      const what = grid.signed ? (normalize ? 'estimated normalized metric' : 'estimated patched metric') : normalize ? 'estimated |effect| / |clean - corrupt|' : 'estimated |effect|';
      const [rowAxis, colAxis] = grid.axes.slice(-2);
      print(`  ${what} (rows ${rowAxis}, columns ${colAxis}):`);
      printGrid(print, grid.values, grid.shape, grid.axes, { leadingNames: site === 'block_every' ? ['resid_pre', 'attn_out', 'mlp_out'] : undefined });
      if (v) {
        print('');
        print(`  the ${v.cells.length} largest cells, estimated and exact effect (m_patched - m_corrupt):`);
        for (const c of v.cells) print(`    [${c.coords.join(', ')}]  estimate ${fmt(c.estimate)}  exact ${fmt(c.exact)}`);
        print(`  largest error ${fmt(v.maxError)}`);
      }
    },
  );
}

interface FeatureArgs {
  clean: number[];
  corrupt: number[];
  saeArg: string;
  k: number;
  errorTerm: boolean;
  verify: number;
  metricOpt: ReturnType<typeof parseMetric>;
  normalize: boolean;
  json: boolean;
  specOut: string | undefined;
}

async function attributeFeatures(modelArg: string, a: FeatureArgs, print: (line: string) => void): Promise<void> {
  const saeSrc = await nodeSaeSource(a.saeArg);
  const T = a.clean.length;
  await withModel(
    modelArg,
    (c) => checkMetric(a.metricOpt, T, c.d_vocab),
    async ({ model, gpu, source, loadMs }) => {
      let sae: Sae | undefined;
      try {
        sae = await loadSae(gpu, saeSrc);
        if (a.k > sae.config.d_sae) throw new UsageError(`--top ${a.k}: the SAE has ${sae.config.d_sae} features`);
        const metric = toMetric(a.metricOpt, a.clean);
        const t0 = performance.now();
        const grid = await featureAttribution(model, sae, a.clean, a.corrupt, metric, { k: a.k, errorTerm: a.errorTerm, normalize: a.normalize });
        const runMs = performance.now() - t0;
        if (a.normalize && !(grid.clean !== grid.corrupt && Number.isFinite(grid.clean) && Number.isFinite(grid.corrupt))) {
          throw new Error(`--normalize: the clean and corrupted metrics are ${fmt(grid.clean)} and ${fmt(grid.corrupt)}; the normalization is undefined when they are equal`);
        }
        const t1 = performance.now();
        const v = a.verify > 0 ? await verifyFeatureTopK(model, sae, a.clean, a.corrupt, grid, metric, a.verify, { errorTerm: a.errorTerm }) : null;
        const verifyMs = performance.now() - t1;
        if (a.specOut) {
          await writeSpecOut(
            a.specOut,
            modelArg,
            {
              prompts: { clean: a.clean, corrupt: a.corrupt },
              experiment: { kind: 'attribute', site: 'features', metric: a.metricOpt.text, k: a.k, ...(a.normalize ? { normalize: true } : {}), ...(a.verify ? { verify: a.verify } : {}) },
            },
            { arg: a.saeArg, errorTerm: a.errorTerm },
          );
        }
        if (a.json) {
          print(JSON.stringify({ ...featureAttributionFields(grid), ...verifiedFields(v) }));
          return;
        }
        const c = sae.config;
        print(`patchbay attribute: ${source.describe} with ${c.source} (${c.architecture}, ${c.d_sae} features on ${c.hook_name}${a.errorTerm ? ', error term' : ''})`);
        print(`  model    ${describeModel(model.config)}`);
        print(`  adapter  ${gpu.adapterName}`);
        print(`  input    clean and corrupt, ${T} tokens each`);
        print(`  metric   ${describeMetric(a.metricOpt)}: clean ${fmt(grid.clean)}, corrupt ${fmt(grid.corrupt)}`);
        print(
          `  method   AtP over features: ${T * c.d_sae} estimates from ${grid.passes.forward} forwards and ${grid.passes.backward} backward; the ${a.k} features per position whose activation differs most`,
        );
        print(`  time     load ${loadMs.toFixed(0)} ms, attribution ${runMs.toFixed(0)} ms${v ? `, exact feature patching ${verifyMs.toFixed(0)} ms` : ''}`);
        print('');
        printFeatureCells(print, grid.positions, nest(grid.features, grid.shape) as number[][], nest(grid.effects, grid.shape) as number[][]);
        if (v) {
          print('');
          print(`  the ${v.cells.length} largest estimates, and the exact effect of patching that feature alone:`);
          for (const cell of v.cells) print(`    pos ${String(cell.pos).padStart(3)} feature #${String(cell.feature).padEnd(6)} estimate ${fmt(cell.estimate)}  exact ${fmt(cell.exact)}`);
          print(`  largest error ${fmt(v.maxError)}`);
        }
      } finally {
        sae?.destroy();
      }
    },
  );
}
