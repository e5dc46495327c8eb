/**
 * `<pb-feature-attribution>`: attribution patching over the SAE's features, beside exact feature
 * patching. For the page's clean and corrupted prompts and metric, AtP estimates how far patching
 * each feature at each position from the clean run into the corrupted one moves the metric
 * (`featureAttribution`: one clean forward and one corrupted forward + backward give every
 * feature's estimate); the figure keeps, per position, the `k` features whose activation differs
 * most between the runs, and patches each of those exactly (`verifyFeatureTopK`: one batch row
 * per cell). A table lists the cells AtP ranks largest with both numbers, a scatter plots every
 * cell's estimate against its exact effect, and the summary gives their correlation and how
 * many of the exact top cells AtP's top finds. Click a feature to select it in the other
 * feature figures. The SAE is spliced as `<pb-sae>` says; head and feature ablations and
 * steering are not applied (both runs are the plain spliced model).
 *
 * ```html
 * <pb-model src="tiny-gemma3" prompt="…" corrupt="…" metric="logit-diff:20:14:3">
 *   <pb-sae src="…"><pb-feature-attribution k="3" rows="8"></pb-feature-attribution></pb-sae>
 * </pb-model>
 * ```
 *
 * Without WebGPU it draws the page snapshot's (`patchbay snapshot` of a spec with an SAE, a
 * corrupted prompt and a metric), read-only.
 *
 * @fires pb-feature-attribution-done - `{ hook, positions, features, estimates, exact, correlation, hits }` when both are in.
 * @csspart table - The table of the largest estimates.
 * @csspart scatter - The scatter plot (an `<svg>`).
 * @csspart summary - The correlation line.
 * @csspart status - Messages and errors.
 */
import { css, html, nothing } from 'lit';
import { customElement, property, state } from 'lit/decorators.js';
import { featureAttribution, type FeatureAttributionGrid } from '../experiments/feature-attribution.ts';
import { verifyFeatureTopK, type FeatureVerification } from '../experiments/feature-verify.ts';
import { pearson } from '../experiments/attribution.ts';
import { checkMetricSpec, parseMetricSyntax, specToMetric } from '../experiments/metric-spec.ts';
import type { ExperimentKind } from '../experiments/spec.ts';
import { PbFeatureFigure } from './feature-figure.ts';
import { figureStyles } from './figure-styles.ts';
import { formatValue } from './heatmap.ts';
import { modelKey } from './live-run.ts';
import { estimateScatter, scatterStyles } from './scatter.ts';
import { tokenText, tokenTextStyles } from './token-text.ts';

export interface FeatureAttributionDoneDetail {
  /** The SAE's hook. */
  hook: string;
  /** One entry per live cell (a feature that differs between the runs), in grid order. */
  positions: number[];
  features: number[];
  estimates: number[];
  /** m_patched − m_corrupt, exactly. */
  exact: number[];
  /** Pearson correlation of the estimates with the exact effects. */
  correlation: number;
  /** How many of the `rows` cells largest by |exact| are among AtP's `rows` largest. */
  hits: number;
}

interface Cell {
  pos: number;
  feature: number;
  estimate: number;
  /** m_patched − m_corrupt, exactly. */
  exact: number;
}

/** What the figure draws: from a live run or from the snapshot. */
interface Computed {
  ids: number[];
  hook: string;
  clean: number;
  corrupt: number;
  /** Features × positions AtP estimated (one pass for all). */
  estimates: number;
  passes: { forward: number; backward: number };
  /** The live cells (a feature that differs between the runs), in grid order. */
  cells: Cell[];
  /** Indices into `cells` of the largest |estimate|s, largest first. */
  top: number[];
}

function fromGrid(ids: number[], grid: FeatureAttributionGrid, v: FeatureVerification): Computed {
  const k = grid.shape[1];
  const live = [...grid.features.keys()].filter((i) => grid.features[i] >= 0);
  const cells = live.map((i) => ({ pos: grid.positions[Math.floor(i / k)], feature: grid.features[i], estimate: grid.effects[i], exact: v.exact.values[i] - v.exact.corrupt }));
  return { ids, hook: grid.hook, clean: grid.clean, corrupt: grid.corrupt, estimates: grid.allEffects.length, passes: grid.passes, cells, top: v.cells.map((c) => live.indexOf(c.index)) };
}

@customElement('pb-feature-attribution')
export class PbFeatureAttribution extends PbFeatureFigure<Computed> {
  static override styles = [
    figureStyles,
    tokenTextStyles,
    scatterStyles,
    css`
      table {
        border-collapse: collapse;
        font-size: 0.9em;
      }
      td,
      th {
        padding: 0.1rem 0.5rem;
        text-align: right;
      }
      td.tok {
        text-align: left;
      }
      button.feature {
        font: inherit;
        padding: 0 0.3rem;
        cursor: pointer;
      }
      button.feature[aria-pressed='true'] {
        font-weight: 600;
      }
    `,
  ];

