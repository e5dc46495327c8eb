/**
 * Metrics for ablation and patching experiments, computed on the GPU from the logits at the
 * positions they read (`shaders/metrics.wgsl.ts`), with a plain CPU version for checks.
 *
 *   logitDiffMetric(pos, good, bad)   logits[pos, good] - logits[pos, bad]
 *   logProbMetric(pos, token)         log p(token | prefix up to pos)
 *   probMetric(pos, token)            p(token | prefix up to pos)
 *   lossMetric(tokens, start, end)    mean cross-entropy of predicting tokens[t + 1] at t, start <= t < end
 *
 * A normalized metric maps m to (m - m_corrupt) / (m_clean - m_corrupt): 0 = corrupted, 1 = clean.
 */
import type { Gpu } from '../gpu/device.ts';
import { Params, grid1d, itemConstants, itemGrid, type Dispatch } from '../gpu/recorder.ts';
import { Tensor } from '../gpu/tensor.ts';
import { bindWhole } from '../gpu/window.ts';
import { TERM_KIND, TERM_WORDS, metricsSource } from '../../shaders/metrics.wgsl.ts';

export type Metric =
  | { kind: 'logit-diff'; pos: number; good: number; bad: number }
  | { kind: 'logprob'; pos: number; token: number }
  | { kind: 'prob'; pos: number; token: number }
  | { kind: 'loss'; tokens: readonly number[]; start: number; end: number };

export const logitDiffMetric = (pos: number, good: number, bad: number): Metric => ({ kind: 'logit-diff', pos, good, bad });
export const logProbMetric = (pos: number, token: number): Metric => ({ kind: 'logprob', pos, token });
export const probMetric = (pos: number, token: number): Metric => ({ kind: 'prob', pos, token });
export const lossMetric = (tokens: readonly number[], start: number, end: number): Metric => ({ kind: 'loss', tokens, start, end });

interface Term {
  pos: number;
  token: number;
  kind: keyof typeof TERM_KIND;
  coef: number;
}

function terms(m: Metric): Term[] {
  switch (m.kind) {
    case 'logit-diff':
      return [
        { pos: m.pos, token: m.good, kind: 'logit', coef: 1 },
        { pos: m.pos, token: m.bad, kind: 'logit', coef: -1 },
      ];
    case 'logprob':
      return [{ pos: m.pos, token: m.token, kind: 'logprob', coef: 1 }];
    case 'prob':
      return [{ pos: m.pos, token: m.token, kind: 'prob', coef: 1 }];
    case 'loss': {
      const n = m.end - m.start;
      return Array.from({ length: n }, (_, i) => ({ pos: m.start + i, token: m.tokens[m.start + i + 1], kind: 'logprob' as const, coef: -1 / n }));
    }
  }
}

/** Checks a metric against a sequence length and vocabulary; throws naming the problem. */
export function validateMetric(m: Metric, T: number, V: number): void {
  if (m.kind === 'loss') {
    if (!(Number.isInteger(m.start) && Number.isInteger(m.end) && m.start >= 0 && m.start < m.end && m.end <= T - 1)) {
      throw new Error(`loss span [${m.start}, ${m.end}) must lie in 0 .. ${T - 1} (the last position has no next token)`);
    }
    if (m.tokens.length !== T) throw new Error(`the loss metric's tokens have ${m.tokens.length} positions; the prompt has ${T}`);
  }
  for (const t of terms(m)) {
    if (!Number.isInteger(t.pos) || t.pos < 0 || t.pos >= T) throw new Error(`metric position ${t.pos} is out of range 0 .. ${T - 1}`);
    if (!Number.isInteger(t.token) || t.token < 0 || t.token >= V) throw new Error(`metric token ${t.token} is out of range 0 .. ${V - 1}`);
  }
}

/** One metric, or one per batch row of prompt pairs (each pair with its own answer tokens). */
export type Metrics = Metric | readonly Metric[];

const asList = (m: Metrics): readonly Metric[] => ('kind' in m ? [m as Metric] : (m as readonly Metric[]));

