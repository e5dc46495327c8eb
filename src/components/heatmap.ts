/**
 * `<pb-heatmap>`: the drawing every figure shares, a grid of cells coloured from a typed array
 * with labelled rows and columns. It draws; it computes nothing.
 *
 * ```html
 * <pb-heatmap rows="17" cols="17" scale="sequential" row-axis="query" col-axis="key" causal cross></pb-heatmap>
 * ```
 * (`values`, `rowLabels` and `colLabels` are properties.) Scales: `sequential` for data in
 * [0, `domain`] (attention, probabilities; white to blue), `diverging` for signed data, centred
 * at 0 (red below, blue above; `domain` is the |value| at full colour, by default the largest).
 * The value of the cell under the pointer or the keyboard focus is written out as text below the
 * grid. Cells are one tab stop: arrow keys, Home/End and PageUp/PageDown move; with
 * `interactive`, Enter or Space (or a click) activates a cell. Labels are always text, so a
 * label `<img src=x onerror=alert(1)>` reads literally.
 *
 * @fires pb-cell-hover - `{ row, col }` of the cell (or, with `cross`, the label) under the pointer or focus; -1 when none.
 * @fires pb-cell-activate - `{ row, col }` when an `interactive` cell is clicked or gets Enter/Space.
 * @csspart figure - The whole figure.
 * @csspart caption - The caption above the grid.
 * @csspart grid - The grid of cells and labels.
 * @csspart cell - Each cell.
 * @csspart label - Each row and column label.
 * @csspart badge - A cell's badge.
 * @csspart axis - The axis titles.
 * @csspart readout - The line with the focused cell's value.
 * @csspart legend - The colour scale.
 * @cssprop --pb-cell-min - Smallest cell width (default 0.9rem).
 * @cssprop --pb-cell-max - Largest cell width (default 1.9rem).
 */
import { LitElement, css, html, nothing, type PropertyValues } from 'lit';
import { customElement, property, state } from 'lit/decorators.js';
import { cssProps } from './css-props.ts';

export type HeatmapScale = 'sequential' | 'diverging';

type Rgb = readonly [number, number, number];
/** ColorBrewer "Blues" (sequential). */
const SEQUENTIAL: readonly Rgb[] = [
  [247, 251, 255],
  [198, 219, 239],
  [107, 174, 214],
  [33, 113, 181],
  [8, 48, 107],
];
/** ColorBrewer "RdBu": red for negative, near-white at 0, blue for positive. */
const DIVERGING: readonly Rgb[] = [
  [178, 24, 43],
  [239, 138, 98],
  [247, 247, 247],
  [103, 169, 207],
  [33, 102, 172],
];

