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
 *   features   with an SAE (spec.sae): the 8 most active features at every position, each of
 *              those features (and the selected, ablated and steered ones) across the prompt,
 *              and the next token after the last position with the feature ablations and
 *              steering, and without
 *
 * The spec's interventions must be what figures show (head ablations, feature ablations, one
 * feature steered: `figureInterventions`). Version 1 snapshots (a version 1 spec, no features)
 * are read too (`readSnapshot`).
 */
import { accumulatedResid } from '../hooks/cache-helpers.ts';
import type { Sae } from '../features/sae.ts';
import { topFeatures } from '../features/top-features.ts';
import type { Model, RunResult } from '../hooks/model.ts';
import type { TextTokenizer } from '../model/tokenizer.ts';
import { headAblationSweep } from './ablation.ts';
import { metricCpu, type Metric } from '../model/metric.ts';
import { parseMetricSyntax, specToMetric, type TokenEncoder } from './metric-spec.ts';
import { patchingSweep, type PatchSite } from './patching.ts';
import { promptIds, specSaes } from './run-spec.ts';
import { featureAttribution } from './feature-attribution.ts';
import { verifyFeatureTopK } from './feature-verify.ts';
import { prepareInterventions } from './spec-interventions.ts';
import { SpecError, describeModelRef, figureInterventions, figureSpecInterventions, isBatch, parseSpec, type ExperimentSpec, type FigureInterventions } from './spec.ts';

export const SNAPSHOT_VERSION = 2;

/** What the feature figures show (`<pb-features>`, `<pb-feature-acts>`, `<pb-steer>`). */
export interface FeatureSnapshot {
  sae: { url: string; hook: string; hook_out: string; d_sae: number; error_term: boolean; architecture: string };
  /** Features listed per position. */
  k: number;
  /** top[pos] = [[feature, activation], ...], most active first (no feature interventions). */
  top: number[][][];
  /** Feature -> its activation at every position. */
  acts: Record<string, number[]>;
  selected: number | null;
  ablated: number[];
  steer: { feature: number; coeff: number } | null;
  /** The next token after the last position with the feature interventions: [[id, p, p without them?], ...]. */
  next: { pos: number; top: number[][] };
  /**
   * What `<pb-feature-attribution>` shows, when the spec has a corrupted prompt and a metric:
   * AtP over the features (no interventions) and exact feature patching of the `k` features per
   * position that differ most; `cells` [pos, feature, estimate, exact] for every such cell in
   * grid order, `top` the indices into `cells` of the `rows` largest |estimate|s.
   */
  attribution?: { hook: string; k: number; rows: number; clean: number; corrupt: number; estimates: number; cells: number[][]; top: number[] } | null;
}

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
  features?: FeatureSnapshot | null;
}

/**
 * Quoted token text in a snapshot's metric (`logit-diff:-1:" Mary":" John"`), resolved without the
 * tokenizer: the one id whose text in `snap.vocab` is exactly the text (the snapshot lists the
 * metric's tokens there); none, or several, is not one token.
 */
export function snapshotEncoder(snap: Pick<Snapshot, 'vocab'>): TokenEncoder {
  return {
    encode(text: string): number[] {
      const ids = Object.keys(snap.vocab).filter((id) => snap.vocab[id] === text);
      return ids.length === 1 ? [Number(ids[0])] : [];
    },
  };
}

/** A snapshot file's JSON, checked, its spec read as a version 2 spec (version 1 files too). */
export function readSnapshot(value: unknown): Snapshot {
  const snap = value as Snapshot;
  if (snap?.kind !== 'snapshot' || (snap.patchbay as number) < 1 || snap.patchbay > SNAPSHOT_VERSION) throw new Error('not a Patchbay snapshot of a version this page reads');
  return { ...snap, patchbay: SNAPSHOT_VERSION, spec: parseSpec(snap.spec) };
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
  /** The spec's SAE (spec.sae), loaded on the model's GPU. */
  sae?: Sae | null;
}

