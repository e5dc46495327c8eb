/**
 * Running an experiment spec (src/experiments/spec.ts) on a loaded model: what `patchbay run
 * spec.json --json` prints, and what the Python scripts `patchbay export` writes print too, so
 * the two can be compared number for number.
 *
 *   ablate        {"patchbay": 1, "kind": "ablate", "prompts": {...}, "metric": m | null,
 *                  "unablated": m0 | null, "top": [[id, p], ...]}   (top 5 next tokens after the
 *                  last position, with the interventions)
 *   patch         {"patchbay": 1, "kind": "patch", "prompts": {...}, "site", "shape", "axes",
 *                  "values" (nested over shape), "clean", "corrupt", "normalize"}
 *   sweep-ablate  {"patchbay": 1, "kind": "sweep-ablate", "prompts": {...}, "mode", "shape",
 *                  "axes", "values", "unablated"}
 *
 * "prompts" holds the token ids that were run. Host-neutral: the CLI and figures both call it.
 */
import { meanHead, zeroHead } from '../hooks/interventions.ts';
import type { Model } from '../model/model.ts';
import type { TextTokenizer } from '../model/tokenizer.ts';
import { headAblationSweep } from './ablation.ts';
import { metricCpu } from './metric.ts';
import { MetricSpecError, parseMetricSyntax, specToMetric } from './metric-spec.ts';
import { patchingSweep } from './patching.ts';
import { SPEC_VERSION, SpecError, ablatedHeads, type ExperimentSpec, type PromptValue } from './spec.ts';

export interface SpecRunOptions {
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

export type SpecResult = Record<string, unknown> & { patchbay: typeof SPEC_VERSION; kind: string };

/** Row-major `values` as nested arrays following `shape`. */
export function nest(values: ArrayLike<number>, shape: readonly number[]): unknown[] {
  const flat = Array.from(values);
  const build = (offset: number, dim: number): unknown[] => {
    const n = shape[dim];
    if (dim === shape.length - 1) return flat.slice(offset, offset + n);
    const stride = shape.slice(dim + 1).reduce((a, b) => a * b, 1);
    return Array.from({ length: n }, (_, i) => build(offset + i * stride, dim + 1));
  };
  return build(0, 0);
}

/** A prompt's token ids: ids as they are, text through the tokenizer. */
export function promptIds(p: PromptValue, tokenizer: TextTokenizer | null, what: string): number[] {
  if (typeof p !== 'string') return p;
  if (!tokenizer) {
    // A model without a tokenizer takes ids, and figures write them as "0,5,9".
    if (/^\s*\d+(\s*[,\s]\s*\d+)*\s*$/.test(p)) return p.split(/[\s,]+/).filter(Boolean).map(Number);
    throw new SpecError(`${what} is text, and this model has no tokenizer (tokenizer.json): give token ids`);
  }
  return tokenizer.encode(p);
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
  const ids = Array.from(row.keys()).sort((a, b) => row[b] - row[a] || a - b).slice(0, k);
  return ids.map((i) => [i, Math.exp(row[i] - max) / sum]);
}

/** Runs the spec's experiment on `model` (already loaded from the spec's model). */
export async function runSpec(model: Model, spec: ExperimentSpec, tokenizer: TextTokenizer | null, options: SpecRunOptions = {}): Promise<SpecResult> {
  const clean = promptIds(spec.prompts.clean, tokenizer, 'spec.prompts.clean');
  const corrupt = spec.prompts.corrupt === undefined ? undefined : promptIds(spec.prompts.corrupt, tokenizer, 'spec.prompts.corrupt');
  const prompts = corrupt ? { clean, corrupt } : { clean };
  const e = spec.experiment;
  const { n_layers: L, n_heads: H, d_vocab: V } = model.config;
  switch (e.kind) {
    case 'ablate': {
      const { heads, mode } = ablatedHeads(spec);
      for (const h of heads) {
        if (h.layer >= L || h.head >= H) throw new SpecError(`spec.interventions: head ${h.layer}.${h.head} is not in this model (layers 0 .. ${L - 1}, heads 0 .. ${H - 1})`);
      }
      const metric = e.metric ? metricFor(e.metric, clean, model, tokenizer) : null;
      const layers = [...new Set(heads.map((h) => h.layer))];
      const plain = await model.run([clean], { cache: mode === 'mean' ? layers.map((l) => `blocks.${l}.attn.hook_z`) : [] });
      try {
        const hooks = heads.map((h) => (mode === 'zero' ? zeroHead(h.layer, h.head) : meanHead(h.layer, h.head, plain.cache, { pooled: true })));
        const ablated = heads.length ? await model.run([clean], { hooks }) : plain;
        try {
          const logits = await ablated.logits.read(); // [1, T, V]
          const base = heads.length ? await plain.logits.read() : logits;
          const T = clean.length;
          return {
            patchbay: SPEC_VERSION,
            kind: 'ablate',
            prompts,
            metric: metric ? metricCpu(metric, logits, 1, V)[0] : null,
            unablated: metric ? metricCpu(metric, base, 1, V)[0] : null,
            top: topK(logits.subarray((T - 1) * V, T * V), 5),
          };
        } finally {
          if (ablated !== plain) ablated.release();
        }
      } finally {
        plain.release();
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
    case 'attribute':
      throw new SpecError('spec.experiment: "attribute" (attribution patching) needs gradients, which this build of Patchbay does not have yet');
  }
}
