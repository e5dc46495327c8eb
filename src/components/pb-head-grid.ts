/**
 * `<pb-head-grid>`: every attention head, layers down and heads across. Clicking a head (or
 * focusing it and pressing Enter or Space) toggles its ablation in the experiment state, zero or
 * mean (the toggle above the grid), and the experiment's metric is shown for the model with
 * those heads ablated next to the unablated one. "Compute every head's effect" ablates each head
 * alone (`headAblationSweep`) and colours it by metric(ablated) − metric(unablated).
 *
 * ```html
 * <pb-head-grid roles='{"9.9": "name mover", "0.1": "duplicate token"}'></pb-head-grid>
 * ```
 *
 * @fires pb-ablation-change - `{ ablate, mode }` when the reader toggles a head or the mode.
 * @fires pb-metric - `{ value, unablated }` each time the live metric is computed.
 * @fires pb-effects-done - `{ mode, values, unablated }` when every head's effect is computed (values row-major [layer, head], each metric(ablated) − unablated).
 * @csspart metric - The line with the metric values.
 * @csspart mode - The zero/mean toggle.
 * @csspart compute - The "Compute every head's effect" button.
 * @csspart progress - The progress bar of that computation.
 * @csspart heatmap - The grid (a `<pb-heatmap>`).
 * @csspart status - Messages and errors.
 */
import { css, html, nothing } from 'lit';
import { customElement, property, state } from 'lit/decorators.js';
import { headAblationMetric, headAblationSweep } from '../experiments/ablation.ts';
import type { Metric } from '../model/metric.ts';
import { parseMetricSyntax, resolveMetricSpec, specToMetric, type ResolvedMetricSpec as MetricSpec } from '../experiments/metric-spec.ts';
import { snapshotEncoder } from '../experiments/snapshot.ts';
import { PbComputedFigure } from './figure.ts';
import { figureStyles } from './figure-styles.ts';
import { formatValue } from './heatmap.ts';
import './heatmap.ts';
import { Latest, errorMessage } from './latest.ts';
import { headName, modelKey, type HeadRef } from './live-run.ts';
import { visibleText } from './token-text.ts';

export interface AblationChangeDetail {
  ablate: string[];
  mode: 'zero' | 'mean';
}

export interface MetricDetail {
  /** The metric with the ablated heads. */
  value: number;
  /** The metric of the unablated model. */
  unablated: number;
}

export interface EffectsDoneDetail {
  mode: 'zero' | 'mean';
  /** metric(head ablated alone) − unablated, row-major [layer, head]. */
  values: Float64Array;
  unablated: number;
}

interface Effects {
  key: string;
  mode: 'zero' | 'mean';
  values: Float64Array;
  unablated: number;
}

/** `roles` from an attribute: a JSON object "L.H" → label. */
const rolesConverter = {
  fromAttribute(value: string | null): Record<string, string> {
    if (!value) return {};
    try {
      const parsed: unknown = JSON.parse(value);
      return parsed && typeof parsed === 'object' ? (parsed as Record<string, string>) : {};
    } catch {
      console.warn(`pb-head-grid: roles="${value}" is not JSON such as {"9.9": "name mover"}`);
      return {};
    }
  },
};

@customElement('pb-head-grid')
export class PbHeadGrid extends PbComputedFigure<MetricDetail> {
  static override styles = [
    figureStyles,
    css`
      .metric {
        display: flex;
        flex-wrap: wrap;
        align-items: baseline;
        gap: 0.3rem 1.4rem;
        margin: 0 0 0.6rem;
        padding: 0.45rem 0.7rem;
        border: 1px solid var(--_border-light);
        border-radius: 8px;
        background: var(--_panel);
      }
      .metric .what {
        flex-basis: 100%;
        font-size: 0.85em;
        color: var(--_muted);
      }
      .metric b {
        font-size: 1.15em;
        font-variant-numeric: tabular-nums;
      }
      .delta {
        font-variant-numeric: tabular-nums;
        margin-left: 0.3em;
      }
      .delta.down {
        color: #b2182b;
      }
      .delta.up {
        color: #2166ac;
      }
      pb-heatmap {
        --pb-cell-min: 2.6rem;
        --pb-cell-max: 3.8rem;
        --pb-cell-height: 2.9em;
        font-size: 0.9rem;
      }
      .hint {
        margin-top: 0.2rem;
      }
    `,
  ];

