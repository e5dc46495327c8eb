/**
 * Snapshots: what a page's figures show for one experiment state, computed ahead of time
 * (`patchbay snapshot SPEC --out FILE`), so that a reader whose browser has no WebGPU still sees
 * the figures, drawn from the file (`<pb-model snapshot="FILE">`), with a message saying what is
 * missing. Values are rounded to 6 significant digits.
 *
 * A snapshot holds, for the spec's clean prompt with its interventions applied:
 *   attention  hook_pattern of the heads asked for (default: every head, when they fit in 2M values)
 *   top        the 10 most probable next tokens after every position (and, with heads ablated,
 *              the unablated model's probability of each)
 *   metric     the metric with and without the interventions, and every head's ablation effect
 *   patching   the patching grid of the spec's site (for a patch experiment)
 *   lens       the logit lens: the 5 most probable tokens per layer and position
 */
import { accumulatedResid } from '../hooks/cache-helpers.ts';
import { meanHead, zeroHead } from '../hooks/interventions.ts';
import type { Model, RunResult } from '../model/model.ts';
import type { TextTokenizer } from '../model/tokenizer.ts';
import { headAblationSweep } from './ablation.ts';
import { metricCpu } from './metric.ts';
import { parseMetricSyntax, specToMetric } from './metric-spec.ts';
import { patchingSweep, type PatchSite } from './patching.ts';
import { promptIds } from './run-spec.ts';
import { SPEC_VERSION, ablatedHeads, describeModelRef, type ExperimentSpec } from './spec.ts';

export const SNAPSHOT_VERSION = 1;

export interface Snapshot {
  patchbay: typeof SNAPSHOT_VERSION;
  kind: 'snapshot';
  /** The experiment it shows. */
  spec: ExperimentSpec;
  model: { name: string; n_layers: number; n_heads: number; d_vocab: number };
  /** Token ids of the prompts, and how each token reads. */
  ids: { clean: number[]; corrupt?: number[] };
  labels: { clean: string[]; corrupt?: string[] };
  /** Token id -> text, for every token a figure names (top tokens, lens). */
  vocab: Record<string, string>;
  attention: { heads: string[]; /** per head, [query, key] row-major */ patterns: number[][] };
  /** top[pos] = [[id, p, unablated p?], ...], most probable first. */
  top: number[][][];
  metric: { value: number; unablated: number; effects: { mode: 'zero' | 'mean'; values: number[] } } | null;
  patching: { site: PatchSite; normalize: boolean; shape: number[]; axes: string[]; values: number[]; clean: number; corrupt: number } | null;
  lens: { rows: string[]; k: number; /** per row × position: [[id, p], ...] */ top: number[][][] } | null;
}

const round = (x: number) => (Number.isFinite(x) ? Number(x.toPrecision(6)) : x);

function softmaxTop(row: Float32Array, k: number): [number, number][] {
  let max = -Infinity;
  for (const x of row) max = Math.max(max, x);
  let sum = 0;
  for (const x of row) sum += Math.exp(x - max);
  const best: number[] = [];
  for (let i = 0; i < row.length; i++) {
    if (best.length === k && row[i] <= row[best[k - 1]]) continue;
    let at = best.length;
    while (at > 0 && row[best[at - 1]] < row[i]) at--;
    best.splice(at, 0, i);
    if (best.length > k) best.pop();
  }
  return best.map((i) => [i, Math.exp(row[i] - max) / sum]);
}

export interface SnapshotOptions {
  /** Heads whose attention patterns to keep, "L.H" (default: all, when they fit). */
  heads?: string[];
}

