/**
 * `<pb-top-tokens>`: the model's next-token distribution after a position: the `k` most
 * probable tokens with probability bars, for the model as the reader has it (heads ablated in
 * the experiment state stay ablated). With heads ablated, a tick on each bar marks the
 * unablated model's probability of that token.
 *
 * ```html
 * <pb-top-tokens k="5"></pb-top-tokens>          <!-- after the last token -->
 * <pb-top-tokens pos="10"></pb-top-tokens>
 * ```
 *
 * @csspart list - The list of tokens.
 * @csspart row - One token's row.
 * @csspart token - A token's text.
 * @csspart bar - A probability bar.
 * @csspart status - Messages and errors.
 */
import { css, html, nothing } from 'lit';
import { customElement, property, state } from 'lit/decorators.js';
import { cssProps } from './css-props.ts';
import { PbComputedFigure } from './figure.ts';
import { figureStyles } from './figure-styles.ts';
import { formatValue } from './heatmap.ts';
import { headName, modelKey, runAblated, type HeadRef } from './live-run.ts';
import { probabilityOf, topTokens, type TokenProb } from './top-k.ts';
import { tokenText, tokenTextStyles, visibleText } from './token-text.ts';

interface Distribution {
  ids: number[];
  pos: number;
  top: TokenProb[];
  /** The unablated model's probability of each listed token; null when nothing is ablated. */
  unablated: number[] | null;
  ablated: string[];
}

@customElement('pb-top-tokens')
export class PbTopTokens extends PbComputedFigure<Distribution> {
  static override styles = [
    figureStyles,
    tokenTextStyles,
    css`
      ol {
        list-style: none;
        margin: 0;
        padding: 0;
        display: grid;
        grid-template-columns: max-content minmax(6rem, 22rem) max-content;
        gap: 0.2rem 0.6rem;
        align-items: center;
      }
      li {
        display: contents;
      }
      .token {
        justify-self: end;
      }
      .track {
        position: relative;
        height: 0.9rem;
        background: var(--pb-track, #eef1f4);
        border-radius: 3px;
      }
      .bar {
        height: 100%;
        border-radius: 3px;
        background: var(--pb-accent, #1d4ed8);
        min-width: 1px;
      }
      .tick {
        position: absolute;
        top: -0.15rem;
        bottom: -0.15rem;
        width: 2px;
        margin-left: -1px;
        background: var(--pb-fg, #1f2328);
        opacity: 0.65;
      }
      .p {
        font-variant-numeric: tabular-nums;
        font-size: 0.9em;
        text-align: right;
        min-width: 3.2em;
      }
      .was {
        color: var(--pb-muted, #6b7280);
        margin-left: 0.4em;
      }
      .context {
        margin-bottom: 0.5rem;
      }
    `,
  ];

  /** The position whose next token is predicted; negative counts from the end (-1 = last). */
  @property({ type: Number }) pos = -1;
  /** How many tokens to list. */
  @property({ type: Number }) k = 10;

  @state() private dist: Distribution | null = null;

  protected override willUpdate(changed: Map<string, unknown>): void {
    if (changed.has('pos') || changed.has('k')) this.stateChanged();
  }

  protected override async refresh(): Promise<void> {
    const input = this.readInputs();
    if (!input) return;
    const { model, ids, ablate, state: st } = input;
    const pos = this.pos < 0 ? ids.length + this.pos : this.pos;
    if (ids.length && (pos < 0 || pos >= ids.length)) {
      this.fail(new Error(`position ${this.pos} is outside the prompt (positions 0 .. ${ids.length - 1})`));
      return;
    }
    if (!ids.length) {
      this.stop();
      this.dist = null;
      return;
    }
    const k = Math.max(1, Math.floor(this.k) || 1);
    const key = [modelKey(model), ids.join(','), ablate.map(headName).join(','), st.mode, pos, k].join('|');
    const V = model.config.d_vocab;
    const row = async (heads: HeadRef[]) => {
      const run = await runAblated(model, ids, heads, st.mode);
      try {
        return (await run.logits.read()).slice(pos * V, (pos + 1) * V); // [d_vocab]
      } finally {
        run.release();
      }
    };
    await this.compute(
      key,
      async () => {
        const logits = await row(ablate);
        const top = topTokens(logits, k);
        let unablated: number[] | null = null;
        if (ablate.length) {
          const clean = await row([]);
          unablated = top.map((t) => probabilityOf(clean, t.id));
        }
        return { ids, pos, top, unablated, ablated: ablate.map(headName) };
      },
      (dist) => (this.dist = dist),
    );
  }

  override render() {
    const d = this.dist;
    const s = this.session;
    const label = (id: number) => s?.label(id) ?? String(id);
    const pct = (p: number) => `${formatValue(100 * p, p < 0.001 ? 2 : 1)}%`;
    return html`
      <div class="toolbar">
        <span class="title">Next token</span>
        ${this.busy ? html`<span class="muted" role="status">computing…</span>` : nothing}
      </div>
      ${this.error ? html`<div class="error" part="status" role="alert">${this.error}</div>` : nothing}
      ${!this.model ? html`<div class="muted" part="status">${s?.status === 'error' ? 'No model.' : 'Waiting for the model…'}</div>` : nothing}
      ${d
        ? html`<div class="context muted">
              After position ${d.pos} <span class="chip">${tokenText(label(d.ids[d.pos]))}</span>${d.ablated.length
                ? html`, with ${d.ablated.join(', ')} ablated (ticks and grey figures: the unablated model)`
                : nothing}
            </div>
            <ol part="list" aria-label=${`Most probable next tokens after position ${d.pos}`}>
              ${d.top.map((t, i) => {
                const was = d.unablated?.[i];
                const aria = `“${visibleText(label(t.id))}” ${pct(t.p)}${was !== undefined ? `, unablated ${pct(was)}` : ''}`;
                return html`<li part="row" aria-label=${aria} data-id=${t.id} data-p=${String(t.p)}>
                  <span class="token chip" part="token">${tokenText(label(t.id))}</span>
                  <span class="track" aria-hidden="true">
                    <div class="bar" part="bar" style=${cssProps({ width: `${100 * t.p}%` })}></div>
                    ${was !== undefined ? html`<span class="tick" style=${cssProps({ left: `${100 * was}%` })}></span>` : nothing}
                  </span>
                  <span class="p">${pct(t.p)}${was !== undefined ? html`<span class="was">(${pct(was)})</span>` : nothing}</span>
                </li>`;
              })}
            </ol>`
        : nothing}
    `;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'pb-top-tokens': PbTopTokens;
  }
}