  /** Head roles drawn as badges: "L.H" → label (attribute: JSON). */
  @property({ converter: rolesConverter }) roles: Record<string, string> = {};
  /** What each badge means, for the legend: label → meaning (attribute `role-names`: JSON). */
  @property({ attribute: 'role-names', converter: rolesConverter }) roleNames: Record<string, string> = {};

  /** Which way the metric is better: blue means "better" on every grid. */
  private better(): 'higher' | 'lower' {
    return this.current?.spec?.kind === 'loss' ? 'lower' : 'higher';
  }

  private captionText(ablate: readonly string[], effects: Effects | null): string {
    const spec = this.current?.spec;
    const what = spec ? this.describeMetric(spec) : 'the metric';
    const parts = [`Layers down, heads across. Click a head to ablate it (hatched) and see ${what.charAt(0).toLowerCase() + what.slice(1)} change.`];
    if (ablate.length) parts.push(`Ablated now: ${ablate.join(', ')}.`);
    if (effects) parts.push(`Colours: each head ${effects.mode}-ablated alone; blue = the metric gets better (${this.better()} is better), red = worse.`);
    return parts.join(' ');
  }

  protected override exportTable() {
    const shape = this.session?.shape;
    if (!shape) return null;
    const e = this.effects;
    const rows: (string | number)[][] = [];
    for (let l = 0; l < shape.n_layers; l++) {
      for (let h = 0; h < shape.n_heads; h++) {
        const name = `${l}.${h}`;
        rows.push([name, this.roles[name] ?? '', this.experiment?.state.ablate.includes(name) ? 1 : 0, e ? e.values[l * shape.n_heads + h] : '']);
      }
    }
    return { header: ['head', 'role', 'ablated', 'effect_when_ablated_alone'], rows };
  }

  protected override exportJson() {
    return {
      figure: 'head-grid',
      metric: this.experiment?.state.metric,
      live: this.live,
      effects: this.effects ? { mode: this.effects.mode, values: Array.from(this.effects.values), unablated: this.effects.unablated } : null,
      state: this.experiment?.state,
    };
  }

  protected override exportExperiment() {
    const st = this.experiment?.state;
    if (!st?.metric) return null;
    return this.effects ? { kind: 'sweep-ablate' as const, metric: st.metric, mode: st.mode } : { kind: 'ablate' as const, metric: st.metric };
  }

  @state() private live: (MetricDetail & { key: string }) | null = null;
  @state() private effects: Effects | null = null;
  @state() private progress: { done: number; total: number } | null = null;
  @state() private sweepError = '';

  /** Every head's ablation (the live metric is `job`). */
  private readonly sweepJob = new Latest<Effects>();
  /** Unablated metric per model, prompt and metric: toggling heads does not recompute it. */
  private readonly unablated = new Map<string, number>();
  /** What the grid reads from the state, parsed; null when something is missing or wrong. */
  private current: { ids: number[]; spec: MetricSpec | null; metric: Metric | null; ablate: HeadRef[]; baseKey: string } | null = null;

  protected override isBusy(): boolean {
    return this.busy || this.sweepJob.running;
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.sweepJob.cancel();
    this.progress = null;
  }

  /** Nothing to measure: the live metric stops, and a running sweep is abandoned. */
  protected override fail(e: unknown): null {
    super.fail(e);
    this.current = null;
    this.live = null;
    this.abandonSweep();
    return null;
  }

