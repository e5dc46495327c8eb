/**
 * `<pb-attribution>`: attribution patching beside exact activation patching. For the chosen
 * site's grid (default `z`, each head's output), the left heatmap is AtP's estimate of every
 * cell's effect (`attributionSweep`: one clean forward, one corrupted forward and one backward
 * for the whole grid), the right one the exact effect of patching that cell (`patchingSweep`,
 * m_patched − m_corrupt), and a scatter plots one against the other with their correlation.
 * Below, the k cells AtP ranks largest, re-run exactly (`verifyTopK`), show how far it was.
 *
 * ```html
 * <pb-attribution site="z" method="atp" k="3"></pb-attribution>
 * ```
 * `method="atp*"` adds the QK fix and GradDrop (Kramár et al. 2024), whose estimates are
 * magnitudes: the scatter then plots |exact effect|. The figure recomputes when the prompt,
 * corrupted prompt, metric, site or method changes.
 *
 * @fires pb-attribution-done - `{ site, method, shape, estimates, exact, correlation, topK }` when both grids are in.
 * @csspart heatmap - The estimate and exact heatmaps (`<pb-heatmap>`).
 * @csspart scatter - The scatter plot (an `<svg>`).
 * @csspart summary - The correlation line.
 * @csspart topk - The verified cells' table.
 * @csspart status - Messages and errors.
 */
import { css, html, nothing } from 'lit';
import { customElement, property, state } from 'lit/decorators.js';
import { attributionSweep, pearson, verifyTopK, type AttributionGrid, type AttributionMethod, type Verification } from '../experiments/attribution.ts';
import { PATCH_SITES, patchingSweep, type PatchSite } from '../experiments/patching.ts';
import { checkMetricSpec, parseMetricSyntax, specToMetric } from '../experiments/metric-spec.ts';
import { PbComputedFigure } from './figure.ts';
import { figureStyles } from './figure-styles.ts';
import { formatValue } from './heatmap.ts';
import './heatmap.ts';
import { modelKey } from './live-run.ts';
import { estimateScatter, scatterStyles } from './scatter.ts';

export interface AttributionDoneDetail {
  site: PatchSite;
  method: AttributionMethod;
  shape: number[];
  /** Row-major: the estimated effects (AtP* with GradDrop: magnitudes). */
  estimates: Float64Array;
  /** Row-major: m_patched − m_corrupt, exactly. */
  exact: Float64Array;
  /** Pearson correlation of the estimates with the exact effects (their magnitudes for AtP*). */
  correlation: number;
  topK: Verification;
}

interface Computed {
  grid: AttributionGrid;
  exact: Float64Array;
  verified: Verification;
}

@customElement('pb-attribution')
export class PbAttribution extends PbComputedFigure<Computed> {
  static override styles = [
    figureStyles,
    scatterStyles,
    css`
      table {
        border-collapse: collapse;
        font-size: 0.9em;
      }
      td,
      th {
        padding: 0.1rem 0.6rem;
        text-align: right;
      }
      pb-heatmap {
        --pb-cell-max: var(--pb-attribution-cell, 1.9rem);
      }
    `,
  ];

  /** The patching site whose grid is estimated (as `patchingSweep`'s). */
  @property() site: PatchSite = 'z';
  /** `atp` or `atp*`. */
  @property() method: AttributionMethod = 'atp';
  /** How many of the largest estimated cells to verify exactly. */
  @property({ type: Number }) k = 3;

  @state() private computed: Computed | null = null;

  protected override willUpdate(changed: Map<string, unknown>): void {
    if (changed.has('site') || changed.has('method') || changed.has('k')) this.stateChanged();
  }

  protected override async refresh(): Promise<void> {
    const model = this.model;
    const st = this.experiment?.state;
    const session = this.session;
    if (!model || !st || !session) return;
    let clean: number[];
    let corrupt: number[];
    try {
      if (!(PATCH_SITES as readonly string[]).includes(this.site)) throw new Error(`unknown site "${this.site}"; the sites are ${PATCH_SITES.join(', ')}`);
      if (this.method !== 'atp' && this.method !== 'atp*') throw new Error(`unknown method "${this.method}"; use atp or atp*`);
      if (!st.prompt || !st.corrupt) throw new Error('Attribution needs a clean prompt and a corrupted prompt.');
      if (!st.metric) throw new Error('Attribution needs a metric (e.g. logit-diff:POS:GOOD:BAD).');
      clean = session.tokenize(st.prompt);
      corrupt = session.tokenize(st.corrupt);
      if (clean.length !== corrupt.length) throw new Error(`The clean and corrupted prompts must have the same number of tokens (${clean.length} and ${corrupt.length}).`);
      checkMetricSpec(parseMetricSyntax(st.metric), clean.length, model.config.d_vocab);
    } catch (e) {
      this.computed = null;
      this.fail(e);
      return;
    }
    const { site, method } = this;
    const k = Math.max(0, Math.floor(this.k));
    const metricText = st.metric;
    const key = [modelKey(model), clean.join(','), corrupt.join(','), metricText, site, method, k].join('|');
    await this.compute(
      key,
      async (signal) => {
        const metric = specToMetric(parseMetricSyntax(metricText), clean);
        const grid = await attributionSweep(model, clean, corrupt, site, metric, { method });
        const patched = await patchingSweep(model, clean, corrupt, site, metric, { signal });
        const exact = patched.values.map((v) => v - patched.corrupt);
        const verified = await verifyTopK(model, clean, corrupt, grid, metric, k, { signal });
        return { grid, exact, verified };
      },
      (c) => {
        this.computed = c;
        this.dispatchEvent(
          new CustomEvent<AttributionDoneDetail>('pb-attribution-done', {
            detail: { site, method, shape: [...c.grid.shape], estimates: c.grid.effects, exact: c.exact, correlation: this.correlation(c), topK: c.verified },
            bubbles: true,
            composed: true,
          }),
        );
      },
      () => (this.computed = null),
    );
  }

