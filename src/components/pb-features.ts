/**
 * `<pb-features>`: the SAE's most active features at each token of the prompt, with their
 * activations. Click a feature to select it (`<pb-feature-acts>` shows it across the prompt,
 * `<pb-steer>` steers along it); its "ablate" button zeroes it at every position in the figures
 * that show the model's output.
 *
 * ```html
 * <pb-sae src="…"><pb-features k="5"></pb-features></pb-sae>
 * ```
 *
 * Activations are the model's own (head ablations of the page applied, feature ablations and
 * steering not), read at `<hook>.hook_sae_acts_post`.
 *
 * @fires pb-feature-select - `{ feature }` when the reader selects a feature.
 * @csspart table - The table of positions and features.
 * @csspart feature - A feature's button.
 * @csspart ablate - A feature's ablate toggle.
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
import { tokenText, tokenTextStyles } from './token-text.ts';
import { topFeatures } from '../features/top-features.ts';

export { topFeatures };

export interface FeatureSelectDetail {
  feature: number;
}

interface TopFeatures {
  ids: number[];
  /** Per position, its k most active features and their activations (descending). */
  top: Array<Array<{ feature: number; act: number }>>;
  max: number;
}

@customElement('pb-features')
export class PbFeatures extends PbFeatureFigure<TopFeatures> {
  static override styles = [
    figureStyles,
    tokenTextStyles,
    css`
      table {
        border-collapse: collapse;
        font-size: 0.92em;
      }
      th,
      td {
        padding: 0.15rem 0.4rem;
        vertical-align: middle;
        text-align: left;
      }
      th[scope='row'] {
        font-weight: normal;
        white-space: nowrap;
      }
      .cell {
        display: inline-flex;
        align-items: center;
        gap: 0.25rem;
        margin-right: 0.6rem;
      }
      .act {
        display: inline-block;
        height: 0.55rem;
        background: var(--_accent);
        border-radius: 2px;
        min-width: 1px;
      }
      button.feature[aria-pressed='true'] {
        outline: 2px solid var(--_accent);
        background: var(--_bg);
        color: inherit;
      }
      button.ablate {
        padding: 0 0.4em;
        font-size: 0.8em;
      }
      .num {
        font-variant-numeric: tabular-nums;
      }
    `,
  ];

  /** Features shown per position. */
  @property({ type: Number }) k = 5;

  @state() private data: TopFeatures | null = null;

  protected override willUpdate(changed: Map<string, unknown>): void {
    if (changed.has('k')) this.stateChanged();
  }

  protected override async refresh(): Promise<void> {
    const snap = this.snapshotFeatures;
    if (snap) {
      const k = Math.max(1, Math.floor(this.k) || 1);
      const top = snap.top.map((r) => r.slice(0, k).map(([feature, act]) => ({ feature, act })));
      this.data = { ids: this.session!.snapshot!.ids.clean, top, max: Math.max(1e-9, ...top.flatMap((r) => r.map((x) => x.act))) };
      return;
    }
    const input = this.readInputs();
    const fs = this.ready;
    if (!input || !fs) return;
    const { model, ids, ablate, state: st } = input;
    if (!ids.length) {
      this.stop();
      this.data = null;
      return;
    }
    const k = Math.max(1, Math.floor(this.k) || 1);
    const key = [modelKey(model), fs.name, fs.errorTerm, ids.join(','), ablate.map(headName).join(','), st.mode, k].join('|');
    await this.compute(
      key,
      async () => {
        const acts = await featureActivations(model, fs, ids, ablate, st.mode);
        const F = fs.sae!.config.d_sae;
        const top = topFeatures(acts, ids.length, F, k);
        return { ids, top, max: Math.max(1e-9, ...top.flatMap((r) => r.map((x) => x.act))) };
      },
      (d) => (this.data = d),
    );
  }

  protected override exportTable() {
    const d = this.data;
    if (!d) return null;
    const label = (id: number) => this.session?.label(id) ?? String(id);
    return { header: ['pos', 'token', 'rank', 'feature', 'activation'], rows: d.top.flatMap((r, p) => r.map((x, i) => [p, label(d.ids[p]), i + 1, x.feature, x.act])) };
  }

  protected override exportJson() {
    return {
      figure: 'features',
      k: this.k,
      ids: this.data?.ids ?? null,
      top: this.data?.top ?? null,
      selected: this.features?.selected ?? null,
      ablated: this.features?.ablated ?? [],
      state: this.experiment?.state ?? null,
    };
  }

  private select(feature: number): void {
    this.features?.set({ selected: feature });
    this.dispatchEvent(new CustomEvent<FeatureSelectDetail>('pb-feature-select', { detail: { feature }, bubbles: true, composed: true }));
  }

  override render() {
    const d = this.data;
    const fs = this.features;
    const label = (id: number) => this.session?.label(id) ?? String(id);
    const wait = this.waiting();
    return html`
      <div class="toolbar">
        <span class="title">Top features per token</span>
        ${fs?.ablated.length ? html`<span class="muted">ablated: ${fs.ablated.map((f) => `#${f}`).join(', ')}</span>` : nothing}
        ${this.busy ? html`<span class="muted" role="status">computing…</span>` : nothing} ${this.renderExport()}
      </div>
      ${this.error ? html`<div class="error" part="status" role="alert">${this.error}</div>` : nothing}
      ${wait ? html`<div class="muted" part="status">${wait}</div>` : nothing}
      ${
        d && !wait
          ? html`<table part="table" aria-label="The most active SAE features at each position">
            <tbody>
              ${d.top.map(
                (row, p) => html`<tr data-pos=${p}>
                  <th scope="row"><span class="muted">${p}</span> <span class="chip">${tokenText(label(d.ids[p]))}</span></th>
                  <td>
                    ${row.length === 0 ? html`<span class="muted">no active feature</span>` : nothing}
                    ${row.map(({ feature, act }) => {
                      const ablated = !!fs?.ablated.includes(feature);
                      return html`<span class="cell" data-feature=${feature} data-act=${String(act)}>
                        <button
                          class="feature"
                          part="feature"
                          aria-pressed=${fs?.selected === feature ? 'true' : 'false'}
                          title=${`feature ${feature}: activation ${formatValue(act, 3)}; select it`}
                          @click=${() => this.select(feature)}
                        >
                          #${feature}
                        </button>
                        <span class="act" aria-hidden="true" style=${cssProps({ width: `${(3 * act) / d.max}rem` })}></span>
                        <span class="num">${formatValue(act, 2)}</span>
                        <button
                          class="ablate"
                          part="ablate"
                          aria-pressed=${ablated ? 'true' : 'false'}
                          ?disabled=${this.fromSnapshot}
                          title=${ablated ? `restore feature ${feature}` : `ablate feature ${feature} (zero it at every position)`}
                          @click=${() => fs?.toggleAblated(feature)}
                        >
                          ${ablated ? 'ablated' : 'ablate'}
                        </button>
                      </span>`;
                    })}
                  </td>
                </tr>`,
              )}
            </tbody>
          </table>`
          : nothing
      }
    `;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'pb-features': PbFeatures;
  }
}
