/**
 * The gradient of a metric (summed over batch rows) with respect to the logits it reads, on the
 * GPU (`shaders/metrics-backward.wgsl.ts`), and a float64 CPU reference. This is where a
 * backward pass starts: cross-entropy over a span is the loss metric, whose gradient is
 * -(onehot(next token) - softmax) / n at each position of the span.
 */
import type { Gpu } from '../gpu/device.ts';
import { Params, grid1d, type Dispatch } from '../gpu/recorder.ts';
import { Tensor } from '../gpu/tensor.ts';
import { bindWindow } from '../gpu/window.ts';
import { ALL_ROWS, BACKWARD_TERM_WORDS, MAX_TERMS_PER_POSITION, metricsBackwardSource } from '../../shaders/metrics-backward.wgsl.ts';
import { TERM_KIND } from '../../shaders/metrics.wgsl.ts';
import { metricTerms, type Affine, type Metric } from './metric.ts';

/** Invocations per logits row: 64, as the forward metric's log-sum-exp. */
const WG = 64;

export interface MetricBackwardArgs {
  /** [B, P, V] logits at the metric's positions (V = the computed columns). */
  logits: GPUBuffer;
  B: number;
  positions: readonly number[];
  /** Columns of each logits row. */
  V: number;
  /** Vocabulary columns computed, when only a few are (a logit difference); null for all. */
  columns?: readonly number[] | null;
  /** [B, P, ldo] output (ldo >= V; columns past V are written 0); absent: the gradient overwrites the logits. */
  dlogits?: GPUBuffer | null;
  ldo?: number;
  affine?: Affine;
  /**
   * The logits are soft-capped (y = cap tanh(l / cap), Gemma's final_logit_softcapping): write the
   * gradient of the uncapped logits, times 1 - (y / cap)^2. Null or absent: no cap.
   */
  softcap?: number | null;
}

/**
 * The dispatches that write d(sum_b metric_b)/d logits, and each logits row's metric terms
 * (`values`, [B, P]: `rowValues()` sums a batch row's); `release` after the run. `m` is one metric
 * for every batch row or one per row (a loss predicts each row's own next tokens).
 */
export class GpuMetricBackward {
  readonly dispatches: Dispatch[] = [];
  /** [B, P] each logits row's sum of its terms (before the affine). */
  readonly values: Tensor;
  private readonly temps: Tensor[] = [];
  private readonly params: Params[] = [];