  /** The exact side of the comparison: effects, or their magnitudes against an unsigned estimate. */
  private target(c: Computed): Float64Array {
    return c.grid.signed ? c.exact : c.exact.map(Math.abs);
  }

  private correlation(c: Computed): number {
    return pearson(c.grid.effects, this.target(c));
  }

  private heatmap(c: Computed, values: Float64Array, caption: string, domain: number, label: string) {
    const top = new Set(c.verified.cells.map((v) => v.index));
    const g = c.grid;
    const rows = g.shape.length === 2 ? g.shape[0] : g.shape.slice(0, -1).reduce((a, b) => a * b, 1);
    const cols = g.shape[g.shape.length - 1];
    const rowAxis = g.shape.length === 2 ? g.axes[0] : g.axes.slice(0, -1).join(' × ');
    const colAxis = g.axes[g.axes.length - 1];
    const name = (i: number) => g.shape.map((_, d) => Math.floor(i / g.shape.slice(d + 1).reduce((a, b) => a * b, 1)) % g.shape[d]).join(', ');
    return html`<pb-heatmap
      part="heatmap"
      .values=${values}
      rows=${rows}
      cols=${cols}
      .rowLabels=${Array.from({ length: rows }, (_, r) => String(r))}
      .colLabels=${Array.from({ length: cols }, (_, col) => String(col))}
      row-axis=${rowAxis}
      col-axis=${colAxis}
      caption=${caption}
      scale="diverging"
      domain=${domain}
      value-label=${label}
      .marked=${Array.from(values, (_, i) => top.has(i))}
      marked-label="verified exactly"
      .describe=${(r: number, col: number) => `[${name(r * cols + col)}]: ${label} ${formatValue(values[r * cols + col], 3)}`}
    ></pb-heatmap>`;
  }

  private scatter(c: Computed) {
    const x = this.target(c);
    const top = new Set(c.verified.cells.map((v) => v.index));
    const points = Array.from(c.grid.effects, (v, i) => ({ exact: x[i], estimate: v, top: top.has(i), title: `cell ${i}: estimate ${formatValue(v, 3)}, exact ${formatValue(x[i], 3)}` }));
    return estimateScatter(points, {
      xLabel: c.grid.signed ? 'exact effect' : '|exact effect|',
      yLabel: this.method === 'atp' ? 'AtP' : 'AtP*',
      ariaLabel: 'estimate against exact effect, one dot per cell',
      radius: 3.2,
    });
  }

  override render() {
    const model = this.model;
    const c = this.computed;
    let domain = 0;
    if (c) for (const v of [...c.grid.effects, ...c.exact]) if (Number.isFinite(v)) domain = Math.max(domain, Math.abs(v));
    const name = this.method === 'atp' ? 'AtP' : 'AtP* (QK fix, GradDrop)';
    const r = c ? this.correlation(c) : Number.NaN;
    return html`
      <div class="toolbar"><span class="title">Attribution patching: ${name} against exact patching (${this.site})</span></div>
      ${!model ? html`<div class="muted" part="status">${this.session?.noModelText() ?? 'Waiting for the model…'}</div>` : nothing}
      ${this.error ? html`<div class="error" part="status" role="alert">${this.error}</div>` : nothing}
      ${this.busy && !c ? html`<div class="muted" part="status" role="status">Running the gradients and the exact sweep…</div>` : nothing}
      ${
        c
          ? html`<div class="summary muted" part="summary" data-correlation=${r}>
              Correlation of the estimate with the ${c.grid.signed ? 'exact effect' : 'exact effect’s magnitude'}:
              <span class="num">${Number.isNaN(r) ? '—' : r.toFixed(2)}</span> over ${c.exact.length} cells (${c.grid.passes.forward}
              forwards and ${c.grid.passes.backward} backward${c.grid.passes.backward === 1 ? '' : 's'} against ${c.exact.length} patched runs).
            </div>
            <div class="views">
              ${this.heatmap(c, c.grid.effects, name, domain, c.grid.signed ? 'estimated effect' : 'estimated |effect|')}
              ${this.heatmap(c, c.exact, 'exact patching', domain, 'effect')} ${this.scatter(c)}
            </div>
            ${
              c.verified.cells.length
                ? html`<table part="topk">
                  <caption class="muted">The ${c.verified.cells.length} largest estimates, re-run exactly</caption>
                  <thead>
                    <tr><th scope="col">cell [${c.grid.axes.join(', ')}]</th><th scope="col">estimate</th><th scope="col">exact</th></tr>
                  </thead>
                  <tbody>
                    ${c.verified.cells.map(
                      (v) => html`<tr data-index=${v.index}><td>${v.coords.join(', ')}</td><td class="num">${formatValue(v.estimate, 3)}</td><td class="num">${formatValue(v.exact, 3)}</td></tr>`,
                    )}
                  </tbody>
                </table>`
                : nothing
            }`
          : nothing
      }
    `;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'pb-attribution': PbAttribution;
  }
  interface HTMLElementEventMap {
    'pb-attribution-done': CustomEvent<AttributionDoneDetail>;
  }
}