  /** Features per position: the k whose activation differs most between the clean and corrupted runs. */
  @property({ type: Number }) k = 3;
  /** Rows of the table: the cells with the largest estimates (all of them are patched exactly). */
  @property({ type: Number }) rows = 8;

  @state() private computed: Computed | null = null;

  protected override willUpdate(changed: Map<string, unknown>): void {
    if (changed.has('k') || changed.has('rows')) this.stateChanged();
  }

  protected override exportExperiment(): ExperimentKind | null {
    const st = this.experiment?.state;
    if (!st?.prompt || !st.corrupt || !st.metric) return null;
    return { kind: 'attribute', site: 'features', metric: st.metric, k: this.perPosition(), verify: this.tableRows() };
  }

  private perPosition(): number {
    return Math.max(1, Math.floor(this.k));
  }

  private tableRows(): number {
    return Math.max(1, Math.floor(this.rows));
  }

  protected override async refresh(): Promise<void> {
    if (this.fromSnapshot) {
      const a = this.snapshotFeatures?.attribution;
      const ids = this.session?.snapshot?.ids.clean;
      this.notice = a && (a.k !== this.perPosition() || a.rows !== this.tableRows()) ? `This snapshot holds ${a.k} features per position and the ${a.rows} largest estimates.` : '';
      this.computed =
        a && ids
          ? {
              ids,
              hook: a.hook,
              clean: a.clean,
              corrupt: a.corrupt,
              estimates: a.estimates,
              passes: { forward: 2, backward: 1 },
              cells: a.cells.map(([pos, feature, estimate, exact]) => ({ pos, feature, estimate, exact })),
              top: a.top,
            }
          : null;
      return;
    }
    const input = this.readInputs();
    const fs = this.ready;
    if (!input || !fs) return;
    const { model, session, state: st, ids } = input;
    let corrupt: number[];
    try {
      if (!st.corrupt) throw new Error('Feature attribution needs a corrupted prompt (pb-model corrupt="…").');
      if (!st.metric) throw new Error('Feature attribution needs a metric (e.g. logit-diff:POS:GOOD:BAD).');
      corrupt = session.tokenize(st.corrupt);
      if (ids.length !== corrupt.length) throw new Error(`The clean and corrupted prompts must have the same number of tokens (${ids.length} and ${corrupt.length}).`);
      checkMetricSpec(parseMetricSyntax(st.metric), ids.length, model.config.d_vocab);
      if (this.perPosition() > fs.sae!.config.d_sae) throw new Error(`k = ${this.perPosition()}: the SAE has ${fs.sae!.config.d_sae} features`);
    } catch (e) {
      this.fail(e);
      return;
    }
    const metricText = st.metric;
    const k = this.perPosition();
    const rows = this.tableRows();
    const key = [modelKey(model), fs.name, fs.errorTerm, ids.join(','), corrupt.join(','), metricText, k, rows].join('|');
    await this.compute(
      key,
      async (signal) => {
        const metric = specToMetric(parseMetricSyntax(metricText), ids);
        const errorTerm = fs.errorTerm;
        const grid = await featureAttribution(model, fs.sae!, ids, corrupt, metric, { k, errorTerm });
        const verified = await verifyFeatureTopK(model, fs.sae!, ids, corrupt, grid, metric, rows, { errorTerm, signal });
        return fromGrid(ids, grid, verified);
      },
      (c) => {
        this.computed = c;
        this.dispatchEvent(
          new CustomEvent<FeatureAttributionDoneDetail>('pb-feature-attribution-done', {
            detail: {
              hook: c.hook,
              positions: c.cells.map((x) => x.pos),
              features: c.cells.map((x) => x.feature),
              estimates: c.cells.map((x) => x.estimate),
              exact: c.cells.map((x) => x.exact),
              correlation: this.correlation(c),
              hits: this.hits(c),
            },
            bubbles: true,
            composed: true,
          }),
        );
      },
      () => (this.computed = null),
    );
  }

  private correlation(c: Computed): number {
    return pearson(
      c.cells.map((x) => x.estimate),
      c.cells.map((x) => x.exact),
    );
  }

  /** Of the cells largest by |exact| (as many as `top`), how many AtP's largest hold. */
  private hits(c: Computed): number {
    const byExact = [...c.cells.keys()].sort((a, b) => Math.abs(c.cells[b].exact) - Math.abs(c.cells[a].exact) || a - b).slice(0, c.top.length);
    const byAtp = new Set(c.top);
    return byExact.filter((i) => byAtp.has(i)).length;
  }

