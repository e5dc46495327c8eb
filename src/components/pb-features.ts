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
import { featureActivations } from './feature-session.ts';
import { figureStyles } from './figure-styles.ts';
import { formatValue } from './heatmap.ts';
import { headName, modelKey } from './live-run.ts';
import { tokenText, tokenTextStyles } from './token-text.ts';

export interface FeatureSelectDetail {
  feature: number;
}

interface TopFeatures {
  ids: number[];
  /** Per position, its k most active features and their activations (descending). */
  top: Array<Array<{ feature: number; act: number }>>;
  max: number;
}

/** The k largest positive entries of each row of acts [T, F]. */
export function topFeatures(acts: Float32Array, T: number, F: number, k: number): Array<Array<{ feature: number; act: number }>> {
  return Array.from({ length: T }, (_, p) => {
    const row = acts.subarray(p * F, (p + 1) * F);
    const live: number[] = [];
    for (let f = 0; f < F; f++) if (row[f] > 0) live.push(f);
    return live
      .sort((a, b) => row[b] - row[a] || a - b)
      .slice(0, k)
      .map((f) => ({ feature: f, act: row[f] }));
  });
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
        background: var(--pb-accent, #1d4ed8);
        border-radius: 2px;
        min-width: 1px;
      }
      button.feature[aria-pressed='true'] {
        outline: 2px solid var(--pb-accent, #1d4ed8);
        background: var(--pb-bg, #fff);
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
        ${this.busy ? html`<span class="muted" role="status">computing…</span>` : nothing}
      </div>
      ${this.error ? html`<div class="error" part="status" role="alert">${this.error}</div>` : nothing}
      ${wait ? html`<div class="muted" part="status">${wait}</div>` : nothing}
      ${d && !wait
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
                          aria-pressed=${String(fs?.selected === feature)}
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
                          aria-pressed=${String(ablated)}
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
        : nothing}
    `;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'pb-features': PbFeatures;
  }
}
