/**
 * `<pb-steer>`: steer the model along the selected feature's decoder direction with a slider,
 * and watch the next-token prediction change as the slider moves. The prediction also has the
 * features ablated in `<pb-features>` zeroed, so it answers "what happens if I ablate this
 * feature" too. Ticks on the bars (and the figures in brackets) are the model without any
 * feature intervention.
 *
 * Steering adds coeff × W_dec[feature] to the SAE's output hook at every position (as
 * Neuronpedia steers), on the reader's GPU.
 *
 * ```html
 * <pb-sae src="…"><pb-steer max="50" k="8"></pb-steer></pb-sae>
 * ```
 *
 * @csspart slider - The steering coefficient's range input.
 * @csspart list - The list of next tokens.
 * @csspart row - One token's row.
 * @csspart status - Messages and errors.
 */
import { css, html, nothing } from 'lit';
import { customElement, property, state } from 'lit/decorators.js';
import { cssProps } from './css-props.ts';
import { PbFeatureFigure } from './feature-figure.ts';
import { runWithFeatures } from '../experiments/feature-run.ts';
import { figureStyles } from './figure-styles.ts';
import { formatValue } from './heatmap.ts';
import { headName, modelKey, type HeadRef } from './live-run.ts';
import { probabilityOf, topTokens, type TokenProb } from './top-k.ts';
import { tokenText, tokenTextStyles, visibleText } from './token-text.ts';

interface Prediction {
  pos: number;
  top: TokenProb[];
  /** The same tokens' probabilities with no feature intervention (null when there is none). */
  before: number[] | null;
  what: string;
}

@customElement('pb-steer')
export class PbSteer extends PbFeatureFigure<Prediction> {
  static override styles = [
    figureStyles,
    tokenTextStyles,
    css`
      .controls {
        display: flex;
        align-items: center;
        gap: 0.6rem;
        flex-wrap: wrap;
        margin-bottom: 0.5rem;
      }
      input[type='range'] {
        width: min(22rem, 60vw);
      }
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
        background: var(--_track);
        border-radius: 3px;
      }
      .bar {
        height: 100%;
        border-radius: 3px;
        background: var(--_accent);
        min-width: 1px;
      }
      .tick {
        position: absolute;
        top: -0.15rem;
        bottom: -0.15rem;
        width: 2px;
        margin-left: -1px;
        background: var(--_fg);
        opacity: 0.65;
      }
      .p {
        font-variant-numeric: tabular-nums;
        font-size: 0.9em;
      }
    `,
  ];

  /** The slider's range is -max .. max. */
  @property({ type: Number }) max = 20;
  /** The position whose next token is shown; negative counts from the end (-1 = last). */
  @property({ type: Number }) pos = -1;
  /** How many tokens to list. */
  @property({ type: Number }) k = 8;

  @state() private pred: Prediction | null = null;

  protected override willUpdate(changed: Map<string, unknown>): void {
    if (changed.has('pos') || changed.has('k')) this.stateChanged();
  }

