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
import { writeSpecOut } from './spec-file.ts';
import type { ModelConfig } from '../model/config.ts';
import { UsageError, parseArgs, parseIdRow, DTYPE_HELP, parseDtypeFlag, PROCESSING_HELP, parseProcessingFlag } from './args.ts';
import { checkTokenRows, describeModel, fmt, withModel } from './experiment.ts';
import { describeShape, nest, printGrid } from './grid.ts';
import { checkMetric, describeMetric, metricHelp, parseMetric, toMetric } from './metric.ts';
import { ALLOW_NONFINITE_FLAG, ALLOW_NONFINITE_HELP, checkFinite, jsonLine } from './finite.ts';

/** Every site `--site` accepts (PATCH_SITES). */
export const SITES: readonly PatchSite[] = PATCH_SITES;

/** Names of the components of the sites with a leading component axis. */
const COMPONENTS: Partial<Record<PatchSite, readonly string[]>> = {
  block_every: ['resid_pre', 'attn_out', 'mlp_out'],
  head_all_pos_every: ['z', 'q', 'k', 'v', 'pattern'],
  head_by_pos_every: ['z', 'q', 'k', 'v', 'pattern'],
};

export const PATCH_USAGE = `usage: patchbay patch <model-dir-or-url> --clean 0,5,9 --corrupt 0,7,9 [--clean ... --corrupt ...]
                     --site SITE --metric METRIC [--metric ...] [--reduce mean|sum] [--normalize]
                     [--processing P] [--json]

Activation patching: runs the corrupted prompt with one activation replaced by the clean run's
value, for every cell of the site's grid, and reports the metric of each patched run (as
TransformerLens' patching module: get_act_patch_resid_pre, get_act_patch_attn_head_out_all_pos,
..., with its grid shapes). The patched runs go through the GPU as rows of a few batched passes.

  <model-dir-or-url>  a Hugging Face GPT-2 folder or an http(s) URL of one (as for patchbay cache)
  --clean 0,5,9       the clean prompt's token ids (the source of the patched activations)
  --corrupt 0,7,9     the corrupted prompt's token ids (the run that is patched); same length
                      Repeat both for a batch of pairs (the n-th --clean with the n-th --corrupt,
                      all of one length): each cell is then the metric reduced over the pairs
  --site SITE         what is patched, and the grid's axes:
                        resid_pre, resid_mid, resid_post, attn_out, mlp_out
                                    [layer, pos]: blocks.L.hook_SITE[:, p]
                        block_every [component, layer, pos]: resid_pre, attn_out and mlp_out
                                    (component 0, 1, 2), each at (L, p)
                        z, q, k, v, pattern
                                    [layer, head]: blocks.L.attn.hook_SITE of head h, every position
                        z_by_pos, q_by_pos, k_by_pos, v_by_pos
                                    [layer, pos, head]: the same at position p only
                        pattern_by_pos
                                    [layer, head, dest_pos]: head h's pattern row at query position p
                        pattern_dest_src
                                    [layer, head, dest_pos, src_pos]: one entry of the pattern
                        head_all_pos_every
                                    [component, layer, head]: z, q, k, v, pattern (component 0..4)
                        head_by_pos_every
                                    [component, layer, pos, head]: the same by position
                      (k and v have the key/value heads; the _every grids pad them with 0)
${metricHelp('the metric of each patched run', "the CLEAN prompt's tokens (--clean), in the patched runs and both baselines")}
                      Repeat --metric once per pair to give each pair its own (e.g. its own answer
                      tokens); a loss predicts each pair's own clean tokens
  --reduce mean|sum   how a cell's per-pair values become one (default mean)
  --normalize         report (m - m_corrupt) / (m_clean - m_corrupt) instead of m: 0 is the
                      corrupted run's metric, 1 the clean run's
  --json              print {"site": SITE, "shape": [...], "axes": [...], "values": [...],
                      "clean": m_clean, "corrupt": m_corrupt}: values nested following shape
                      (for resid_pre, values[L][p]), clean and corrupt the unpatched metrics
                      (never normalized)
${ALLOW_NONFINITE_HELP}
${DTYPE_HELP}
${PROCESSING_HELP}
  --spec-out FILE     also write the experiment spec of this run to FILE (patchbay run FILE
                      runs it again; patchbay export FILE writes it as a Python script)
  --help              this text`;