  /** Cancels a running sweep. */
  private abandonSweep(): void {
    if (!this.sweepJob.running) return;
    this.sweepJob.cancel();
    this.progress = null;
  }

  private sweepKey(mode: string): string {
    return `${this.current?.baseKey}|${mode}`;
  }

  protected override async refresh(): Promise<void> {
    const snap = this.fromSnapshot ? this.session!.snapshot : null;
    if (snap) {
      const st = this.experiment?.state;
      if (!st || !snap.metric) return;
      const ids = snap.ids.clean;
      let spec: MetricSpec;
      try {
        spec = resolveMetricSpec(parseMetricSyntax(st.metric), ids, snap.model.d_vocab, snapshotEncoder(snap));
      } catch (e) {
        this.fail(e);
        return;
      }
      const baseKey = 'snapshot';
      this.current = { ids, spec, metric: null, ablate: [], baseKey };
      this.live = { value: snap.metric.value, unablated: snap.metric.unablated, key: baseKey };
      this.effects = { key: `${baseKey}|${snap.metric.effects.mode}`, mode: snap.metric.effects.mode, values: Float64Array.from(snap.metric.effects.values), unablated: snap.metric.unablated };
      return;
    }
    const input = this.readInputs();
    if (!input) return;
    const { model, ids, ablate, state: st } = input;
    let spec: MetricSpec | null = null;
    let metric: Metric | null;
    try {
      if (st.metric && ids.length) {
        spec = resolveMetricSpec(parseMetricSyntax(st.metric), ids, model.config.d_vocab, input.session.tokenizer);
      }
      metric = spec ? specToMetric(spec, ids) : null;
    } catch (e) {
      this.fail(e);
      return;
    }
    const baseKey = [modelKey(model), ids.join(','), st.metric].join('|');
    this.current = { ids, spec, metric, ablate, baseKey };
    this.error = '';
    // A running sweep for another prompt, metric or mode is abandoned.
    if (!this.sweepJob.has(this.sweepKey(st.mode))) this.abandonSweep();
    if (!metric) {
      this.stop();
      this.live = null;
      return;
    }
    const key = `${baseKey}|${ablate.map(headName).join(',')}|${st.mode}`;
    const value = (heads: HeadRef[]) => headAblationMetric(model, ids, heads, metric, st.mode);
    await this.compute(
      key,
      async () => {
        let unablated = this.unablated.get(baseKey);
        if (unablated === undefined) {
          unablated = await value([]);
          if (this.unablated.size >= 32) this.unablated.clear(); // a reader editing the prompt
          this.unablated.set(baseKey, unablated);
        }
        return { value: ablate.length ? await value(ablate) : unablated, unablated };
      },
      (detail) => {
        this.live = { ...detail, key };
        this.dispatchEvent(new CustomEvent<MetricDetail>('pb-metric', { detail: { ...detail }, bubbles: true, composed: true }));
      },
    );
  }

  private toggle(name: string): void {
    const ex = this.experiment;
    if (!ex) return;
    const ablate = ex.state.ablate.includes(name) ? ex.state.ablate.filter((h) => h !== name) : [...ex.state.ablate, name];
    this.setAblation(ablate, ex.state.mode);
  }

  private setAblation(ablate: string[], mode: 'zero' | 'mean'): void {
    this.experiment?.update({ ablate, mode });
    this.dispatchEvent(new CustomEvent<AblationChangeDetail>('pb-ablation-change', { detail: { ablate, mode }, bubbles: true, composed: true }));
  }