  protected override async refresh(): Promise<void> {
    const snap = this.snapshotFeatures;
    if (snap) {
      // The snapshot holds the next token after the last position, for the spec's feature experiment.
      const T = this.session!.snapshot!.ids.clean.length;
      const pos = this.pos < 0 ? T + this.pos : this.pos;
      this.notice = pos !== snap.next.pos ? `This snapshot holds the prediction after the last position (${snap.next.pos}), not after position ${pos}.` : '';
      const k = Math.max(1, Math.floor(this.k) || 1);
      const rows = snap.next.top.slice(0, k);
      const parts = [
        ...(snap.steer && snap.steer.coeff !== 0 ? [`feature #${snap.steer.feature} steered by ${formatValue(snap.steer.coeff, 3)}`] : []),
        ...(snap.ablated.length ? [`${snap.ablated.map((f) => `#${f}`).join(', ')} ablated`] : []),
      ];
      this.pred = { pos: snap.next.pos, top: rows.map(([id, p]) => ({ id, p })), before: rows[0]?.length === 3 ? rows.map((r) => r[2]) : null, what: parts.join('; ') };
      return;
    }
    const input = this.readInputs();
    const fs = this.ready;
    if (!input || !fs) return;
    const { model, ids, ablate, state: st } = input;
    const pos = this.pos < 0 ? ids.length + this.pos : this.pos;
    if (!ids.length) {
      this.stop();
      this.pred = null;
      return;
    }
    if (pos < 0 || pos >= ids.length) {
      this.fail(new Error(`position ${this.pos} is outside the prompt (positions 0 .. ${ids.length - 1})`));
      return;
    }
    const k = Math.max(1, Math.floor(this.k) || 1);
    const what = { ablate: true, steer: true };
    const key = [modelKey(model), fs.key(what), ids.join(','), ablate.map(headName).join(','), st.mode, pos, k].join('|');
    const V = model.config.d_vocab;
    const row = async (heads: HeadRef[], w: { ablate: boolean; steer: boolean }) => {
      const run = await runWithFeatures(model, fs, ids, heads, st.mode, w);
      try {
        return (await run.logits.read()).slice(pos * V, (pos + 1) * V); // [d_vocab]
      } finally {
        run.release();
      }
    };
    const touched = fs.ablated.length > 0 || (fs.selected !== null && fs.steer !== 0);
    const parts = [
      ...(fs.selected !== null && fs.steer !== 0 ? [`feature #${fs.selected} steered by ${formatValue(fs.steer, 3)}`] : []),
      ...(fs.ablated.length ? [`${fs.ablated.map((f) => `#${f}`).join(', ')} ablated`] : []),
    ];
    await this.compute(
      key,
      async () => {
        const logits = await row(ablate, what);
        const top = topTokens(logits, k);
        const before = touched ? await row(ablate, { ablate: false, steer: false }).then((l) => top.map((t) => probabilityOf(l, t.id))) : null;
        return { pos, top, before, what: parts.join('; ') };
      },
      (p) => (this.pred = p),
    );
  }

  protected override exportTable() {
    const p = this.pred;
    if (!p) return null;
    const label = (id: number) => this.session?.label(id) ?? String(id);
    return { header: ['token_id', 'token', 'p', 'p_without_feature_interventions'], rows: p.top.map((t, i) => [t.id, label(t.id), t.p, p.before?.[i] ?? '']) };
  }

  protected override exportJson() {
    return {
      figure: 'steer',
      prediction: this.pred,
      selected: this.features?.selected ?? null,
      steer: this.features?.steer ?? 0,
      ablated: this.features?.ablated ?? [],
      state: this.experiment?.state ?? null,
    };
  }

  private onSlide(e: Event): void {
    const v = Number((e.target as HTMLInputElement).value);
    this.features?.set({ steer: v });
  }

  override render() {
    const p = this.pred;
    const fs = this.features;
    const label = (id: number) => this.session?.label(id) ?? String(id);
    const pct = (x: number) => `${formatValue(100 * x, x < 0.001 ? 2 : 1)}%`;
    const wait = this.waiting();
    const step = this.max / 80; // 0.25 for the default max: slider values exact in binary
    return html`
      <div class="toolbar">
        <span class="title">Steer a feature: the next token</span>
        ${this.busy ? html`<span class="muted" role="status">computing…</span>` : nothing} ${this.renderExport()}
      </div>
      ${this.error ? html`<div class="error" part="status" role="alert">${this.error}</div>` : nothing}
      ${this.notice ? html`<div class="notice" part="notice" role="status">${this.notice}</div>` : nothing}
      ${wait ? html`<div class="muted" part="status">${wait}</div>` : nothing}
      ${
        !wait
          ? html`<div class="controls">
            <label
              >${fs?.selected !== null && fs?.selected !== undefined ? `Feature #${fs.selected}` : 'Select a feature first'}
              <input
                type="range"
                part="slider"
                min=${-this.max}
                max=${this.max}
                step=${step}
                .value=${String(fs?.steer ?? 0)}
                ?disabled=${fs?.selected === null || this.fromSnapshot}
                aria-label="Steering coefficient"
                @input=${this.onSlide}
            /></label>
            <span class="p">${formatValue(fs?.steer ?? 0, 3)}</span>
            <button ?disabled=${!fs?.steer || this.fromSnapshot} @click=${() => fs?.set({ steer: 0 })}>reset</button>
          </div>`
          : nothing
      }
      ${
        p && !wait
          ? html`<div class="muted">After position ${p.pos}${p.what ? `, ${p.what} (ticks and bracketed figures: no feature intervention)` : ''}</div>
            <ol part="list" aria-label=${`Most probable next tokens after position ${p.pos}`}>
              ${p.top.map((t, i) => {
                const was = p.before?.[i];
                return html`<li part="row" data-id=${t.id} data-p=${String(t.p)} aria-label=${`“${visibleText(label(t.id))}” ${pct(t.p)}${was !== undefined ? `, before ${pct(was)}` : ''}`}>
                  <span class="token chip">${tokenText(label(t.id))}</span>
                  <span class="track" aria-hidden="true">
                    <div class="bar" style=${cssProps({ width: `${100 * t.p}%` })}></div>
                    ${was !== undefined ? html`<span class="tick" style=${cssProps({ left: `${100 * was}%` })}></span>` : nothing}
                  </span>
                  <span class="p">${pct(t.p)}${was !== undefined ? html` <span class="muted">(${pct(was)})</span>` : nothing}</span>
                </li>`;
              })}
            </ol>`
          : nothing
      }
    `;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'pb-steer': PbSteer;
  }
}
