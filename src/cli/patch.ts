/**
 * `patchbay patch`: activation patching over a grid, with the sweep engine
 * (`patchingSweep`, src/experiments/patching.ts). For every cell of the site's grid (layer ×
 * position, layer × head, …) the corrupted prompt is run with that activation replaced by the
 * clean run's, and the metric of that run is recorded, as TransformerLens' `patching` module does
 * (`get_act_patch_resid_pre`, `get_act_patch_attn_head_out_all_pos`, …). The engine packs the
 * patched runs into the batch dimension, resumes each pass from the patched layer and position,
 * and chunks passes to fit the device's memory.
 */
import { PATCH_SITES, patchingSweep, type PatchSite } from '../experiments/patching.ts';
import type { ModelConfig } from '../model/config.ts';
import { UsageError, parseArgs, parseIdRow, DTYPE_HELP, parseDtypeFlag } from './args.ts';
import { checkTokenRows, describeModel, fmt, withModel } from './experiment.ts';
import { describeShape, nest, printGrid } from './grid.ts';
import { checkMetric, describeMetric, metricHelp, parseMetric, toMetric } from './metric.ts';
import { ALLOW_NONFINITE_FLAG, ALLOW_NONFINITE_HELP, checkFinite, jsonLine } from './finite.ts';

/** Every site `--site` accepts (PATCH_SITES). */
export const SITES: readonly PatchSite[] = PATCH_SITES;

const BLOCK_EVERY = ['resid_pre', 'attn_out', 'mlp_out'] as const;

export const PATCH_USAGE = `usage: patchbay patch <model-dir-or-url> --clean 0,5,9 --corrupt 0,7,9 --site SITE
                     --metric METRIC [--normalize] [--json]

Activation patching: runs the corrupted prompt with one activation replaced by the clean run's
value, for every cell of the site's grid, and reports the metric of each patched run (as
TransformerLens' patching module: get_act_patch_resid_pre, get_act_patch_attn_head_out_all_pos,
...). The patched runs go through the GPU as rows of a few batched passes.

  <model-dir-or-url>  a Hugging Face GPT-2 folder or an http(s) URL of one (as for patchbay cache)
  --clean 0,5,9       the clean prompt's token ids (the source of the patched activations)
  --corrupt 0,7,9     the corrupted prompt's token ids (the run that is patched); same length
  --site SITE         what is patched, and the grid's axes:
                        resid_pre, resid_mid, resid_post, attn_out, mlp_out
                                    [layer, pos]: blocks.L.hook_SITE[:, p]
                        block_every [component, layer, pos]: resid_pre, attn_out and mlp_out
                                    (component 0, 1, 2), each at (L, p)
                        z, q, k, v, pattern
                                    [layer, head]: blocks.L.attn.hook_SITE of head h, every position
                        z_by_pos, q_by_pos, k_by_pos, v_by_pos, pattern_by_pos
                                    [layer, head, pos]: the same at position p only (for pattern,
                                    the query position)
${metricHelp('the metric of each patched run', 'the CLEAN prompt\'s tokens (--clean), in the patched runs and both baselines')}
  --normalize         report (m - m_corrupt) / (m_clean - m_corrupt) instead of m: 0 is the
                      corrupted run's metric, 1 the clean run's
  --json              print {"site": SITE, "shape": [...], "axes": [...], "values": [...],
                      "clean": m_clean, "corrupt": m_corrupt}: values nested following shape
                      (for resid_pre, values[L][p]), clean and corrupt the unpatched metrics
                      (never normalized)
${ALLOW_NONFINITE_HELP}
${DTYPE_HELP}
  --help              this text`;

const FLAGS = {
  clean: { required: true },
  corrupt: { required: true },
  site: { required: true },
  metric: { required: true },
  normalize: { boolean: true },
  json: { boolean: true },
  'allow-nonfinite': ALLOW_NONFINITE_FLAG,
  dtype: {},
  help: { boolean: true },
} as const;

/** "blocks.L.hook_resid_pre[:, p]", for the summary. */
function describeSite(site: PatchSite): string {
  if (site === 'block_every') return 'blocks.L.hook_{resid_pre,attn_out,mlp_out}[:, p]';
  const base = site.replace(/_by_pos$/, '');
  if (!['z', 'q', 'k', 'v', 'pattern'].includes(base)) return `blocks.L.hook_${site}[:, p]`;
  const byPos = site.endsWith('_by_pos');
  if (base === 'pattern') return `blocks.L.attn.hook_pattern[:, h${byPos ? ', p' : ''}]`;
  return `blocks.L.attn.hook_${base}[:, ${byPos ? 'p' : ':'}, h]`;
}