/**
 * The vocabulary columns a metric (or every metric of a list) reads when it needs no log-sum-exp
 * (a logit difference), so a pass can unembed just those; null when it needs whole rows.
 */
export function metricColumns(m: Metrics): number[] | null {
  const ts = asList(m).flatMap(terms);
  if (ts.some((t) => t.kind !== 'logit')) return null;
  return [...new Set(ts.map((t) => t.token))];
}

/** The positions whose logits a metric (or any metric of a list) reads, ascending. */
export function metricPositions(m: Metrics): number[] {
  return [
    ...new Set(
      asList(m)
        .flatMap(terms)
        .map((t) => t.pos),
    ),
  ].sort((a, b) => a - b);
}

/**
 * The metric from logits on the CPU, [rows, P, V] at `positions` (default: every position, so
 * a full [batch, pos, vocab] logits tensor works). One value per row; with a list of metrics,
 * row b's is `m[b]`.
 */
export function metricCpu(ms: Metrics, logits: Float32Array, rows: number, V: number, positions?: readonly number[]): Float64Array {
  const list = asList(ms);
  if (list.length !== 1 && list.length !== rows) throw new Error(`${list.length} metrics for ${rows} rows`);
  const P = logits.length / (rows * V);
  const index = (pos: number) => (positions ? positions.indexOf(pos) : pos);
  const out = new Float64Array(rows);
  for (let b = 0; b < rows; b++) {
    for (const t of terms(list.length === 1 ? list[0] : list[b])) {
      const row = logits.subarray((b * P + index(t.pos)) * V, (b * P + index(t.pos) + 1) * V);
      let x = row[t.token];
      if (t.kind !== 'logit') {
        let mx = -Infinity;
        for (const v of row) mx = Math.max(mx, v);
        let s = 0;
        for (const v of row) s += Math.exp(v - mx);
        x = x - (mx + Math.log(s));
        if (t.kind === 'prob') x = Math.exp(x);
      }
      out[b] += t.coef * x;
    }
  }
  return out;
}

/** Normalization (m - shift) * scale; identity by default. */
export interface Affine {
  shift: number;
  scale: number;
}

/** A term at a row index of the logits (not a position): what the kernels read. */
interface IndexedTerm {
  i: number;
  token: number;
  kind: keyof typeof TERM_KIND;
  coef: number;
}

/**
 * The dispatches that reduce `terms` over logits [B, P, V] into `out`: row_lse_v1 (when a term
 * needs it), then metric_combine_v1 (one value per batch row, [B], over the row's span of terms
 * in `rowTerms` [B] (start, count); default: every term) or, `perTerm`, metric_terms_v1 (one
 * value per term, B = 1). Temporaries and uniforms go into `temps` / `params`.
 */