export async function makeSnapshot(model: Model, spec: ExperimentSpec, tokenizer: TextTokenizer | null, options: SnapshotOptions = {}): Promise<Snapshot> {
  const { n_layers: L, n_heads: H, d_vocab: V } = model.config;
  if (isBatch(spec.prompts.clean) || (spec.prompts.corrupt !== undefined && isBatch(spec.prompts.corrupt)))
    throw new SpecError('spec.prompts: a snapshot shows one prompt (and one corrupted prompt), not a batch');
  const clean = promptIds(spec.prompts.clean as string | number[], tokenizer, 'spec.prompts.clean');
  const corrupt = spec.prompts.corrupt === undefined ? undefined : promptIds(spec.prompts.corrupt as string | number[], tokenizer, 'spec.prompts.corrupt');
  const T = clean.length;
  const label = (id: number) => (tokenizer ? tokenizer.tokenText(id) : String(id));
  const vocab: Record<string, string> = {};
  const see = (id: number) => (vocab[id] = label(id));
  clean.forEach(see);
  corrupt?.forEach(see);

  const figure = figureInterventions(spec);
  if (!figure)
    throw new SpecError(
      'spec.interventions: a snapshot shows what the figures show (heads ablated, SAE features ablated, one feature steered); these interventions are more than that (patchbay run runs them)',
    );
  const ablate = figure.heads;
  const mode = figure.mode;
  const allHeads = Array.from({ length: L * H }, (_, i) => `${Math.floor(i / H)}.${i % H}`);
  const heads = options.heads ?? (spec.view?.heads?.length && L * H * T * T > 2e6 ? spec.view.heads : allHeads);
  const layers = [...new Set(heads.map((h) => Number(h.split('.')[0])))];
  const resid = [...Array.from({ length: L }, (_, l) => `blocks.${l}.hook_resid_pre`), `blocks.${L - 1}.hook_resid_post`];

  // The figures' own runs: the head ablations, without the SAE (which only the feature figures splice).
  const plain = await model.run([clean]);
  const prepared = await prepareInterventions(model, figureSpecInterventions({ ...figure, features: [], steer: null }, null), { clean: [clean] });
  let run: RunResult | null = null;
  try {
    run = await model.run([clean], { cache: [...layers.map((l) => `blocks.${l}.attn.hook_pattern`), ...resid], hooks: prepared.hooks });
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
      top: Array.from({ length: lensLogits.length / V }, (_, i) => softmaxTop(lensLogits.subarray(i * V, (i + 1) * V), 5).map(([id, p]) => (see(id), [id, round(p)]))),
    };

    const metricText = 'metric' in spec.experiment ? spec.experiment.metric : undefined;
    let metric: Snapshot['metric'] = null;
    let patching: Snapshot['patching'] = null;
    if (metricText) {
      const m = specToMetric(parseMetricSyntax(metricText), clean, V, tokenizer);
      // The metric's tokens, so a page without the tokenizer resolves its quoted text (snapshotEncoder).
      if (m.kind === 'logit-diff') [m.good, m.bad].forEach(see);
      else if (m.kind !== 'loss') see(m.token);
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

    const features = spec.sae ? await featureSnapshot(model, spec, clean, figure, options.sae ?? null, see) : null;
    if (features && corrupt && metricText)
      features.attribution = await featureAttributionSnapshot(model, options.sae!, spec, clean, corrupt, specToMetric(parseMetricSyntax(metricText), clean, V, tokenizer));

    return {
      patchbay: SNAPSHOT_VERSION,
      kind: 'snapshot',
      spec,
      model: { name: describeModelRef(spec.model), n_layers: L, n_heads: H, d_vocab: V },
      ids: corrupt ? { clean, corrupt } : { clean },
      labels: corrupt ? { clean: clean.map(label), corrupt: corrupt.map(label) } : { clean: clean.map(label) },
      vocab,
      attention: { heads, patterns },
      top,
      metric,
      patching,
      lens,
      features,
    };
  } finally {
    run?.release();
    plain.release();
    prepared.release();
  }
}

/** Probabilities of a logits row (softmax in float64). */
function softmax(row: Float32Array): Float64Array {
  let max = -Infinity;
  for (const x of row) max = Math.max(max, x);
  const out = Float64Array.from(row, (x) => Math.exp(x - max));
  const sum = out.reduce((a, b) => a + b, 0);
  return out.map((x) => x / sum);
}