  /** Runs (or re-runs) every head's ablation for the current prompt, metric and mode. */
  async computeEffects(): Promise<void> {
    const model = this.model;
    const cur = this.current;
    const ex = this.experiment;
    if (!model || !ex || !cur?.metric) return;
    const metric = cur.metric;
    const mode = ex.state.mode;
    const key = this.sweepKey(mode);
    this.sweepJob.cancel(); // a second click starts over
    this.sweepError = '';
    this.progress = { done: 0, total: model.config.n_layers * model.config.n_heads };
    const outcome = await this.sweepJob.run(key, async (signal) => {
      const grid = await headAblationSweep(model, cur.ids, metric, {
        mode,
        signal,
        onProgress: (done, total) => {
          if (!signal.aborted) this.progress = { done, total };
        },
      });
      return { key, mode, values: grid.values.map((v) => v - grid.clean), unablated: grid.clean };
    });
    this.requestUpdate();
    if (!outcome) return;
    this.progress = null;
    if (!outcome.ok) {
      this.sweepError = errorMessage(outcome.error);
      return;
    }
    this.effects = outcome.value;
    const { values, unablated } = outcome.value;
    this.dispatchEvent(new CustomEvent<EffectsDoneDetail>('pb-effects-done', { detail: { mode, values, unablated }, bubbles: true, composed: true }));
  }

  private describeMetric(spec: MetricSpec): string {
    const tok = (id: number) => `“${visibleText(this.session?.label(id) ?? String(id))}”`;
    switch (spec.kind) {
      case 'logit-diff':
        return `Logit difference at position ${spec.pos}: logit ${tok(spec.good)} − logit ${tok(spec.bad)}`;
      case 'logprob':
        return `Log-probability of ${tok(spec.token)} at position ${spec.pos}`;
      case 'prob':
        return `Probability of ${tok(spec.token)} at position ${spec.pos}`;
      case 'loss':
        return `Loss (mean cross-entropy of the next token) over positions ${spec.start} – ${spec.end - 1}`;
    }
  }

  private renderMetric(ablated: string[]) {
    const cur = this.current;
    if (!cur?.spec) return nothing;
    const live = this.live;
    const d = live ? live.value - live.unablated : 0;
    return html`<div class="metric" part="metric" role="status" aria-live="polite">
      <span class="what">${this.describeMetric(cur.spec)}</span>
      <span>Unablated <b class="unablated" data-value=${live ? String(live.unablated) : ''}>${live ? formatValue(live.unablated, 3) : '…'}</b></span>
      <span
        >${ablated.length ? `With ${ablated.join(', ')} ablated` : 'Nothing ablated'}
        <b class="ablated" data-value=${live ? String(live.value) : ''}>${live ? formatValue(live.value, 3) : '…'}</b
        >${live && ablated.length ? html`<span class="delta ${d < 0 ? 'down' : 'up'}">(${d >= 0 ? '+' : ''}${formatValue(d, 3)})</span>` : nothing}</span
      >
    </div>`;
  }