export async function makeSnapshot(model: Model, spec: ExperimentSpec, tokenizer: TextTokenizer | null, options: SnapshotOptions = {}): Promise<Snapshot> {
  const { n_layers: L, n_heads: H, d_vocab: V } = model.config;
  const clean = promptIds(spec.prompts.clean, tokenizer, 'spec.prompts.clean');
  const corrupt = spec.prompts.corrupt === undefined ? undefined : promptIds(spec.prompts.corrupt, tokenizer, 'spec.prompts.corrupt');
  const T = clean.length;
  const label = (id: number) => (tokenizer ? tokenizer.tokenText(id) : String(id));
  const vocab: Record<string, string> = {};
  const see = (id: number) => (vocab[id] = label(id));
  clean.forEach(see);
  corrupt?.forEach(see);

  const { heads: ablate, mode } = ablatedHeads(spec);
  const allHeads = Array.from({ length: L * H }, (_, i) => `${Math.floor(i / H)}.${i % H}`);
  const heads = options.heads ?? (spec.view?.heads?.length && L * H * T * T > 2e6 ? spec.view.heads : allHeads);
  const layers = [...new Set(heads.map((h) => Number(h.split('.')[0])))];
  const resid = [...Array.from({ length: L }, (_, l) => `blocks.${l}.hook_resid_pre`), `blocks.${L - 1}.hook_resid_post`];

  const plain = await model.run([clean], { cache: [...new Set([...ablate.map((h) => `blocks.${h.layer}.attn.hook_z`)])] });
  let run: RunResult | null = null;
  try {
    const hooks = ablate.map((h) => (mode === 'zero' ? zeroHead(h.layer, h.head) : meanHead(h.layer, h.head, plain.cache, { pooled: true })));
    run = await model.run([clean], { cache: [...layers.map((l) => `blocks.${l}.attn.hook_pattern`), ...resid], hooks });
    const logits = await run.logits.read(); // [1, T, V]
    const base = ablate.length ? await plain.logits.read() : null;

    const patterns: number[][] = [];
    for (const h of heads) {
      const [l, hh] = h.split('.').map(Number);
      const p = await run.cache.read(`blocks.${l}.attn.hook_pattern`); // [1, H, T, T]
      patterns.push(Array.from(p.subarray(hh * T * T, (hh + 1) * T * T), round));
    }

    const top = Array.from({ length: T }, (_, pos) => {
      const row = logits.subarray(pos * V, (pos + 1) * V);
      const list = softmaxTop(row, 10);
      const baseRow = base?.subarray(pos * V, (pos + 1) * V);
      return list.map(([id, p]) => {
        see(id);
        if (!baseRow) return [id, round(p)];
        let max = -Infinity;
        for (const x of baseRow) max = Math.max(max, x);
        let sum = 0;
        for (const x of baseRow) sum += Math.exp(x - max);
        return [id, round(p), round(Math.exp(baseRow[id] - max) / sum)];
      });
    });

    const stack = await accumulatedResid(run.cache); // [L + 1, 1, T, d_model]
    const lensLogits = await model.logitLens(stack.data); // [(L + 1) * T, V]
    const lens = {
      rows: stack.labels.map((l) => (l === 'final_post' ? 'final' : `resid_pre ${l.split('_')[0]}`)),
      k: 5,
      top: Array.from({ length: lensLogits.length / V }, (_, i) =>
        softmaxTop(lensLogits.subarray(i * V, (i + 1) * V), 5).map(([id, p]) => (see(id), [id, round(p)])),
      ),
    };

    const metricText = 'metric' in spec.experiment ? spec.experiment.metric : undefined;
    let metric: Snapshot['metric'] = null;
    let patching: Snapshot['patching'] = null;
    if (metricText) {
      const m = specToMetric(parseMetricSyntax(metricText), clean, V, tokenizer);
      const sweepMode = spec.experiment.kind === 'sweep-ablate' ? (spec.experiment.mode ?? 'zero') : mode;
      const effects = await headAblationSweep(model, clean, m, { mode: sweepMode });
      metric = {
        value: round(metricCpu(m, logits, 1, V)[0]),
        unablated: round(effects.clean),
        effects: { mode: sweepMode, values: Array.from(effects.values, (v) => round(v - effects.clean)) },
      };
      const e = spec.experiment;
      if (e.kind === 'patch' && corrupt) {
        const g = await patchingSweep(model, clean, corrupt, e.site, m, { normalize: !!e.normalize });
        patching = { site: e.site, normalize: !!e.normalize, shape: g.shape, axes: g.axes, values: Array.from(g.values, round), clean: round(g.clean), corrupt: round(g.corrupt) };
      }
    }

    return {
      patchbay: SNAPSHOT_VERSION,
      kind: 'snapshot',
      spec: { ...spec, patchbay: SPEC_VERSION },
      model: { name: describeModelRef(spec.model), n_layers: L, n_heads: H, d_vocab: V },
      ids: corrupt ? { clean, corrupt } : { clean },
      labels: corrupt ? { clean: clean.map(label), corrupt: corrupt.map(label) } : { clean: clean.map(label) },
      vocab,
      attention: { heads, patterns },
      top,
      metric,
      patching,
      lens,
    };
  } finally {
    run?.release();
    plain.release();
  }
}