/** What the feature figures show, for the spec's SAE. */
/** The features page's attribution figure: 3 features per position, the 8 largest estimates (its defaults there). */
async function featureAttributionSnapshot(model: Model, sae: Sae, spec: ExperimentSpec, clean: number[], corrupt: number[], metric: Metric): Promise<NonNullable<FeatureSnapshot['attribution']>> {
  if (clean.length !== corrupt.length) throw new SpecError(`spec.prompts: feature attribution needs prompts of equal length (${clean.length} and ${corrupt.length} tokens)`);
  const [k, rows] = [3, 8];
  const errorTerm = spec.sae!.error_term !== false;
  const grid = await featureAttribution(model, sae, clean, corrupt, metric, { k, errorTerm });
  const v = await verifyFeatureTopK(model, sae, clean, corrupt, grid, metric, rows, { errorTerm });
  const live = [...grid.features.keys()].filter((i) => grid.features[i] >= 0);
  const cells = live.map((i) => [grid.positions[Math.floor(i / k)], grid.features[i], round(grid.effects[i]), round(v.exact.values[i] - v.exact.corrupt)]);
  return { hook: grid.hook, k, rows, clean: round(grid.clean), corrupt: round(grid.corrupt), estimates: grid.allEffects.length, cells, top: v.cells.map((c) => live.indexOf(c.index)) };
}

async function featureSnapshot(model: Model, spec: ExperimentSpec, clean: number[], figure: FigureInterventions, sae: Sae | null, see: (id: number) => void): Promise<FeatureSnapshot> {
  const saes = specSaes(spec, sae);
  const s = sae!;
  const F = s.config.d_sae;
  const T = clean.length;
  const V = model.config.d_vocab;
  const hooks = { acts: `${s.hookName}.hook_sae_acts_post`, out: s.hookNameOut };
  for (const f of [...figure.features, ...(figure.steer ? [figure.steer.feature] : []), ...(spec.view?.feature !== undefined ? [spec.view.feature] : [])]) {
    if (f >= F) throw new SpecError(`spec: feature ${f} is not in this SAE (d_sae ${F}: 0 .. ${F - 1})`);
  }
  const rows = { clean: [clean] };
  const headsOnly = await prepareInterventions(model, figureSpecInterventions({ ...figure, features: [], steer: null }, null), rows, { saes, sae: s });
  const all = await prepareInterventions(model, figureSpecInterventions(figure, hooks), rows, { saes, sae: s });
  try {
    // The features' activations: the head ablations applied, the feature interventions not (as <pb-features> shows them).
    const base = await model.run([clean], { saes, hooks: headsOnly.hooks, cache: [hooks.acts] });
    const acts = await base.cache.read(hooks.acts); // [1, T, d_sae]
    const baseLogits = await base.logits.read();
    base.release();
    const K = 8;
    const top = topFeatures(acts, T, F, K);
    const selected = spec.view?.feature ?? figure.steer?.feature ?? top[T - 1][0]?.feature ?? null;
    const shown = new Set([...top.flat().map((x) => x.feature), ...figure.features, ...(selected !== null ? [selected] : [])]);
    const touched = figure.features.length > 0 || (figure.steer !== null && figure.steer.coeff !== 0);
    const after = touched ? await model.run([clean], { saes, hooks: all.hooks }) : null;
    const logits = after ? await after.logits.read() : baseLogits;
    after?.release();
    const pos = T - 1;
    const p = softmax(logits.subarray(pos * V, (pos + 1) * V));
    const before = touched ? softmax(baseLogits.subarray(pos * V, (pos + 1) * V)) : null;
    const next = [...p.keys()]
      .sort((a, b) => p[b] - p[a] || a - b)
      .slice(0, 10)
      .map((id) => (see(id), before ? [id, round(p[id]), round(before[id])] : [id, round(p[id])]));
    return {
      sae: { url: spec.sae!.url, hook: s.hookName, hook_out: s.hookNameOut, d_sae: F, error_term: spec.sae!.error_term !== false, architecture: s.config.architecture },
      k: K,
      top: top.map((r) => r.map((x) => [x.feature, round(x.act)])),
      acts: Object.fromEntries([...shown].sort((a, b) => a - b).map((f) => [String(f), Array.from({ length: T }, (_, t) => round(acts[t * F + f]))])),
      selected,
      ablated: figure.features,
      steer: figure.steer,
      next: { pos, top: next },
    };
  } finally {
    headsOnly.release();
    all.release();
  }
}