  override render() {
    const shape = this.session?.shape;
    const ex = this.experiment;
    // Without weights (no WebGPU, no snapshot) the grid still shows the heads, and their roles.
    const weightless = this.session?.status === 'weightless';
    if (!shape || !ex || !(this.model || this.fromSnapshot || weightless)) {
      return html`<div class="toolbar"><span class="title">Heads</span></div>
        <div class="muted" part="status">${this.session?.noModelText() ?? 'Waiting for the model…'}</div>`;
    }
    const { n_layers: L, n_heads: H } = shape;
    const readOnly = this.fromSnapshot || weightless;
    const st = ex.state;
    const ablated = new Set(st.ablate);
    const effects = this.effects && this.current && this.effects.key === this.sweepKey(st.mode) ? this.effects : null;
    const names = Array.from({ length: L * H }, (_, i) => `${Math.floor(i / H)}.${i % H}`);
    const values = effects ? effects.values : new Float64Array(L * H);
    const canMeasure = !!this.current?.metric;
    const describe = (l: number, h: number) => {
      const name = `${l}.${h}`;
      const role = this.roles[name];
      const on = ablated.has(name);
      let text = `Head ${name}${role ? ` (${role})` : ''}: ${on ? 'ablated' : 'not ablated'}`;
      if (effects) {
        const e = effects.values[l * H + h];
        text += `; ${effects.mode}-ablating it alone changes the metric by ${e >= 0 ? '+' : ''}${formatValue(e, 3)} (to ${formatValue(effects.unablated + e, 3)})`;
      }
      return text;
    };
    const progress = this.progress;
    return html`
      <div class="toolbar">
        <span class="title">Heads</span>
        <span class="segmented" part="mode" role="group" aria-label="Ablation mode">
          ${(['zero', 'mean'] as const).map(
            (m) =>
              html`<button
                type="button"
                aria-pressed=${st.mode === m ? 'true' : 'false'}
                title=${m === 'zero' ? 'Replace the head’s output with zeros' : 'Replace the head’s output with its mean over this prompt'}
                @click=${() => this.setAblation([...st.ablate], m)}
              >
                ${m === 'zero' ? 'Zero' : 'Mean'}
              </button>`,
          )}
        </span>
        <button type="button" part="compute" class="compute" ?disabled=${!canMeasure || readOnly} @click=${() => void this.computeEffects()}>
          Compute every head’s effect
        </button>
        <button type="button" class="clear" ?disabled=${ablated.size === 0 || readOnly} @click=${() => this.setAblation([], st.mode)}>Clear</button>
        ${this.renderExport()}
      </div>
      ${this.renderMetric([...ablated])}
      ${weightless ? html`<div class="muted" part="status">${this.session!.noModelText()} The grid shows the model's ${L} × ${H} heads${Object.keys(this.roles).length ? ' and their roles' : ''}.</div>` : nothing}
      ${this.renderProblem()}
      ${!this.error && !this.notice && !st.metric ? html`<div class="muted" part="status">Set a metric (e.g. logit-diff:POS:GOOD:BAD or loss:START:END) to measure ablations.</div>` : nothing}
      ${
        progress
          ? html`<div class="progress" role="status">
            <progress part="progress" max=${progress.total} value=${progress.done}></progress>
            <span>${progress.done} of ${progress.total} heads ablated…</span>
          </div>`
          : nothing
      }
      ${this.sweepError ? html`<div class="error" part="error" role="alert">${this.sweepError}</div>` : nothing}
      <p class="auto-caption" part="caption">${this.captionText(st.ablate, effects)}</p>
      <pb-heatmap
        part="heatmap"
        .values=${values}
        rows=${L}
        cols=${H}
        .rowLabels=${Array.from({ length: L }, (_, l) => String(l))}
        .colLabels=${Array.from({ length: H }, (_, h) => String(h))}
        row-axis="layer"
        col-axis="head"
        scale="diverging"
        digits="3"
        value-label=${effects ? `Δ metric when ablated alone (${effects.mode})` : 'Δ metric (not computed yet)'}
        better=${this.better()}
        selected-label="ablated in the run above (click a head to toggle)"
        .badgeLegend=${this.roleNames}
        ?no-legend=${!effects}
        ?interactive=${!weightless}
        .selected=${names.map((n) => ablated.has(n))}
        .cellText=${names.map((n, i) => (effects ? formatValue(values[i], Math.abs(values[i]) >= 10 ? 1 : 2) : n))}
        .badges=${names.map((n) => this.roles[n])}
        .describe=${describe}
        @pb-cell-activate=${(e: CustomEvent<{ row: number; col: number }>) => !readOnly && this.toggle(`${e.detail.row}.${e.detail.col}`)}
      ></pb-heatmap>
    `;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'pb-head-grid': PbHeadGrid;
  }
  interface HTMLElementEventMap {
    'pb-ablation-change': CustomEvent<AblationChangeDetail>;
    'pb-metric': CustomEvent<MetricDetail>;
    'pb-effects-done': CustomEvent<EffectsDoneDetail>;
  }
}
