/**
 * `<pb-feature-acts>`: one feature's activation across the prompt: every token shaded by how
 * strongly the feature fires there, with the values. Shows the feature selected in
 * `<pb-features>`, or the `feature` attribute's.
 *
 * ```html
 * <pb-sae src="…"><pb-feature-acts feature="118"></pb-feature-acts></pb-sae>
 * ```
 *
 * @csspart tokens - The row of tokens.
 * @csspart token - One token with its activation.
 * @csspart status - Messages and errors.
 */
import { css, html, nothing } from 'lit';
import { customElement, property, state } from 'lit/decorators.js';
import { cssProps } from './css-props.ts';
import { PbFeatureFigure } from './feature-figure.ts';
import { featureActivations } from '../experiments/feature-run.ts';
import { figureStyles } from './figure-styles.ts';
import { formatValue } from './heatmap.ts';
import { headName, modelKey } from './live-run.ts';
import { tokenText, tokenTextStyles, visibleText } from './token-text.ts';

interface FeatureTrace {
  ids: number[];
  feature: number;
  /** [pos] the feature's activation. */
  acts: Float32Array;
}

@customElement('pb-feature-acts')
export class PbFeatureActs extends PbFeatureFigure<FeatureTrace> {
  static override styles = [
    figureStyles,
    tokenTextStyles,
    css`
      .tokens {
        display: flex;
        flex-wrap: wrap;
        gap: 0.25rem;
      }
      .ftok {
        display: inline-flex;
        flex-direction: column;
        align-items: center;
        padding: 0.15rem 0.3rem;
        border-radius: 4px;
        border: 1px solid var(--_border);
      }
      .v {
        font-size: 0.75em;
        font-variant-numeric: tabular-nums;
      }
    `,
  ];

  /** The feature to show (default: the one selected in the SAE's figures). */
  @property({ type: Number }) feature = -1;

  @state() private trace: FeatureTrace | null = null;

  protected override willUpdate(changed: Map<string, unknown>): void {
    if (changed.has('feature')) this.stateChanged();
  }

  private target(): number | null {
    if (this.feature >= 0) return this.feature;
    return this.features?.selected ?? null;
  }

  protected override async refresh(): Promise<void> {
    const snap = this.snapshotFeatures;
    if (snap) {
      const f = this.target();
      const acts = f === null ? undefined : snap.acts[String(f)];
      this.notice = f !== null && !acts ? `This snapshot holds the activations of the features it lists, and #${f} is not among them.` : '';
      this.trace = f !== null && acts ? { ids: this.session!.snapshot!.ids.clean, feature: f, acts: Float32Array.from(acts) } : null;
      return;
    }
    const input = this.readInputs();
    const fs = this.ready;
    const f = this.target();
    if (!input || !fs) return;
    const { model, ids, ablate, state: st } = input;
    if (!ids.length || f === null) {
      this.stop();
      this.trace = null;
      return;
    }
    const F = fs.sae!.config.d_sae;
    if (!Number.isInteger(f) || f >= F) {
      this.fail(new Error(`feature ${f} is not in this SAE (0 .. ${F - 1})`));
      return;
    }
    const key = [modelKey(model), fs.name, fs.errorTerm, ids.join(','), ablate.map(headName).join(','), st.mode, f].join('|');
    await this.compute(
      key,
      async () => {
        const acts = await featureActivations(model, fs, ids, ablate, st.mode);
        return { ids, feature: f, acts: Float32Array.from(ids, (_, p) => acts[p * F + f]) };
      },
      (t) => (this.trace = t),
    );
  }

  protected override exportTable() {
    const t = this.trace;
    if (!t) return null;
    const label = (id: number) => this.session?.label(id) ?? String(id);
    return { header: ['pos', 'token', `feature_${t.feature}`], rows: t.ids.map((id, p) => [p, label(id), t.acts[p]]) };
  }

  protected override exportJson() {
    const t = this.trace;
    return { figure: 'feature-acts', feature: t?.feature ?? null, ids: t?.ids ?? null, acts: t ? Array.from(t.acts) : null, state: this.experiment?.state ?? null };
  }

  override render() {
    const t = this.trace;
    const label = (id: number) => this.session?.label(id) ?? String(id);
    const wait = this.waiting() ?? (this.target() === null ? 'Select a feature in the table of top features.' : null);
    const max = t ? Math.max(1e-9, ...t.acts) : 1;
    return html`
      <div class="toolbar">
        <span class="title">${t && !wait ? `Feature #${t.feature} across the prompt` : 'A feature across the prompt'}</span>
        ${t && !wait ? html`<span class="muted">max ${formatValue(max, 3)}</span>` : nothing}
        ${this.busy ? html`<span class="muted" role="status">computing…</span>` : nothing} ${this.renderExport()}
      </div>
      ${this.error ? html`<div class="error" part="status" role="alert">${this.error}</div>` : nothing}
      ${this.notice ? html`<div class="notice" part="notice" role="status">${this.notice}</div>` : nothing}
      ${wait ? html`<div class="muted" part="status">${wait}</div>` : nothing}
      ${
        t && !wait
          ? html`<div class="tokens" part="tokens" aria-label=${`Activation of feature ${t.feature} at each token`}>
            ${t.ids.map((id, p) => {
              const a = t.acts[p];
              const alpha = Math.max(0, a) / max;
              return html`<span
                class="ftok"
                part="token"
                data-pos=${p}
                data-act=${String(a)}
                aria-label=${`position ${p} “${visibleText(label(id))}”: ${formatValue(a, 3)}`}
                style=${cssProps({ background: `rgba(29, 78, 216, ${(0.75 * alpha).toFixed(3)})`, color: alpha > 0.55 ? '#fff' : null })}
                ><span>${tokenText(label(id))}</span><span class="v">${a > 0 ? formatValue(a, 2) : '·'}</span></span
              >`;
            })}
          </div>`
          : nothing
      }
    `;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'pb-feature-acts': PbFeatureActs;
  }
}
