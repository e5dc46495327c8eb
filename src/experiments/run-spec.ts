/**
 * Running an experiment spec (src/experiments/spec.ts) on a loaded model: what `patchbay run
 * spec.json --json` prints, and what the Python scripts `patchbay export` writes print too, so
 * the two can be compared number for number.
 *
 *   ablate        {"patchbay": 2, "kind": "ablate", "prompts": {...}, "metric": m | null,
 *                  "unablated": m0 | null, "top": [[id, p], ...]}   (top 5 next tokens after the
 *                  last position, with the interventions; for a batch of clean prompts, metric,
 *                  unablated and top are lists with one entry per row)
 *   patch         {"patchbay": 2, "kind": "patch", "prompts": {...}, "site", "shape", "axes",
 *                  "values" (nested over shape), "clean", "corrupt", "normalize"}
 *   sweep-ablate  {"patchbay": 2, "kind": "sweep-ablate", "prompts": {...}, "mode", "shape",
 *                  "axes", "values", "unablated"}
 *   attribute     {"patchbay": 2, "kind": "attribute", "prompts": {...}, "site", "method", "shape",
 *                  "axes", "values" (the estimated patched metric, nested over shape), "effects"
 *                  (the estimates), "signed", "clean", "corrupt", "normalize"[, "verified":
 *                  [{"index", "coords", "estimate", "exact"}], "max_error"]}; site "features" adds
 *                  "hook", "positions", "features" and "acts" (each cell's feature and its clean
 *                  activation, nested over [pos, rank]; feature -1 and values null where a
 *                  position has fewer than k), and "pos" / "feature" on verified cells
 *
 * "prompts" holds the token ids that were run. Host-neutral: the CLI and figures both call it.
 */
import type { Sae } from '../features/sae.ts';
import { withErrorTerm, type SaeUse } from '../hooks/splice.ts';
import type { Model } from '../hooks/model.ts';
import type { TextTokenizer } from '../model/tokenizer.ts';
import { headAblationSweep } from './ablation.ts';
import { metricCpu } from '../model/metric.ts';
import { MetricSpecError, parseMetricSyntax, specToMetric } from './metric-spec.ts';
import { patchingSweep } from './patching.ts';
import { attributionSweep, verifyTopK } from './attribution.ts';
import { featureAttribution } from './feature-attribution.ts';
import { attributionFields, featureAttributionFields, nest, verifiedFields } from './grid-json.ts';
import { verifyFeatureTopK } from './feature-verify.ts';
import { prepareInterventions, type PromptIdRows } from './spec-interventions.ts';
import { SPEC_VERSION, SpecError, isBatch, promptRows, type ExperimentSpec, type PromptValue, type Prompts } from './spec.ts';

export interface SpecRunOptions {
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
  /** The spec's SAE (`spec.sae`), loaded on the model's GPU by the caller. */
  sae?: Sae | null;
}

export type SpecResult = Record<string, unknown> & { patchbay: typeof SPEC_VERSION; kind: string };

/** A prompt's token ids: ids as they are, text through the tokenizer. */
export function promptIds(p: PromptValue, tokenizer: TextTokenizer | null, what: string): number[] {
  if (typeof p !== 'string') return p;
  if (!tokenizer) {
    // A model without a tokenizer takes ids, and figures write them as "0,5,9".
    if (/^\s*\d+(\s*[,\s]\s*\d+)*\s*$/.test(p))
      return p
        .split(/[\s,]+/)
        .filter(Boolean)
        .map(Number);
    throw new SpecError(`${what} is text, and this model has no tokenizer (tokenizer.json): give token ids`);
  }
  return tokenizer.encode(p);
}

/** Token id rows of one prompt or a batch; every row of a batch must have one token length. */
export function promptIdRows(p: Prompts, tokenizer: TextTokenizer | null, what: string): number[][] {
  const batch = isBatch(p);
  const rows = promptRows(p).map((x, i) => promptIds(x, tokenizer, batch ? `${what}[${i}]` : what));
  const n = rows[0].length;
  const bad = rows.findIndex((r) => r.length !== n);
  if (bad >= 0) throw new SpecError(`${what}[${bad}] is ${rows[bad].length} tokens and ${what}[0] ${n}: the rows of a batch need one length`);
  return rows;
}

/** The SAE as the spec splices it (with its error term unless `error_term` is false). */
export function specSaes(spec: ExperimentSpec, sae: Sae | null | undefined): SaeUse[] {
  if (!spec.sae) return [];
  if (!sae) throw new SpecError('spec.sae: the spec splices an SAE, and none was loaded for it');
  return [spec.sae.error_term === false ? sae : withErrorTerm(sae)];
}

/** The experiment's metric for `ids`, with spec errors named as spec errors. */
function metricFor(text: string, ids: number[], model: Model, tokenizer: TextTokenizer | null) {
  try {
    return specToMetric(parseMetricSyntax(text), ids, model.config.d_vocab, tokenizer);
  } catch (e) {
    if (e instanceof MetricSpecError) throw new SpecError(`spec.experiment.metric: ${e.message}`);
    throw e;
  }
}

/** The top `k` tokens of one logits row, [[id, p], ...], most probable first. */
function topK(row: Float32Array, k: number): [number, number][] {
  let max = -Infinity;
  for (const x of row) max = Math.max(max, x);
  let sum = 0;
  for (const x of row) sum += Math.exp(x - max);
  const ids = Array.from(row.keys())
    .sort((a, b) => row[b] - row[a] || a - b)
    .slice(0, k);
  return ids.map((i) => [i, Math.exp(row[i] - max) / sum]);
}