  protected override exportTable() {
    const c = this.computed;
    if (!c) return null;
    const label = (id: number) => this.session?.label(id) ?? String(id);
    return { header: ['pos', 'token', 'feature', 'atp_estimate', 'exact_effect'], rows: c.cells.map((x) => [x.pos, label(c.ids[x.pos]), x.feature, x.estimate, x.exact]) };
  }

  protected override exportJson() {
    const c = this.computed;
    return {
      figure: 'feature-attribution',
      hook: c?.hook ?? null,
      clean: c?.clean ?? null,
      corrupt: c?.corrupt ?? null,
      cells: c ? this.exportTable()!.rows : null,
      state: this.experiment?.state ?? null,
    };
  }

  private scatter(c: Computed) {
    const top = new Set(c.top);
    const points = c.cells.map((x, j) => ({
      exact: x.exact,
      estimate: x.estimate,
      top: top.has(j),
      title: `position ${x.pos}, feature #${x.feature}: estimate ${formatValue(x.estimate, 3)}, exact ${formatValue(x.exact, 3)}`,
    }));
    return estimateScatter(points, { xLabel: 'exact effect', yLabel: 'AtP', ariaLabel: 'AtP estimate against the exact effect, one dot per feature cell', radius: 3 });
  }

  private table(c: Computed) {
    const label = (id: number) => this.session?.label(id) ?? String(id);
    const selected = this.features?.selected ?? null;
    return html`<table part="table">
      <caption class="muted">The ${c.top.length} largest estimates, each feature also patched exactly</caption>
      <thead>
        <tr><th scope="col">pos</th><th scope="col">token</th><th scope="col">feature</th><th scope="col">AtP</th><th scope="col">exact</th></tr>
      </thead>
      <tbody>
        ${c.top
          .map((j) => c.cells[j])
          .map(
            (v) =>
              html`<tr data-pos=${v.pos} data-feature=${v.feature} data-estimate=${String(v.estimate)} data-exact=${String(v.exact)}>
              <td class="num">${v.pos}</td>
              <td class="tok">${tokenText(label(c.ids[v.pos]))}</td>
              <td>
                <button
                  class="feature"
                  type="button"
                  aria-pressed=${selected === v.feature ? 'true' : 'false'}
                  ?disabled=${this.fromSnapshot}
                  @click=${() => this.features?.set({ selected: v.feature })}
                  title="Select this feature in the other figures"
                >
                  #${v.feature}
                </button>
              </td>
              <td class="num">${formatValue(v.estimate, 3)}</td>
              <td class="num">${formatValue(v.exact, 3)}</td>
            </tr>`,
          )}
      </tbody>
    </table>`;
  }

  override render() {
    const c = this.computed;
    const wait =
      this.fromSnapshot && !this.snapshotFeatures?.attribution ? "Feature attribution runs a backward pass on the GPU: it needs WebGPU, and this page's snapshot does not hold it." : this.waiting();
    let summary: unknown = nothing;
    if (c && !wait) {
      const r = this.correlation(c);
      const n = c.top.length;
      summary = html`<div class="summary muted" part="summary" data-correlation=${String(r)} data-hits=${this.hits(c)}>
        Correlation of AtP with exact feature patching: <span class="num">${Number.isNaN(r) ? '—' : r.toFixed(2)}</span> over ${c.cells.length}
        feature cells; ${this.hits(c)} of the ${n} largest exact effects are among AtP's ${n} largest. Metric: clean ${formatValue(c.clean, 3)},
        corrupted ${formatValue(c.corrupt, 3)}. AtP took ${c.passes.forward} forwards and ${c.passes.backward} backward for all
        ${c.estimates} features × positions; exact patching, ${c.cells.length} patched runs.
      </div>`;
    }
    return html`
      <div class="toolbar">
        <span class="title">Which features carry the effect: AtP against exact feature patching</span>
        ${this.busy ? html`<span class="muted" role="status">computing…</span>` : nothing} ${this.renderExport()}
      </div>
      ${this.renderProblem()} ${wait ? html`<div class="muted" part="status">${wait}</div>` : nothing}
      ${c && !wait ? this.renderResult(html`${summary}<div class="views">${this.table(c)} ${this.scatter(c)}</div>`) : nothing}
    `;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'pb-feature-attribution': PbFeatureAttribution;
  }
  interface HTMLElementEventMap {
    'pb-feature-attribution-done': CustomEvent<FeatureAttributionDoneDetail>;
  }
}