function ramp(stops: readonly Rgb[], t: number): Rgb {
  const x = Math.min(1, Math.max(0, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const [a, b] = [stops[i], stops[i + 1]];
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
}

const rgb = (c: Rgb) => `rgb(${Math.round(c[0])}, ${Math.round(c[1])}, ${Math.round(c[2])})`;

/** Position of `v` along the scale, 0 .. 1. */
function scaleT(v: number, scale: HeatmapScale, domain: number): number {
  const d = domain > 0 ? domain : 1;
  return scale === 'diverging' ? 0.5 + 0.5 * Math.max(-1, Math.min(1, v / d)) : Math.max(0, Math.min(1, v / d));
}

/** Background and a readable text colour for value `v`. */
export function cellColor(v: number, scale: HeatmapScale, domain: number): { background: string; color: string } {
  if (!Number.isFinite(v)) return { background: '#e5e7eb', color: '#374151' };
  const c = ramp(scale === 'diverging' ? DIVERGING : SEQUENTIAL, scaleT(v, scale, domain));
  const luminance = (0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]) / 255;
  return { background: rgb(c), color: luminance < 0.55 ? '#fff' : '#111827' };
}

/** The scale as a CSS gradient (for legends). */
export function scaleGradient(scale: HeatmapScale): string {
  const stops = scale === 'diverging' ? DIVERGING : SEQUENTIAL;
  return `linear-gradient(to right, ${stops.map(rgb).join(', ')})`;
}

/** `v` with `digits` decimals and a true minus sign. */
export function formatValue(v: number, digits = 3): string {
  if (!Number.isFinite(v)) return String(v);
  const s = v.toFixed(digits);
  return /^-0\.?0*$/.test(s) ? s.slice(1) : s.replace('-', '−');
}

export interface CellDetail {
  row: number;
  col: number;
}

/** Where the pointer or focus is: a cell, or a row label (col -1), or a column label (row -1). */
interface Spot {
  r: number;
  c: number;
}

@customElement('pb-heatmap')
export class PbHeatmap extends LitElement {
  static override styles = css`
    :host {
      display: inline-block;
      max-width: 100%;
      /* Room for the readout under a small grid; fixed, so text never resizes the figure. */
      min-width: min(100%, 26rem);
      vertical-align: top;
      font-size: 0.85rem;
      color: var(--pb-fg, #1f2328);
    }
    figure {
      margin: 0;
    }
    figcaption {
      font-weight: 600;
      margin: 0 0 0.3rem;
    }
    .frame {
      display: grid;
      max-width: 100%;
      /* A grid wider than the page (long prompts) scrolls instead of overflowing. */
      overflow-x: auto;
      grid-template-columns: auto minmax(0, auto);
      grid-template-areas: '. colaxis' 'rowaxis grid';
    }
    .axis {
      color: var(--pb-muted, #6b7280);
      font-size: 0.9em;
      white-space: nowrap;
    }
    .col-axis {
      grid-area: colaxis;
      text-align: center;
      margin-bottom: 0.15rem;
    }
    .row-axis {
      grid-area: rowaxis;
      writing-mode: vertical-rl;
      align-self: center;
      margin-right: 0.2rem;
    }
    .row-axis .arrow {
      text-orientation: upright;
    }
    .grid {
      grid-area: grid;
      display: grid;
      gap: 1px;
      min-width: 0;
    }
    .row {
      display: contents;
    }
    .label {
      font-family: var(--pb-mono, ui-monospace, SFMono-Regular, Menlo, Consolas, monospace);
      font-size: 0.9em;
      white-space: pre;
      overflow: hidden;
      text-overflow: ellipsis;
      border-radius: 2px;
      color: var(--pb-fg, #1f2328);
      outline: none;
    }
    .rlabel {
      text-align: right;
      align-self: center;
      padding: 0.05em 0.35em 0.05em 0.2em;
      max-width: 10em;
    }
    .clabel {
      align-self: end;
      text-align: center;
      padding: 0.1em 0;
      min-width: 0;
    }
    .clabel.vertical {
      writing-mode: vertical-rl;
      transform: rotate(180deg);
      justify-self: center;
      max-height: 7em;
      text-align: left;
      padding: 0.2em 0;
    }
    .label.hl {
      font-weight: 700;
      background: var(--pb-highlight, #fde68a);
    }
    .label:focus-visible {
      outline: 2px solid var(--pb-accent, #1d4ed8);
    }
    .cell {
      position: relative;
      aspect-ratio: 1;
      min-width: 0;
      border-radius: 2px;
      display: flex;
      align-items: center;
      justify-content: center;
      overflow: hidden;
      font-size: 0.85em;
      font-variant-numeric: tabular-nums;
      outline: none;
      transition: opacity 80ms linear;
    }
    .cell.text {
      aspect-ratio: auto;
      flex-direction: column;
      gap: 0.1em;
      min-height: var(--pb-cell-height, 2.1em);
      padding: 0.15em 0.25em;
      white-space: pre-line;
      text-align: center;
      line-height: 1.15;
      font-family: var(--pb-mono, ui-monospace, SFMono-Regular, Menlo, Consolas, monospace);
    }
    .cell.marked {
      font-weight: 700;
      text-decoration: underline;
      text-underline-offset: 2px;
    }
    .cell.masked {
      background: var(--pb-masked, #f3f4f6);
    }
    .cell.interactive {
      cursor: pointer;
    }
    .cell.dim {
      opacity: 0.3;
    }
    .cell.line {
      box-shadow: inset 0 0 0 1px rgba(17, 24, 39, 0.22);
    }
    .cell.hover {
      box-shadow: inset 0 0 0 2px var(--pb-fg, #1f2328);
    }
    .cell.selected::after {
      content: '';
      position: absolute;
      inset: 0;
      border: 2px solid var(--pb-selected, #111827);
      border-radius: 2px;
      background: repeating-linear-gradient(135deg, transparent 0 6px, rgba(17, 24, 39, 0.14) 6px 8px);
      pointer-events: none;
    }
    .cell:focus-visible {
      outline: 2px solid var(--pb-accent, #1d4ed8);
      outline-offset: 1px;
      z-index: 1;
    }
    .badge {
      position: absolute;
      left: 1px;
      right: 1px;
      bottom: 1px;
      z-index: 1;
      font-family: var(--pb-font, system-ui, sans-serif);
      font-size: 0.62rem;
      line-height: 1.1;
      padding: 0 1px;
      border-radius: 2px;
      background: rgba(255, 255, 255, 0.9);
      color: #111827;
      white-space: nowrap;
      overflow: hidden;
      text-overflow: ellipsis;
      text-align: center;
    }
    .cell.text .badge {
      position: static;
      max-width: 100%;
      box-sizing: border-box;
      padding: 0 0.3em;
    }
    .readout {
      /* As wide as the grid, never wider: a long readout must not resize the figure under the pointer. */
      width: 0;
      min-width: 100%;
      min-height: 2.8em;
      margin-top: 0.35rem;
      font-variant-numeric: tabular-nums;
      overflow-wrap: anywhere;
    }
    .readout.hint {
      color: var(--pb-muted, #6b7280);
    }
    .legend {
      display: flex;
      align-items: center;
      gap: 0.4em;
      margin-top: 0.25rem;
      font-size: 0.85em;
      color: var(--pb-muted, #6b7280);
      font-variant-numeric: tabular-nums;
    }
    .ramp {
      width: 7em;
      height: 0.65em;
      border-radius: 2px;
      border: 1px solid rgba(0, 0, 0, 0.12);
    }
  `;

  /** Cell values, row-major [rows, cols]. */
  @property({ attribute: false }) values: ArrayLike<number> = [];
  @property({ type: Number }) rows = 0;
  @property({ type: Number }) cols = 0;
  /** One label per row (layer numbers, token text: pass tokens through `visibleText`), drawn as text. */
  @property({ attribute: false }) rowLabels: readonly string[] = [];
  @property({ attribute: false }) colLabels: readonly string[] = [];
  /** Axis titles. */
  @property({ attribute: 'row-axis' }) rowAxis = '';
  @property({ attribute: 'col-axis' }) colAxis = '';
  /** `sequential` for [0, domain] data, `diverging` for signed data centred at 0. */
  @property() scale: HeatmapScale = 'sequential';
  /** Value at full colour; 0 = 1 for sequential, the largest |value| for diverging. */
  @property({ type: Number }) domain = 0;
  @property() caption = '';
  /** What the values are, for the legend and the readout ("attention", "logit diff"). */
  @property({ attribute: 'value-label' }) valueLabel = 'value';
  /** Decimals in the readout. */
  @property({ type: Number }) digits = 3;
  /** Cells right of the diagonal (col > row) are masked (causal attention). */
  @property({ type: Boolean }) causal = false;
  /** Rows and columns are the same tokens: a label highlights its row and its column. */
  @property({ type: Boolean }) cross = false;
  /** Cells can be activated (click, Enter, Space). */
  @property({ type: Boolean }) interactive = false;
  /** Hide the colour legend. */
  @property({ type: Boolean, attribute: 'no-legend' }) noLegend = false;
  /** A token index to highlight from outside (with `cross`); -1 for none. */
  @property({ type: Number }) highlight = -1;
  /** Cells drawn as selected (e.g. ablated heads), row-major. */
  @property({ attribute: false }) selected: readonly boolean[] = [];
  /** Text drawn in cells, row-major (e.g. top tokens); none by default. */
  @property({ attribute: false }) cellText: readonly (string | undefined)[] = [];
  /** Cells whose text is emphasised (bold, underlined), row-major. */
  @property({ attribute: false }) marked: readonly boolean[] = [];
  /** Small badges on cells, row-major (e.g. head roles). */
  @property({ attribute: false }) badges: readonly (string | undefined)[] = [];
  /** The readout for a cell; default "row · column: value". */
  @property({ attribute: false }) describe: ((row: number, col: number) => string) | undefined = undefined;
  /** The readout for a label with `cross`. */
  @property({ attribute: false }) describeLabel: ((index: number) => string) | undefined = undefined;

  /** Under the pointer. */
  @state() private pointer: Spot | null = null;
  /** Under the keyboard focus. */
  @state() private focused: Spot | null = null;
  /** The grid's one tab stop. */
  @state() private active: Spot = { r: 0, c: 0 };

  /** The largest |value|: the diverging scale's default domain. */
  get effectiveDomain(): number {
    if (this.domain > 0) return this.domain;
    if (this.scale === 'sequential') return 1;
    let m = 0;
    for (let i = 0; i < this.rows * this.cols; i++) {
      const v = Math.abs(this.values[i]);
      if (Number.isFinite(v) && v > m) m = v;
    }
    return m || 1;
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    if (changed.has('rows') || changed.has('cols')) {
      const { r, c } = this.active;
      this.active = { r: Math.min(r, Math.max(0, this.rows - 1)), c: Math.min(c, Math.max(0, this.cols - 1)) };
    }
  }

  private rowLabel(r: number): string {
    return this.rowLabels[r] ?? String(r);
  }

  private colLabel(c: number): string {
    return this.colLabels[c] ?? String(c);
  }

  private masked(r: number, c: number): boolean {
    return this.causal && c > r;
  }

  /** The readout of a cell. */
  describeCell(r: number, c: number): string {
    if (this.describe) return this.describe(r, c);
    const where = `${this.rowAxis ? this.rowAxis + ' ' : ''}${this.rowLabel(r)} · ${this.colAxis ? this.colAxis + ' ' : ''}${this.colLabel(c)}`;
    if (this.masked(r, c)) return `${where}: masked`;
    return `${where}: ${this.valueLabel} ${formatValue(this.values[r * this.cols + c], this.digits)}`;
  }

  private describeSpot(s: Spot): string {
    if (s.r >= 0 && s.c >= 0) return this.describeCell(s.r, s.c);
    const i = s.r >= 0 ? s.r : s.c;
    if (this.cross && this.describeLabel) return this.describeLabel(i);
    return s.r >= 0 ? `${this.rowAxis} ${this.rowLabel(i)}` : `${this.colAxis} ${this.colLabel(i)}`;
  }

  private spotOf(e: Event): Spot | null {
    const el = (e.target as Element | null)?.closest?.('[data-r]') as HTMLElement | null;
    if (!el) return null;
    return { r: Number(el.dataset.r), c: Number(el.dataset.c) };
  }

  private emitHover(s: Spot | null): void {
    let detail: CellDetail = { row: -1, col: -1 };
    if (s && s.r >= 0 && s.c >= 0) detail = { row: s.r, col: s.c };
    else if (s && this.cross) detail = { row: Math.max(s.r, s.c), col: Math.max(s.r, s.c) };
    else if (s) detail = { row: s.r, col: s.c };
    this.dispatchEvent(new CustomEvent<CellDetail>('pb-cell-hover', { detail, bubbles: true, composed: true }));
  }

  private onPointerOver(e: Event): void {
    const s = this.spotOf(e);
    if (s?.r === this.pointer?.r && s?.c === this.pointer?.c) return;
    this.pointer = s;
    this.emitHover(s ?? this.focused);
  }

  private onPointerLeave(): void {
    this.pointer = null;
    this.emitHover(this.focused);
  }

  private onFocusIn(e: FocusEvent): void {
    const s = this.spotOf(e);
    if (!s) return;
    this.focused = s;
    this.active = s;
    this.emitHover(s);
  }

  private onFocusOut(e: FocusEvent): void {
    if (this.renderRoot.contains(e.relatedTarget as Node | null)) return;
    this.focused = null;
    this.emitHover(this.pointer);
  }

  private activate(r: number, c: number): void {
    if (!this.interactive || r < 0 || c < 0) return;
    this.dispatchEvent(new CustomEvent<CellDetail>('pb-cell-activate', { detail: { row: r, col: c }, bubbles: true, composed: true }));
  }

  private onClick(e: Event): void {
    const s = this.spotOf(e);
    if (s && s.r >= 0 && s.c >= 0) {
      this.active = s;
      this.activate(s.r, s.c);
    }
  }

  private async onKeyDown(e: KeyboardEvent): Promise<void> {
    let { r, c } = this.active;
    const minCol = this.cross ? -1 : 0; // with `cross`, row labels are tokens a reader can focus
    switch (e.key) {
      case 'ArrowUp':
        r--;
        break;
      case 'ArrowDown':
        r++;
        break;
      case 'ArrowLeft':
        c--;
        break;
      case 'ArrowRight':
        c++;
        break;
      case 'Home':
        c = minCol;
        break;
      case 'End':
        c = this.cols - 1;
        break;
      case 'PageUp':
        r = 0;
        break;
      case 'PageDown':
        r = this.rows - 1;
        break;
      case 'Enter':
      case ' ':
        if (this.interactive) {
          e.preventDefault();
          this.activate(r, c);
        }
        return;
      default:
        return;
    }
    e.preventDefault();
    this.active = { r: Math.max(0, Math.min(this.rows - 1, r)), c: Math.max(minCol, Math.min(this.cols - 1, c)) };
    await this.updateComplete;
    (this.renderRoot.querySelector(`[data-r="${this.active.r}"][data-c="${this.active.c}"]`) as HTMLElement | null)?.focus();
  }

  override render() {
    const R = this.rows;
    const C = this.cols;
    const domain = this.effectiveDomain;
    const spot = this.pointer ?? this.focused;
    // Highlighted row and column; with `cross`, a token's row and column, and label tints.
    let hr = -1;
    let hc = -1;
    let token = -1;
    if (spot && spot.r >= 0 && spot.c >= 0) [hr, hc] = [spot.r, spot.c];
    else if (spot && this.cross) token = hr = hc = Math.max(spot.r, spot.c);
    else if (spot) [hr, hc] = [spot.r, spot.c];
    else if (this.cross && this.highlight >= 0) token = hr = hc = this.highlight;
    const dimming = this.cross && (hr >= 0 || hc >= 0);
    const verticalCols = this.colLabels.some((l) => [...l].length > 3);
    const withText = this.cellText.length > 0;
    const gridStyle = {
      gridTemplateColumns: `max-content repeat(${C}, minmax(var(--pb-cell-min, ${withText ? '2.6rem' : '0.9rem'}), var(--pb-cell-max, ${withText ? '4.5rem' : '1.9rem'})))`,
    };
    const tint = (v: number) => (token >= 0 ? cellColor(v, this.scale, domain) : {});
    const tabStop = (r: number, c: number) => (this.active.r === r && this.active.c === c ? 0 : -1);

    const header = html`<div class="row" role="row">
      <div role="columnheader" class="corner"></div>
      ${Array.from({ length: C }, (_, c) => {
        const text = this.colLabel(c);
        return html`<div
          role="columnheader"
          part="label"
          class="label clabel ${verticalCols ? 'vertical' : ''} ${c === hc ? 'hl' : ''}"
          data-r="-1"
          data-c=${c}
          title=${text}
          style=${cssProps(token >= 0 && token < R ? tint(this.values[token * C + c]) : {})}
        >${text}</div>`;
      })}
    </div>`;

    const body = Array.from({ length: R }, (_, r) => {
      const text = this.rowLabel(r);
      return html`<div class="row" role="row">
        <div
          role="rowheader"
          part="label"
          class="label rlabel ${r === hr ? 'hl' : ''}"
          data-r=${r}
          data-c="-1"
          title=${text}
          tabindex=${this.cross ? tabStop(r, -1) : nothing}
          style=${cssProps(token >= 0 && token < C ? tint(this.values[r * C + token]) : {})}
        >${text}</div>
        ${Array.from({ length: C }, (_, c) => {
          const i = r * C + c;
          const v = this.values[i];
          const masked = this.masked(r, c);
          const colors = masked ? {} : cellColor(v, this.scale, domain);
          const sel = this.selected[i] === true;
          const badge = this.badges[i];
          const classes = [
            'cell',
            masked ? 'masked' : '',
            withText ? 'text' : '',
            this.interactive ? 'interactive' : '',
            sel ? 'selected' : '',
            this.marked[i] ? 'marked' : '',
            dimming && r !== hr && c !== hc ? 'dim' : '',
            dimming && (r === hr || c === hc) && !masked ? 'line' : '',
            spot?.r === r && spot?.c === c ? 'hover' : '',
          ].join(' ');
          return html`<div
            role="gridcell"
            part="cell"
            class=${classes}
            data-r=${r}
            data-c=${c}
            data-value=${String(v)}
            tabindex=${tabStop(r, c)}
            aria-label=${this.describeCell(r, c)}
            aria-selected=${this.interactive ? String(sel) : nothing}
            style=${cssProps(colors)}
          >${withText && !masked ? (this.cellText[i] ?? '') : nothing}${badge
            ? html`<span class="badge" part="badge">${badge}</span>`
            : nothing}</div>`;
        })}
      </div>`;
    });

    const readout = spot ? this.describeSpot(spot) : '';
    const d = formatValue(domain, domain >= 10 ? 1 : 2);
    return html`<figure part="figure">
      ${this.caption ? html`<figcaption part="caption">${this.caption}</figcaption>` : nothing}
      <div class="frame">
        ${this.colAxis ? html`<div class="axis col-axis" part="axis">${this.colAxis} →</div>` : nothing}
        ${this.rowAxis ? html`<div class="axis row-axis" part="axis">${this.rowAxis} <span class="arrow">↓</span></div>` : nothing}
        <div
          class="grid"
          part="grid"
          role="grid"
          aria-label=${this.caption || `${this.valueLabel} by ${this.rowAxis} and ${this.colAxis}`}
          aria-multiselectable=${this.interactive ? 'true' : nothing}
          aria-rowcount=${R + 1}
          aria-colcount=${C + 1}
          style=${cssProps(gridStyle)}
          @mouseover=${this.onPointerOver}
          @mouseleave=${this.onPointerLeave}
          @focusin=${this.onFocusIn}
          @focusout=${this.onFocusOut}
          @click=${this.onClick}
          @keydown=${this.onKeyDown}
        >
          ${header}${body}
        </div>
      </div>
      <div class="readout ${readout ? '' : 'hint'}" part="readout" aria-live="polite">
        ${readout || (this.interactive ? 'Hover or focus a cell to read it; click or press Enter to toggle it.' : 'Hover or focus a cell to read its value.')}
      </div>
      ${this.noLegend
        ? nothing
        : html`<div class="legend" part="legend">
            <span>${this.scale === 'diverging' ? '−' + d.replace('−', '') : '0'}</span>
            <span class="ramp" style=${cssProps({ backgroundImage: scaleGradient(this.scale) })}></span>
            <span>${this.scale === 'diverging' ? '+' + d.replace('−', '') : d}</span>
            <span>${this.valueLabel}${this.scale === 'diverging' ? ' (0 = white)' : ''}</span>
          </div>`}
    </figure>`;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'pb-heatmap': PbHeatmap;
  }
  interface HTMLElementEventMap {
    'pb-cell-hover': CustomEvent<CellDetail>;
    'pb-cell-activate': CustomEvent<CellDetail>;
  }
}