/** Runs the spec's experiment on `model` (already loaded from the spec's model). */
export async function runSpec(model: Model, spec: ExperimentSpec, tokenizer: TextTokenizer | null, options: SpecRunOptions = {}): Promise<SpecResult> {
  // Batches are for ablate experiments only (parseSpec refuses them elsewhere).
  const single = (p: Prompts, what: string) => promptIds(isBatch(p) ? p[0] : p, tokenizer, what);
  const clean = single(spec.prompts.clean, 'spec.prompts.clean');
  const corrupt = spec.prompts.corrupt === undefined ? undefined : single(spec.prompts.corrupt, 'spec.prompts.corrupt');
  const prompts = corrupt ? { clean, corrupt } : { clean };
  const e = spec.experiment;
  const V = model.config.d_vocab;
  switch (e.kind) {
    case 'ablate': {
      const rows: PromptIdRows = { clean: promptIdRows(spec.prompts.clean, tokenizer, 'spec.prompts.clean') };
      if (spec.prompts.corrupt !== undefined) rows.corrupt = promptIdRows(spec.prompts.corrupt, tokenizer, 'spec.prompts.corrupt');
      if (spec.prompts.reference) rows.reference = promptIdRows(spec.prompts.reference, tokenizer, 'spec.prompts.reference');
      const batch = isBatch(spec.prompts.clean);
      const B = rows.clean.length;
      const T = rows.clean[0].length;
      const metrics = e.metric ? rows.clean.map((r) => metricFor(e.metric!, r, model, tokenizer)) : null;
      const saes = specSaes(spec, options.sae);
      const prepared = await prepareInterventions(model, spec.interventions ?? [], rows, { saes, sae: options.sae ?? null });
      try {
        const plain = await model.run(rows.clean, { saes });
        try {
          const ablated = prepared.hooks.length ? await model.run(rows.clean, { saes, hooks: prepared.hooks }) : plain;
          try {
            const logits = await ablated.logits.read(); // [B, T, V]
            const base = ablated === plain ? logits : await plain.logits.read();
            const metric = metrics ? Array.from(metricCpu(metrics, logits, B, V)) : null;
            const unablated = metrics ? Array.from(metricCpu(metrics, base, B, V)) : null;
            const top = rows.clean.map((_, b) => topK(logits.subarray((b * T + T - 1) * V, (b * T + T) * V), 5));
            const one = <X>(list: X[] | null): X | X[] | null => (list === null ? null : batch ? list : list[0]);
            return {
              patchbay: SPEC_VERSION,
              kind: 'ablate',
              prompts: {
                clean: batch ? rows.clean : rows.clean[0],
                ...(rows.corrupt ? { corrupt: isBatch(spec.prompts.corrupt!) ? rows.corrupt : rows.corrupt[0] } : {}),
                ...(rows.reference ? { reference: rows.reference } : {}),
              },
              metric: one(metric),
              unablated: one(unablated),
              top: batch ? top : top[0],
            };
          } finally {
            if (ablated !== plain) ablated.release();
          }
        } finally {
          plain.release();
        }
      } finally {
        prepared.release();
      }
    }
    case 'patch': {
      if (!corrupt) throw new SpecError('spec.prompts.corrupt: patching needs a corrupted prompt');
      const metric = metricFor(e.metric, clean, model, tokenizer);
      const grid = await patchingSweep(model, clean, corrupt, e.site, metric, { normalize: !!e.normalize, ...options });
      return {
        patchbay: SPEC_VERSION,
        kind: 'patch',
        prompts,
        site: e.site,
        shape: grid.shape,
        axes: grid.axes,
        values: nest(grid.values, grid.shape),
        clean: grid.clean,
        corrupt: grid.corrupt,
        normalize: !!e.normalize,
      };
    }
    case 'sweep-ablate': {
      const metric = metricFor(e.metric, clean, model, tokenizer);
      const mode = e.mode ?? 'zero';
      const grid = await headAblationSweep(model, clean, metric, { mode, ...options });
      return { patchbay: SPEC_VERSION, kind: 'sweep-ablate', prompts, mode, shape: grid.shape, axes: grid.axes, values: nest(grid.values, grid.shape), unablated: grid.clean };
    }
    case 'attribute': {
      if (!corrupt) throw new SpecError('spec.prompts.corrupt: attribution needs a corrupted prompt');
      if (clean.length !== corrupt.length) throw new SpecError(`spec.prompts: attribution needs prompts of equal length (${clean.length} and ${corrupt.length} tokens)`);
      const metric = metricFor(e.metric, clean, model, tokenizer);
      const normalize = !!e.normalize;
      if (e.site === 'features') {
        const sae = options.sae;
        if (!spec.sae || !sae) throw new SpecError("spec.sae: attributing to features needs the spec's SAE, and none was loaded for it");
        const errorTerm = spec.sae.error_term !== false;
        const grid = await featureAttribution(model, sae, clean, corrupt, metric, { k: e.k ?? 5, errorTerm, normalize });
        const v = e.verify ? await verifyFeatureTopK(model, sae, clean, corrupt, grid, metric, e.verify, { errorTerm, signal: options.signal, onProgress: options.onProgress }) : null;
        return {
          patchbay: SPEC_VERSION,
          kind: 'attribute',
          prompts,
          ...featureAttributionFields(grid),
          normalize,
          ...verifiedFields(v),
        };
      }
      const method = e.method ?? 'atp';
      const grid = await attributionSweep(model, clean, corrupt, e.site, metric, { method, normalize });
      const v = e.verify ? await verifyTopK(model, clean, corrupt, grid, metric, e.verify, { signal: options.signal, onProgress: options.onProgress }) : null;
      return {
        patchbay: SPEC_VERSION,
        kind: 'attribute',
        prompts,
        ...attributionFields(e.site, method, grid),
        normalize,
        ...verifiedFields(v),
      };
    }
  }
}