const FLAGS = {
  clean: { required: true, repeated: true },
  corrupt: { required: true, repeated: true },
  site: { required: true },
  metric: { required: true, repeated: true },
  reduce: {},
  normalize: { boolean: true },
  json: { boolean: true },
  'allow-nonfinite': ALLOW_NONFINITE_FLAG,
  dtype: {},
  processing: {},
  'spec-out': {},
  help: { boolean: true },
} as const;

/** "blocks.L.hook_resid_pre[:, p]", for the summary. */
function describeSite(site: PatchSite): string {
  if (site === 'block_every') return 'blocks.L.hook_{resid_pre,attn_out,mlp_out}[:, p]';
  if (site === 'head_all_pos_every') return 'blocks.L.attn.hook_{z,q,k,v}[:, :, h] and hook_pattern[:, h]';
  if (site === 'head_by_pos_every') return 'blocks.L.attn.hook_{z,q,k,v}[:, p, h] and hook_pattern[:, h, p]';
  if (site === 'pattern_dest_src') return 'blocks.L.attn.hook_pattern[:, h, d, s]';
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
      `--site resid_mid: ${c.architecture} runs attention and MLP in parallel (use_parallel_residual), so its blocks have no resid_mid; ` + `patch ${others.join(', ')} (or a head site) instead`,
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
  const cleanRows = flags.get('clean')!.map((t) => parseIdRow(t, '--clean'));
  const corruptRows = flags.get('corrupt')!.map((t) => parseIdRow(t, '--corrupt'));
  if (cleanRows.length !== corruptRows.length) {
    throw new UsageError(`${cleanRows.length} --clean prompts and ${corruptRows.length} --corrupt prompts; give them in pairs`);
  }
  const N = cleanRows.length;
  const pairText = (n: number) => (N > 1 ? ` (pair ${n})` : '');
  cleanRows.forEach((clean, n) => {
    const corrupt = corruptRows[n];
    if (clean.length !== corrupt.length) {
      throw new UsageError(`--clean has ${clean.length} tokens and --corrupt ${corrupt.length}${pairText(n)}; patching needs prompts of equal length`);
    }
    if (clean.length !== cleanRows[0].length) throw new UsageError(`every prompt of a batch needs the same length: pair 0 has ${cleanRows[0].length} tokens, pair ${n} ${clean.length}`);
    if (clean.every((t, i) => t === corrupt[i])) {
      throw new UsageError(`--clean and --corrupt are identical${pairText(n)}: patching one into the other cannot change anything; give a corrupted prompt that differs`);
    }
  });
  const clean = cleanRows[0];
  const siteText = flags.get('site')![0];
  if (!(SITES as readonly string[]).includes(siteText)) {
    throw new UsageError(`--site ${siteText}: unknown site; the sites are ${SITES.join(', ')}`);
  }
  const site = siteText as PatchSite;
  const metricOpts = flags.get('metric')!.map(parseMetric);
  if (metricOpts.length !== 1 && metricOpts.length !== N) throw new UsageError(`${metricOpts.length} --metric values for ${N} pairs; give one, or one per pair`);
  const metricOpt = metricOpts[0];
  const reduceText = flags.get('reduce')?.[0] ?? 'mean';
  if (reduceText !== 'mean' && reduceText !== 'sum') throw new UsageError(`--reduce ${reduceText}: unknown reduction; expected mean or sum`);
  const normalize = flags.has('normalize');
  const json = flags.has('json');
  const f16 = parseDtypeFlag(flags);
  const allowNonfinite = flags.has('allow-nonfinite');
  const processing = parseProcessingFlag(flags);
  const T = clean.length;
  if (flags.has('spec-out') && N > 1) throw new UsageError('--spec-out: a spec holds one prompt pair; give one --clean and one --corrupt');

  await withModel(
    modelArg,
    (c) => {
      checkTokenRows(cleanRows, c, '--clean');
      checkTokenRows(corruptRows, c, '--corrupt');
      for (const m of metricOpts) checkMetric(m, T, c.d_vocab);
      checkSite(site, c);
    },
    async ({ model, gpu, source, loadMs }) => {
      const t0 = performance.now();
      // A loss predicts each pair's clean prompt's next tokens, in the patched runs and both baselines.
      const metrics = cleanRows.map((row, n) => toMetric(metricOpts[metricOpts.length === 1 ? 0 : n], row));
      // The library refuses an undefined normalization (equal or non-finite baselines) before sweeping.
      const grid = await patchingSweep(model, N === 1 ? clean : cleanRows, N === 1 ? corruptRows[0] : corruptRows, site, N === 1 ? metrics[0] : metrics, {
        normalize,
        reduce: reduceText,
      });
      const runMs = performance.now() - t0;
      const specOut = flags.get('spec-out')?.[0];
      if (specOut) {
        await writeSpecOut(specOut, modelArg, {
          ...(processing !== 'none' ? { processing } : {}),
          prompts: { clean, corrupt: corruptRows[0] },
          experiment: { kind: 'patch', site, metric: metricOpt.text, ...(normalize ? { normalize } : {}) },
        });
      }

      if (json) {
        print(jsonLine({ site, shape: grid.shape, axes: grid.axes, values: nest(grid.values, grid.shape), clean: grid.clean, corrupt: grid.corrupt }));
        checkFinite([grid.clean, grid.corrupt, ...grid.values], 'the metric (clean, corrupted and every cell)', allowNonfinite);
        return;
      }
      const runs = grid.values.length * N; // cells x pairs (padding cells included)
      const { passes, work, naiveWork } = grid.stats;
      print(`patchbay patch: ${source.describe}`);
      print(`  model    ${describeModel(model.config)}`);
      print(`  adapter  ${gpu.adapterName}`);
      print(N === 1 ? `  input    clean and corrupt, ${T} tokens each` : `  input    ${N} clean and corrupt pairs, ${T} tokens each; each cell the ${reduceText} over the pairs`);
      print(
        `  metric   ${metricOpts.length === 1 ? describeMetric(metricOpt) : `one per pair (${metricOpts.map((m) => m.text).join(', ')})`}: ` +
          `clean ${fmt(grid.clean)}, corrupt ${fmt(grid.corrupt)}${N > 1 ? ` (${reduceText} over the pairs)` : ''}`,
      );
      print(
        `  patched  ${site}: ${describeShape(grid.shape, grid.axes)} = ${runs} patched runs in ${passes === 1 ? 'one batched pass' : `${passes} batched passes`}` +
          (naiveWork > 0 ? ` (${((100 * work) / naiveWork).toFixed(0)}% of the layer × position work of ${runs} full forwards)` : ''),
      );
      print(`  time     load ${loadMs.toFixed(0)} ms, sweep + readback ${runMs.toFixed(0)} ms`);
      print('');
      const [rowAxis, colAxis] = grid.axes.slice(-2);
      const what = normalize ? 'normalized metric, (m - corrupt) / (clean - corrupt),' : 'metric';
      print(`  ${what} with ${describeSite(site)} patched from clean (rows ${rowAxis}, columns ${colAxis}):`);
      printGrid(print, grid.values, grid.shape, grid.axes, { leadingNames: COMPONENTS[site] });
      checkFinite([grid.clean, grid.corrupt, ...grid.values], 'the metric (clean, corrupted and every cell)', allowNonfinite);
    },
    { f16, processing },
  );
}