  constructor(
    gpu: Gpu,
    m: Metric | readonly Metric[],
    private readonly a: MetricBackwardArgs,
  ) {
    const P = a.positions.length;
    const rows = a.B * P;
    const inPlace = !a.dlogits;
    const ldo = inPlace ? a.V : (a.ldo ?? a.V);
    if (Array.isArray(m) && m.length !== a.B) throw new Error(`${m.length} metrics for a batch of ${a.B} rows; give one, or one per row`);
    const perRow: Array<[number, Metric]> = Array.isArray(m) ? m.map((x, b) => [b, x]) : [[ALL_ROWS, m as Metric]];
    const ts = perRow.flatMap(([row, x]) => metricTerms(x).map((t) => ({ ...t, row })));
    const perPos = new Map<string, number>();
    for (const t of ts) perPos.set(`${t.row}:${t.pos}`, (perPos.get(`${t.row}:${t.pos}`) ?? 0) + 1);
    if (Math.max(...perPos.values()) > MAX_TERMS_PER_POSITION) throw new Error(`a metric with more than ${MAX_TERMS_PER_POSITION} terms at one position cannot be differentiated`);
    const table = new Uint32Array(ts.length * BACKWARD_TERM_WORDS);
    const f = new Float32Array(table.buffer);
    ts.forEach((t, i) => {
      const at = a.positions.indexOf(t.pos);
      if (at < 0) throw new Error(`metric position ${t.pos} is not among the computed logit positions`);
      const col = a.columns ? a.columns.indexOf(t.token) : t.token;
      if (col < 0) throw new Error(`metric token ${t.token} is not among the computed logit columns`);
      if (a.columns && t.kind !== 'logit') throw new Error('a log-probability metric needs whole logit rows, not a few columns');
      table.set([t.row, at, col, TERM_KIND[t.kind]], i * BACKWARD_TERM_WORDS);
      f[i * BACKWARD_TERM_WORDS + 4] = t.coef;
    });
    const termsT = Tensor.from(gpu, new Float32Array(table.buffer), [table.length], 'metric backward terms');
    this.values = Tensor.empty(gpu, [a.B, P], 'metric values');
    this.temps.push(termsT);
    const cap = a.softcap ?? 0;
    if (a.softcap !== undefined && a.softcap !== null && !(a.softcap > 0)) throw new Error(`a logit soft-cap must be positive, got ${a.softcap}`);
    const pipeline = gpu.pipelines.get('metrics-backward', metricsBackwardSource({ inPlace, softcap: cap > 0 }), 'metric_backward_v1', { WG });
    // Rows in blocks whose logits and gradient windows each fit one binding.
    const slack = gpu.limits.minStorageBufferOffsetAlignment;
    const perBlock = Math.max(1, Math.min(rows, Math.floor((gpu.maxBinding - slack) / (Math.max(a.V, ldo) * 4))));
    for (let r0 = 0; r0 < rows; r0 += perBlock) {
      const n = Math.min(perBlock, rows - r0);
      const lw = bindWindow(gpu, a.logits, r0 * a.V, n * a.V, 'metric backward logits');
      const ow = inPlace ? lw : bindWindow(gpu, a.dlogits!, r0 * ldo, n * ldo, 'metric backward dlogits');
      const u = new Params(gpu, [rows, P, a.V, ts.length, { f32: a.affine?.scale ?? 1 }, ldo, lw.elemOffset, ow.elemOffset, r0, { f32: cap }], 'metric backward params');
      this.params.push(u);
      const bindGroup = gpu.device.createBindGroup({
        label: 'metric backward',
        layout: pipeline.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: { buffer: u.buffer } },
          { binding: 1, resource: lw.binding },
          { binding: 2, resource: { buffer: termsT.buffer, offset: 0, size: table.byteLength } },
          ...(inPlace ? [] : [{ binding: 3, resource: ow.binding }]),
          { binding: 4, resource: { buffer: this.values.buffer, offset: 0, size: rows * 4 } },
        ],
      });
      this.dispatches.push({ kind: 'dispatch', label: `metric backward rows ${r0}+${n}`, pipeline, bindGroup, workgroups: grid1d(gpu, n, 1) });
    }
  }

  /** Each batch row's metric (after the affine), read back: one number per row. */
  async rowValues(): Promise<Float64Array> {
    const v = await this.values.read();
    const P = this.a.positions.length;
    const { shift, scale } = this.a.affine ?? { shift: 0, scale: 1 };
    return Float64Array.from({ length: this.a.B }, (_, b) => {
      let s = 0;
      for (let i = 0; i < P; i++) s += v[b * P + i];
      return (s - shift) * scale;
    });
  }

  release(): void {
    for (const t of [...this.temps, this.values]) t.release();
    for (const p of this.params) p.destroy();
  }
}

/**
 * d(sum over rows of the metric, after `affine`) / d logits in float64; logits [rows, P, V] at
 * `positions` (default: every position of a [rows, T, V] tensor). Returns [rows, P, V]. With
 * `softcap`, the logits given are capped (y = cap tanh(l / cap)) and the gradient returned is the
 * uncapped logits'.
 */
export function metricBackwardCpu(
  m: Metric | readonly Metric[],
  logits: ArrayLike<number>,
  rows: number,
  V: number,
  positions?: readonly number[],
  affine: Affine = { shift: 0, scale: 1 },
  softcap: number | null = null,
): Float64Array {
  const P = logits.length / (rows * V);
  const out = new Float64Array(logits.length);
  const index = (pos: number) => (positions ? positions.indexOf(pos) : pos);
  for (let b = 0; b < rows; b++) {
    for (const t of metricTerms(Array.isArray(m) ? m[b] : (m as Metric))) {
      const base = (b * P + index(t.pos)) * V;
      if (t.kind === 'logit') {
        out[base + t.token] += t.coef * affine.scale;
        continue;
      }
      let mx = -Infinity;
      for (let v = 0; v < V; v++) mx = Math.max(mx, logits[base + v]);
      let s = 0;
      for (let v = 0; v < V; v++) s += Math.exp(logits[base + v] - mx);
      const lse = mx + Math.log(s);
      const w = t.coef * (t.kind === 'prob' ? Math.exp(logits[base + t.token] - lse) : 1) * affine.scale;
      for (let v = 0; v < V; v++) out[base + v] -= w * Math.exp(logits[base + v] - lse);
      out[base + t.token] += w;
    }
  }
  if (softcap) for (let i = 0; i < out.length; i++) out[i] *= 1 - (logits[i] / softcap) ** 2;
  return out;
}
