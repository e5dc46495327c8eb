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
import { MetricSpecError } from '../experiments/metric-spec.ts';
import { PbComputedFigure } from './figure.ts';
import { figureStyles } from './figure-styles.ts';
import { formatValue } from './heatmap.ts';
import { headName, modelKey, type HeadRef } from './live-run.ts';
import { runHeadAblation } from '../experiments/ablation.ts';
import { probabilityOf, topTokens, type TokenProb } from './top-k.ts';
import { tokenText, tokenTextStyles, visibleText } from './token-text.ts';
import { CanvasPen, SvgPen, type Pen } from './heatmap-paint.ts';

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
        grid-template-columns: minmax(0, max-content) minmax(4rem, 22rem) max-content;
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
        text-align: right;
        min-width: 3.2em;
      }
      .was {
        color: var(--_muted);
        margin-left: 0.4em;
      }
      .context {
        margin-bottom: 0.5rem;
      }
      .legend {
        margin-top: 0.4rem;
      }
      .tick-key {
        display: inline-block;
        width: 2px;
        height: 0.9em;
        background: var(--_fg);
        vertical-align: middle;
        margin-right: 0.3em;
      }
      ol {
        max-width: 100%;
      }
    `,
  ];

  /**
   * The position whose next token is predicted: an index, negative counts from the end (-1 = the
   * last), or a token in double quotes (its last occurrence, e.g. '" John"').
   */
  @property() pos = '-1';
  /** How many tokens to list. */
  @property({ type: Number }) k = 10;

  @state() private dist: Distribution | null = null;

  protected override willUpdate(changed: Map<string, unknown>): void {
    if (changed.has('pos') || changed.has('k')) this.stateChanged();
  }

  /** `pos` in the prompt `ids`; throws a not-applicable MetricSpecError when it is not there. */
  private position(ids: readonly number[]): number {
    const text = String(this.pos).trim();
    const T = ids.length;
    const na = (why: string) => new MetricSpecError(`position ${text} ${why}`, true);
    if (text.startsWith('"')) {
      const want = JSON.parse(text) as string;
      const enc = this.session?.tokenizer?.encode(want) ?? [];
      const p = enc.length === 1 ? ids.lastIndexOf(enc[0]) : -1;
      if (p < 0) throw na(`: the token ${text} is not in this prompt`);
      return p;
    }
    const n = Number(text);
    const p = n < 0 ? T + n : n;
    if (!Number.isInteger(n) || p < 0 || p >= T) throw na(`is outside this ${T}-token prompt (positions 0 .. ${T - 1}, or -1 .. -${T} from the end)`);
    return p;
  }

  protected override async refresh(): Promise<void> {
    const snap = this.fromSnapshot ? this.session!.snapshot : null;
    if (snap) {
      try {
        const pos = this.position(snap.ids.clean);
        const k = Math.max(1, Math.floor(this.k) || 1);
        const row = snap.top[pos].slice(0, k);
        this.dist = { ids: snap.ids.clean, pos, top: row.map(([id, p]) => ({ id, p })), unablated: row[0]?.length > 2 ? row.map((x) => x[2]) : null, ablated: this.experiment?.state.ablate ?? [] };
      } catch (e) {
        this.fail(e);
      }
      return;
    }
    const input = this.readInputs();
    if (!input) return;
    const { model, ids, ablate, state: st } = input;
    let pos = 0;
    try {
      if (ids.length) pos = this.position(ids);
    } catch (e) {
      this.fail(e);
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
      const { ablated: run } = await runHeadAblation(model, [ids], heads, { mode: st.mode });
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
        ${this.busy ? html`<span class="muted" role="status">computing…</span>` : nothing} ${this.renderExport()}
      </div>
      ${this.renderProblem()}
      ${!this.model && !this.fromSnapshot ? html`<div class="muted" part="status">${s?.noModelText() ?? 'Waiting for the model…'}</div>` : nothing}
      ${this.renderResult(
        d
          ? html`<div class="context muted">
              After position ${d.pos} <span class="chip">${tokenText(label(d.ids[d.pos]))}</span>${
                d.ablated.length ? html`, with ${d.ablated.join(', ')} ablated (ticks and grey figures: the unablated model)` : nothing
              }
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
            </ol>
            ${d.unablated ? html`<div class="legend muted" part="legend"><span class="tick-key"></span> tick and figure in brackets: the unablated model</div>` : nothing}`
          : nothing,
      )}
    `;
  }

  protected override exportTable() {
    const d = this.dist;
    if (!d) return null;
    const label = (id: number) => this.session?.label(id) ?? String(id);
    return { header: ['rank', 'id', 'token', 'probability', 'unablated_probability'], rows: d.top.map((t, i) => [i + 1, t.id, label(t.id), t.p, d.unablated?.[i] ?? '']) };
  }

  protected override exportJson() {
    return { figure: 'top-tokens', pos: this.dist?.pos, top: this.dist?.top, unablated: this.dist?.unablated, state: this.experiment?.state };
  }

  /** The bars as a picture: one row per token. */
  protected override exportPictures() {
    const d = this.dist;
    if (!d) return null;
    const rows = this.exportTable()!.rows;
    const paint = (pen: Pen) => {
      const fg = getComputedStyle(this).getPropertyValue('--_fg').trim() || '#1f2328';
      const accent = getComputedStyle(this).getPropertyValue('--_accent').trim() || '#1d4ed8';
      pen.text(10, 12, `Next token after position ${d.pos}`, { size: 13, color: fg, bold: true });
      rows.forEach((r, i) => {
        const y = 34 + i * 20;
        pen.text(120, y, visibleText(String(r[2])), { size: 12, color: fg, align: 'right', mono: true });
        pen.rect(128, y - 6, 240 * Number(r[3]), 12, accent);
        pen.text(376, y, `${(100 * Number(r[3])).toFixed(1)}%`, { size: 11, color: fg });
      });
      return { width: 440, height: 40 + rows.length * 20 };
    };
    return {
      svg: () => {
        const pen = new SvgPen(new CanvasPen(document.createElement('canvas').getContext('2d')!));
        const size = paint(pen);
        return pen.svg(size.width, size.height, getComputedStyle(this).getPropertyValue('--_bg').trim() || '#fff');
      },
      png: () => {
        const canvas = document.createElement('canvas');
        canvas.width = 880;
        canvas.height = 2 * (40 + rows.length * 20);
        const ctx = canvas.getContext('2d')!;
        ctx.scale(2, 2);
        ctx.fillStyle = getComputedStyle(this).getPropertyValue('--_bg').trim() || '#fff';
        ctx.fillRect(0, 0, 440, 40 + rows.length * 20);
        paint(new CanvasPen(ctx));
        return new Promise<Blob>((ok, fail) => canvas.toBlob((b) => (b ? ok(b) : fail(new Error('the PNG could not be made'))), 'image/png'));
      },
    };
  }

  protected override exportExperiment() {
    return { kind: 'ablate' as const };
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'pb-top-tokens': PbTopTokens;
  }
}