function termDispatches(
  gpu: Gpu,
  logits: GPUBuffer,
  B: number,
  P: number,
  V: number,
  ts: readonly IndexedTerm[],
  affine: Affine,
  out: Tensor,
  perTerm: boolean,
  temps: Tensor[],
  params: Params[],
  rowTerms: Uint32Array | null = null,
): Dispatch[] {
  const table = new Uint32Array(ts.length * TERM_WORDS);
  const f = new Float32Array(table.buffer);
  ts.forEach((t, i) => {
    table.set([t.i, t.token, TERM_KIND[t.kind]], i * TERM_WORDS);
    f[i * TERM_WORDS + 3] = t.coef;
  });
  const needsLse = ts.some((t) => t.kind !== 'logit');
  const termsT = Tensor.from(gpu, new Float32Array(table.buffer), [table.length], 'metric terms');
  const lse = Tensor.empty(gpu, [B, P], 'metric lse');
  temps.push(termsT, lse);
  const u = new Params(gpu, [B, P, V, ts.length, { f32: affine.shift }, { f32: affine.scale }], 'metric params');
  params.push(u);
  const code = metricsSource();
  const dispatches: Dispatch[] = [];
  if (needsLse) {
    const pipeline = gpu.pipelines.get('metrics', code, 'row_lse_v1', { WG: 64 });
    const bindGroup = gpu.device.createBindGroup({
      label: 'metric lse',
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: u.buffer } },
        { binding: 1, resource: bindWhole(gpu, logits, B * P * V, 'metric logits') },
        { binding: 2, resource: bindWhole(gpu, lse.buffer, B * P, 'metric lse') },
      ],
    });
    dispatches.push({ kind: 'dispatch', label: 'metric lse', pipeline, bindGroup, workgroups: grid1d(gpu, B * P, 1) });
  }
  const pipeline = gpu.pipelines.get('metrics', code, perTerm ? 'metric_terms_v1' : 'metric_combine_v1', itemConstants(gpu));
  const n = perTerm ? ts.length : B;
  const entries: GPUBindGroupEntry[] = [
    { binding: 0, resource: { buffer: u.buffer } },
    { binding: 1, resource: bindWhole(gpu, logits, B * P * V, 'metric logits') },
    { binding: 3, resource: bindWhole(gpu, termsT.buffer, table.length, 'metric terms') },
    { binding: 4, resource: bindWhole(gpu, out.buffer, n, 'metric out') },
    // Bound even when unused: the kernels read it under a branch.
    { binding: 2, resource: bindWhole(gpu, lse.buffer, B * P, 'metric lse') },
  ];
  if (!perTerm) {
    const spans = rowTerms ?? new Uint32Array(B * 2).map((_, i) => (i % 2 ? ts.length : 0));
    const spansT = Tensor.from(gpu, new Float32Array(spans.buffer, spans.byteOffset, spans.length), [spans.length], 'metric row terms');
    temps.push(spansT);
    entries.push({ binding: 5, resource: bindWhole(gpu, spansT.buffer, B * 2, 'metric row terms') });
  }
  const bindGroup = gpu.device.createBindGroup({ label: 'metric', layout: pipeline.getBindGroupLayout(0), entries });
  dispatches.push({ kind: 'dispatch', label: 'metric', pipeline, bindGroup, workgroups: perTerm ? itemGrid(gpu, n) : [Math.ceil(n / gpu.workgroupSize), 1, 1] });
  return dispatches;
}

/**
 * Metric kernels over logits [B, P, V] at `positions`; `out` [B] holds the values after the
 * dispatches run. With `columns`, the logits hold only those vocabulary columns ([B, P, columns]).
 * With a list of metrics, row b computes `m[rowMetric[b]]` (default: row b's own, `m[b]`).
 */
export class GpuMetric {
  readonly out: Tensor;
  readonly dispatches: Dispatch[];
  private readonly temps: Tensor[] = [];
  private readonly params: Params[] = [];

  constructor(
    gpu: Gpu,
    m: Metrics,
    logits: GPUBuffer,
    B: number,
    positions: readonly number[],
    vocab: number,
    affine: Affine = { shift: 0, scale: 1 },
    columns: readonly number[] | null = null,
    rowMetric?: readonly number[],
  ) {
    const metrics = asList(m);
    const which = rowMetric ?? (metrics.length === 1 ? Array<number>(B).fill(0) : Array.from({ length: B }, (_, b) => b));
    if (which.length !== B || which.some((i) => !(i >= 0 && i < metrics.length))) {
      throw new Error(`a metric per batch row: ${metrics.length} metrics for ${B} rows (rows' metrics ${which.length === B ? 'out of range' : `given for ${which.length} rows`})`);
    }
    // The table holds every metric's terms in turn; row b reads its metric's span.
    const spans: Array<[number, number]> = [];
    const ts: Term[] = [];
    for (const x of metrics) {
      const own = terms(x);
      spans.push([ts.length, own.length]);
      ts.push(...own);
    }
    const rowTerms = new Uint32Array(B * 2);
    which.forEach((i, b) => rowTerms.set(spans[i], b * 2));
    const V = columns ? columns.length : vocab;
    const column = (token: number) => {
      if (!columns) return token;
      const c = columns.indexOf(token);
      if (c < 0) throw new Error(`metric token ${token} is not among the computed logit columns`);
      return c;
    };
    if (columns && ts.some((t) => t.kind !== 'logit')) throw new Error('a log-probability metric needs whole logit rows, not a few columns');
    const indexed = ts.map((t) => {
      const i = positions.indexOf(t.pos);
      if (i < 0) throw new Error(`metric position ${t.pos} is not among the computed logit positions`);
      return { i, token: column(t.token), kind: t.kind, coef: t.coef };
    });
    this.out = Tensor.empty(gpu, [B], 'metric');
    try {
      this.dispatches = termDispatches(gpu, logits, B, positions.length, V, indexed, affine, this.out, false, this.temps, this.params, rowTerms);
    } catch (e) {
      this.release();
      throw e;
    }
  }