/** A site the model's blocks do not have, refused before anything loads. */
function checkSite(site: PatchSite, c: ModelConfig): void {
  if (site === 'resid_mid' && c.parallel_attn_mlp) {
    const others = SITES.filter((s) => !s.startsWith('resid_mid') && !['z', 'q', 'k', 'v', 'pattern'].includes(s.replace(/_by_pos$/, '')) && s !== 'block_every');
    throw new UsageError(
      `--site resid_mid: ${c.architecture} runs attention and MLP in parallel (use_parallel_residual), so its blocks have no resid_mid; ` +
        `patch ${others.join(', ')} (or a head site) instead`,
    );
  }
}

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
  const siteText = flags.get('site')![0];
  if (!(SITES as readonly string[]).includes(siteText)) {
    throw new UsageError(`--site ${siteText}: unknown site; the sites are ${SITES.join(', ')}`);
  }
  const site = siteText as PatchSite;
  const metricOpt = parseMetric(flags.get('metric')![0]);
  const normalize = flags.has('normalize');
  const json = flags.has('json');
  const f16 = parseDtypeFlag(flags);
  const allowNonfinite = flags.has('allow-nonfinite');
  const T = clean.length;

  await withModel(
    modelArg,
    (c) => {
      checkTokenRows([clean], c, '--clean');
      checkTokenRows([corrupt], c, '--corrupt');
      checkMetric(metricOpt, T, c.d_vocab);
      checkSite(site, c);
    },
    async ({ model, gpu, source, loadMs }) => {
      const t0 = performance.now();
      // A loss predicts the clean prompt's next tokens, in the patched runs and both baselines.
      const grid = await patchingSweep(model, clean, corrupt, site, toMetric(metricOpt, clean), { normalize });
      const runMs = performance.now() - t0;
      if (normalize && !(grid.clean !== grid.corrupt && Number.isFinite(grid.clean) && Number.isFinite(grid.corrupt))) {
        throw new Error(
          `--normalize: the clean and corrupted metrics are ${fmt(grid.clean)} and ${fmt(grid.corrupt)}; ` +
            '(m - m_corrupt) / (m_clean - m_corrupt) is undefined when they are equal (or not finite)',
        );
      }

      if (json) {
        print(jsonLine({ site, shape: grid.shape, axes: grid.axes, values: nest(grid.values, grid.shape), clean: grid.clean, corrupt: grid.corrupt }));
        checkFinite([grid.clean, grid.corrupt, ...grid.values], 'the metric (clean, corrupted and every cell)', allowNonfinite);
        return;
      }
      const runs = grid.values.length;
      const { passes, work, naiveWork } = grid.stats;
      print(`patchbay patch: ${source.describe}`);
      print(`  model    ${describeModel(model.config)}`);
      print(`  adapter  ${gpu.adapterName}`);
      print(`  input    clean and corrupt, ${T} tokens each`);
      print(`  metric   ${describeMetric(metricOpt)}: clean ${fmt(grid.clean)}, corrupt ${fmt(grid.corrupt)}`);
      print(
        `  patched  ${site}: ${describeShape(grid.shape, grid.axes)} = ${runs} patched runs in ${passes === 1 ? 'one batched pass' : `${passes} batched passes`}` +
          (naiveWork > 0 ? ` (${((100 * work) / naiveWork).toFixed(0)}% of the layer × position work of ${runs} full forwards)` : ''),
      );
      print(`  time     load ${loadMs.toFixed(0)} ms, sweep + readback ${runMs.toFixed(0)} ms`);
      print('');
      const [rowAxis, colAxis] = grid.axes.slice(-2);
      const what = normalize ? 'normalized metric, (m - corrupt) / (clean - corrupt),' : 'metric';
      print(`  ${what} with ${describeSite(site)} patched from clean (rows ${rowAxis}, columns ${colAxis}):`);
      printGrid(print, grid.values, grid.shape, grid.axes, { leadingNames: site === 'block_every' ? BLOCK_EVERY : undefined });
      checkFinite([grid.clean, grid.corrupt, ...grid.values], 'the metric (clean, corrupted and every cell)', allowNonfinite);
    },
    { f16 },
  );
}