  release(): void {
    for (const t of [...this.temps, this.out]) t.release();
    for (const p of this.params) p.destroy();
  }
}

/**
 * TransformerLens' loss (`return_type='loss'`) on logits [B, T, V] of `tokens` [B][T]: the
 * cross-entropy of predicting tokens[b][p + 1] at p, for p < T - 1; `out` is its mean over every
 * row and position (shape []), or with `perToken` each value ([B, T - 1], TL's
 * `loss_per_token`). The logits are read as one row of B * T positions: row_lse_v1 over all of
 * them, then metric_combine_v1 with coefficient -1 / (B (T - 1)) for the mean, or
 * metric_terms_v1 with -1 per token.
 */
export class GpuLoss {
  readonly out: Tensor;
  readonly dispatches: Dispatch[];
  private readonly temps: Tensor[] = [];
  private readonly params: Params[] = [];

  constructor(gpu: Gpu, logits: GPUBuffer, tokens: readonly (readonly number[])[], V: number, perToken: boolean) {
    const B = tokens.length;
    const T = tokens[0]?.length ?? 0;
    if (T < 2) throw new Error(`a loss needs at least 2 positions (each predicts the next token); these rows have ${T}`);
    const N = B * (T - 1);
    const ts: IndexedTerm[] = [];
    for (let b = 0; b < B; b++) {
      for (let p = 0; p < T - 1; p++) ts.push({ i: b * T + p, token: tokens[b][p + 1], kind: 'logprob', coef: perToken ? -1 : -1 / N });
    }
    this.out = Tensor.empty(gpu, perToken ? [B, T - 1] : [], 'loss');
    try {
      this.dispatches = termDispatches(gpu, logits, 1, B * T, V, ts, { shift: 0, scale: 1 }, this.out, perToken, this.temps, this.params);
    } catch (e) {
      this.release();
      throw e;
    }
  }

  /** Bytes of GPU memory a loss of B rows x T positions takes (output and temporaries). */
  static bytes(B: number, T: number): number[] {
    return [Math.max(1, B * (T - 1)) * 4, B * T * 4, B * (T - 1) * TERM_WORDS * 4];
  }

  /** Frees the temporaries and uniforms; `out` stays (after the dispatches are submitted). */
  releaseScratch(): void {
    for (const t of this.temps) t.release();
    for (const p of this.params) p.destroy();
    this.temps.length = 0;
    this.params.length = 0;
  }

  release(): void {
    this.releaseScratch();
    this.out.release();
  }
}

/** TransformerLens' loss on the CPU (float64): mean next-token cross-entropy, or per token [B * (T - 1)]. */
export function lossCpu(logits: Float32Array, tokens: readonly (readonly number[])[], V: number, perToken: boolean): Float64Array {
  const B = tokens.length;
  const T = tokens[0].length;
  const per = new Float64Array(B * (T - 1));
  for (let b = 0; b < B; b++) {
    for (let p = 0; p < T - 1; p++) {
      per[b * (T - 1) + p] = -metricCpu(logProbMetric(p, tokens[b][p + 1]), logits.subarray(b * T * V, (b + 1) * T * V), 1, V)[0];
    }
  }
  return perToken ? per : Float64Array.of(per.reduce((a, x) => a + x, 0) / per.length);
}

/** The metric's terms (kind, position, token, coefficient): what the backward differentiates. */
export { terms as metricTerms };
