/**
 * `<pb-heatmap>`: the drawing every figure shares, a grid of cells coloured from a typed array
 * with labelled rows and columns. It draws; it computes nothing. The cells are one `<canvas>`
 * (a 128 × 128 attention pattern is one draw call per cell, not 16,384 elements); the labels are
 * text elements around it, cut to fit with the full text in their tooltip and in the readout.
 *
 * ```html
 * <pb-heatmap rows="17" cols="17" scale="sequential" row-axis="query" col-axis="key" causal cross></pb-heatmap>
 * ```
 * (`values`, `rowLabels` and `colLabels` are properties.) Scales (color-scale.ts): `sequential`
 * for [0, `domain`], `diverging` centred on `center` ("no effect"), blue in the direction
 * `better` names. The legend explains the scale and every mark drawn: hatched cells (`selected`,
 * named by `selected-label`), masked cells (`causal`), underlined text (`marked`, `marked-label`)
 * and badges (`badgeLegend`). The value under the pointer or the keyboard focus is written out
 * below the grid. The cells are one tab stop, an ARIA grid: arrow keys, Home/End and
 * PageUp/PageDown move a cursor, whose cell is the grid's `aria-activedescendant` (one `gridcell`
 * element over the canvas, named with the cell's readout, `aria-selected` when hatched), so a
 * screen reader announces each cell it reaches; with `interactive`, Enter or Space (or a click)
 * activates a cell. A grid wider than its box scrolls, with a hint. Labels are always text, so a
 * label `<img src=x onerror=alert(1)>` reads literally.
 *
 * @fires pb-cell-hover - `{ row, col }` of the cell (or, with `cross`, the label) under the pointer or focus; -1 when none.
 * @fires pb-cell-activate - `{ row, col }` when an `interactive` cell is clicked or gets Enter/Space.
 * @csspart figure - The whole figure.
 * @csspart caption - The caption above the grid.
 * @csspart grid - The grid of cells and labels.
 * @csspart cells - The canvas the cells are drawn on.
 * @csspart grid-cells - The focusable ARIA grid around the canvas.
 * @csspart cursor - The keyboard cursor's cell (the grid's active descendant).
 * @csspart label - Each row and column label.
 * @csspart axis - The axis titles.
 * @csspart readout - The line with the focused cell's value.
 * @csspart legend - The colour scale and the marks.
 * @csspart scroll-hint - "Scroll sideways" when the grid is wider than its box.
 * @cssprop --pb-cell-min - Smallest cell width (default 0.9rem; 2.6rem with text in cells).
 * @cssprop --pb-cell-max - Largest cell width (default 1.9rem; 4.5rem with text in cells).
 * @cssprop --pb-cell-height - Height of cells with text (default 2.1em).
 */
import { LitElement, css, html, nothing, type PropertyValues } from 'lit';
import { customElement, property, state } from 'lit/decorators.js';
import { ifDefined } from 'lit/directives/if-defined.js';
import { formatValue, scaleGradient, schemeOf, type Better, type HeatmapScale, type Scheme } from './color-scale.ts';
import { cssProps } from './css-props.ts';
import { CanvasPen, SvgPen, paintCells, paintFigure, type HeatmapData } from './heatmap-paint.ts';
import { palette } from './theme.ts';

export { cellColor, scaleGradient, formatValue, type HeatmapScale } from './color-scale.ts';

export interface CellDetail {
  row: number;
  col: number;
}

/** Where the pointer or focus is: a cell, or a row label (col -1), or a column label (row -1). */
interface Spot {
  r: number;
  c: number;
}

/** Characters kept in a label before it is cut (the full text is in its tooltip and the readout). */
const ROW_LABEL_CHARS = 14;
const COL_LABEL_CHARS = 10;
const GAP = 1;

const cut = (s: string, n: number) => ([...s].length > n ? [...s].slice(0, n - 1).join('') + '…' : s);

@customElement('pb-heatmap')
export class PbHeatmap extends LitElement {
  static override styles = [
    palette,
    css`
      :host {
        /* As wide as the container, whatever the content: the cell size follows the width, so a width that followed the cells would never settle. */
        display: block;
        width: 100%;
        max-width: 100%;
        vertical-align: top;
        font-size: 0.85rem;
        color: var(--_fg);
      }
      figure {
        margin: 0;
        min-width: 0;
      }
      figcaption {
        font-weight: 600;
        margin: 0 0 0.3rem;
      }
      .scroll {
        max-width: 100%;
        overflow-x: auto;
        overscroll-behavior-x: contain;
      }
      .frame {
        display: inline-grid;
        grid-template-columns: auto auto;
        grid-template-areas: '. colaxis' 'rowaxis grid';
      }
      .axis {
        color: var(--_muted);
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
        gap: ${GAP}px;
      }
      .label {
        font-family: var(--pb-mono, ui-monospace, SFMono-Regular, Menlo, Consolas, monospace);
        font-size: 0.9em;
        white-space: pre;
        overflow: hidden;
        border-radius: 2px;
        color: var(--_fg);
        outline: none;
      }
      .rlabel {
        grid-column: 1;
        text-align: right;
        align-self: center;
        padding: 0 0.35em 0 0.2em;
      }
      .clabel {
        grid-row: 1;
        align-self: end;
        text-align: center;
        min-width: 0;
      }
      .clabel.vertical {
        writing-mode: vertical-rl;
        transform: rotate(180deg);
        justify-self: center;
        text-align: left;
        padding: 0.2em 0;
      }
      .label.hl {
        font-weight: 700;
        background: var(--_highlight);
      }
      .cells {
        position: relative;
        outline: none;
      }
      canvas {
        display: block;
        touch-action: pan-x pan-y;
      }
      .cells.interactive {
        cursor: pointer;
      }
      .cells:focus-visible {
        outline: 2px solid var(--_accent);
        outline-offset: 2px;
      }
      /* The cursor's cell: its text is for assistive tools (the canvas draws the cell), its box marks where it is. */
      .cursor {
        position: absolute;
        box-sizing: border-box;
        overflow: hidden;
        color: transparent;
        font-size: 1px;
        white-space: nowrap;
        pointer-events: none;
      }
      .cells:focus-visible .cursor {
        outline: 2px solid var(--_accent);
        outline-offset: 1px;
      }
      .probe {
        position: absolute;
        visibility: hidden;
        height: 0;
      }
      .readout {
        min-height: 2.8em;
        margin-top: 0.35rem;
        font-variant-numeric: tabular-nums;
        overflow-wrap: anywhere;
      }
      .readout.hint,
      .scroll-hint {
        color: var(--_muted);
      }
      .scroll-hint {
        font-size: 0.85em;
      }
      .legend {
        display: flex;
        flex-wrap: wrap;
        align-items: center;
        gap: 0.3rem 1rem;
        margin-top: 0.25rem;
        font-size: 0.85em;
        color: var(--_muted);
        font-variant-numeric: tabular-nums;
      }
      .legend > span {
        display: inline-flex;
        align-items: center;
        gap: 0.35em;
      }
      .ramp {
        width: 7em;
        height: 0.7em;
        border-radius: 2px;
        border: 1px solid var(--_border-light);
      }
      .swatch {
        display: inline-block;
        width: 1em;
        height: 1em;
        border-radius: 2px;
        border: 1px solid var(--_border);
      }
      .swatch.hatched {
        border: 2px solid var(--_fg);
        background: repeating-linear-gradient(135deg, transparent 0 3px, var(--_muted) 3px 4.5px);
      }
      .swatch.masked {
        background: var(--pb-masked, var(--_panel));
      }
      .under {
        text-decoration: underline;
        font-weight: 700;
        color: var(--_fg);
      }
      .badge-key {
        font-size: 0.85em;
        padding: 0 0.3em;
        border-radius: 2px;
        background: #ffffffe0;
        color: #111827;
        border: 1px solid var(--_border);
      }
    `,
  ];

  /** Cell values, row-major [rows, cols]. (The typed arrays are listed for lit-analyzer, whose type check does not see that they are ArrayLike.) */
  @property({ attribute: false }) values: ArrayLike<number> | Float32Array | Float64Array = [];
  @property({ type: Number }) rows = 0;
  @property({ type: Number }) cols = 0;
  /** One label per row (a position and its token: pass tokens through `visibleText`), drawn as text. */
  @property({ attribute: false }) rowLabels: readonly string[] = [];
  @property({ attribute: false }) colLabels: readonly string[] = [];
  /** Axis titles. */
  @property({ attribute: 'row-axis' }) rowAxis = '';
  @property({ attribute: 'col-axis' }) colAxis = '';
  /** `sequential` for [0, domain] data, `diverging` for signed data centred at `center`. */
  @property() scale: HeatmapScale = 'sequential';
  /** Value at full colour; 0 = 1 for sequential, the largest |value − center| for diverging. */
  @property({ type: Number }) domain = 0;
  /** The value that means "no effect" (diverging): drawn in the background's grey. */
  @property({ type: Number }) center = 0;
  /** Which values are better (diverging): blue is drawn in that direction. */
  @property() better: Better = 'higher';
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
  /** Hide the colour legend (the marks' legend stays). */
  @property({ type: Boolean, attribute: 'no-legend' }) noLegend = false;
  /** A token index to highlight from outside (with `cross`); -1 for none. */
  @property({ type: Number }) highlight = -1;
  /** Cells drawn hatched (e.g. ablated heads), row-major. */
  @property({ attribute: false }) selected: readonly boolean[] = [];
  /** What hatched cells mean, for the legend. */
  @property({ attribute: 'selected-label' }) selectedLabel = 'selected';
  /** Text drawn in cells, row-major (e.g. top tokens); none by default. */
  @property({ attribute: false }) cellText: readonly (string | undefined)[] = [];
  /** Cells whose text is emphasised (bold, underlined), row-major. */
  @property({ attribute: false }) marked: readonly boolean[] = [];
  /** What underlined text means, for the legend. */
  @property({ attribute: 'marked-label' }) markedLabel = 'marked';
  /** Small badges on cells, row-major (e.g. head roles). */
  @property({ attribute: false }) badges: readonly (string | undefined)[] = [];
  /** What each badge means, for the legend: badge → meaning. */
  @property({ attribute: false }) badgeLegend: Record<string, string> = {};
  /** The readout for a cell; default "row · column: value". */
  @property({ attribute: false }) describe: ((row: number, col: number) => string) | undefined = undefined;
  /** The readout for a label with `cross`. */
  @property({ attribute: false }) describeLabel: ((index: number) => string) | undefined = undefined;

  /** Under the pointer. */
  @state() private pointer: Spot | null = null;
  /** Under the keyboard focus. */
  @state() private focused: Spot | null = null;
  /** The canvas' keyboard position. */
  @state() private active: Spot = { r: 0, c: 0 };
  /** Cell width and height in CSS px, from the box's width (ResizeObserver). */
  @state() private cell = { w: 20, h: 20 };
  @state() private scrollable = false;
  @state() private scheme: Scheme = 'light';

  private resize: ResizeObserver | null = null;
  private readonly media = typeof matchMedia === 'function' ? matchMedia('(prefers-color-scheme: dark)') : null;
  private readonly onScheme = () => this.measure();

  override connectedCallback(): void {
    super.connectedCallback();
    this.resize = new ResizeObserver(() => this.measure());
    this.resize.observe(this);
    this.media?.addEventListener('change', this.onScheme);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.resize?.disconnect();
    this.media?.removeEventListener('change', this.onScheme);
  }

  /** The largest |value − center|: the diverging scale's default domain. */
  get effectiveDomain(): number {
    if (this.domain > 0) return this.domain;
    if (this.scale === 'sequential') return 1;
    let m = 0;
    for (let i = 0; i < this.rows * this.cols; i++) {
      const v = Math.abs(this.values[i] - this.center);
      if (Number.isFinite(v) && v > m) m = v;
    }
    return m || 1;
  }

  private get withText(): boolean {
    return this.cellText.length > 0;
  }

  /** Cell size from the CSS limits and the room there is; the grid scrolls below the smallest. */
  private measure(): void {
    const root = this.renderRoot as ShadowRoot | undefined;
    const min = root?.querySelector<HTMLElement>('.probe-min')?.getBoundingClientRect().width || (this.withText ? 42 : 14);
    const max = root?.querySelector<HTMLElement>('.probe-max')?.getBoundingClientRect().width || (this.withText ? 72 : 30);
    const tall = root?.querySelector<HTMLElement>('.probe-h')?.getBoundingClientRect().width || 34;
    const rowLabel = root?.querySelector<HTMLElement>('.rlabel')?.getBoundingClientRect().width ?? 30;
    const axis = this.rowAxis ? 20 : 0;
    const room = this.getBoundingClientRect().width - rowLabel - axis - 4;
    const w = Math.max(min, Math.min(max, (room - GAP * (this.cols - 1)) / Math.max(1, this.cols)));
    const next = { w: Math.floor(w), h: Math.floor(this.withText ? Math.max(tall, 20) : w) };
    if (next.w !== this.cell.w || next.h !== this.cell.h) this.cell = next;
    const bg = getComputedStyle(this).getPropertyValue('--_bg').trim();
    const probe = document.createElement('span');
    probe.style.color = bg || '#fff';
    this.renderRoot.appendChild(probe);
    const scheme = schemeOf(getComputedStyle(probe).color);
    probe.remove();
    if (scheme !== this.scheme) this.scheme = scheme;
    const scroller = root?.querySelector<HTMLElement>('.scroll');
    const scrollable = !!scroller && scroller.scrollWidth > scroller.clientWidth + 1;
    if (scrollable !== this.scrollable) this.scrollable = scrollable;
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    if (changed.has('rows') || changed.has('cols')) {
      const { r, c } = this.active;
      this.active = { r: Math.min(r, Math.max(0, this.rows - 1)), c: Math.min(c, Math.max(0, this.cols - 1)) };
    }
  }

  protected override firstUpdated(): void {
    this.measure();
  }

  protected override updated(changed: PropertyValues<this>): void {
    if (changed.has('cols') || changed.has('rows') || changed.has('rowLabels') || changed.has('cellText')) queueMicrotask(() => this.measure());
    this.draw();
  }

  /** What is drawn, as data (for painting and export). */
  data(): HeatmapData {
    const cs = getComputedStyle(this);
    const v = (name: string, fallback: string) => cs.getPropertyValue(name).trim() || fallback;
    const dark = this.scheme === 'dark';
    return {
      values: this.values,
      rows: this.rows,
      cols: this.cols,
      rowLabels: Array.from({ length: this.rows }, (_, r) => this.rowLabel(r)),
      colLabels: Array.from({ length: this.cols }, (_, c) => this.colLabel(c)),
      rowAxis: this.rowAxis,
      colAxis: this.colAxis,
      caption: this.caption,
      scale: this.scale,
      domain: this.effectiveDomain,
      center: this.center,
      better: this.better,
      causal: this.causal,
      selected: this.selected,
      cellText: this.cellText,
      marked: this.marked,
      badges: this.badges,
      valueLabel: this.valueLabel,
      scheme: this.scheme,
      fg: v('--_fg', dark ? '#e6edf3' : '#1f2328'),
      muted: v('--_muted', dark ? '#9da7b3' : '#59636e'),
      background: v('--_bg', dark ? '#0d1117' : '#ffffff'),
      masked: cs.getPropertyValue('--pb-masked').trim() || v('--_panel', dark ? '#161b22' : '#f3f4f6'),
    };
  }

  private draw(): void {
    const canvas = this.renderRoot.querySelector('canvas');
    if (!canvas) return;
    const { w, h } = this.cell;
    const W = this.cols * (w + GAP) - GAP;
    const H = this.rows * (h + GAP) - GAP;
    const dpr = globalThis.devicePixelRatio || 1;
    canvas.width = Math.max(1, Math.round(W * dpr));
    canvas.height = Math.max(1, Math.round(H * dpr));
    canvas.style.width = `${W}px`;
    canvas.style.height = `${H}px`;
    const ctx = canvas.getContext('2d');
    if (!ctx) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, H);
    const d = this.data();
    const pen = new CanvasPen(ctx);
    paintCells(pen, d, 0, 0, w, h, GAP);
    // Hover: with `cross`, fade what is outside the token's row and column; outline the cell.
    const spot = this.pointer ?? this.focused;
    const [hr, hc] = this.highlighted();
    if (this.cross && (hr >= 0 || hc >= 0)) {
      const fade = this.scheme === 'dark' ? 'rgba(13,17,23,0.7)' : 'rgba(255,255,255,0.7)';
      for (let r = 0; r < this.rows; r++) {
        for (let c = 0; c < this.cols; c++) if (r !== hr && c !== hc) pen.rect(c * (w + GAP), r * (h + GAP), w, h, fade);
      }
    }
    if (spot && spot.r >= 0 && spot.c >= 0) pen.stroke(spot.c * (w + GAP), spot.r * (h + GAP), w, h, d.fg, 2);
  }

  /** The row and column to highlight: the cell under the pointer, or a token (`cross`). */
  private highlighted(): [number, number] {
    const spot = this.pointer ?? this.focused;
    if (spot && spot.r >= 0 && spot.c >= 0) return [spot.r, spot.c];
    if (spot && this.cross) return [Math.max(spot.r, spot.c), Math.max(spot.r, spot.c)];
    if (spot) return [spot.r, spot.c];
    if (this.cross && this.highlight >= 0) return [this.highlight, this.highlight];
    return [-1, -1];
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

  /** What a cell holds, as drawn (for tests and assistive tools). */
  cellAt(r: number, c: number): { value: number; selected: boolean; text: string; badge: string | undefined; masked: boolean; marked: boolean } {
    const i = r * this.cols + c;
    return { value: this.values[i], selected: this.selected[i] === true, text: this.cellText[i] ?? '', badge: this.badges[i], masked: this.masked(r, c), marked: !!this.marked[i] };
  }

  /** The centre of a cell in viewport coordinates (for pointer events). */
  cellCenter(r: number, c: number): { x: number; y: number } {
    const box = this.renderRoot.querySelector('canvas')!.getBoundingClientRect();
    return { x: box.left + c * (this.cell.w + GAP) + this.cell.w / 2, y: box.top + r * (this.cell.h + GAP) + this.cell.h / 2 };
  }

  /** The figure as an SVG document (caption, labels, cells, legend), as drawn. */
  toSvg(legend: readonly string[] = this.legendLines()): string {
    const measurer = new CanvasPen(document.createElement('canvas').getContext('2d')!);
    const pen = new SvgPen(measurer);
    const d = this.data();
    const size = paintFigure(pen, d, this.cell.w, this.cell.h, legend);
    return pen.svg(size.width, size.height, d.background);
  }

  /** The figure's size as exported, in CSS px; with `ctx`, it is also painted there (at the context's origin). */
  paintExport(ctx: CanvasRenderingContext2D | null, legend: readonly string[] = this.legendLines()): { width: number; height: number } {
    const d = this.data();
    if (!ctx) return paintFigure(new SvgPen(new CanvasPen(document.createElement('canvas').getContext('2d')!)), d, this.cell.w, this.cell.h, legend);
    return paintFigure(new CanvasPen(ctx), d, this.cell.w, this.cell.h, legend);
  }

  /** The figure as a PNG (twice the CSS size), as drawn. */
  toPng(legend: readonly string[] = this.legendLines()): Promise<Blob> {
    return pngOf([this], legend);
  }

  /** The marks' legend as lines of text (for export). */
  legendLines(): string[] {
    const out: string[] = [];
    if (this.selected.some(Boolean)) out.push(`hatched, outlined: ${this.selectedLabel}`);
    if (this.causal) out.push('grey above the diagonal: masked (a token cannot attend to later ones)');
    if (this.marked.some(Boolean)) out.push(`bold underlined: ${this.markedLabel}`);
    for (const [b, meaning] of Object.entries(this.badgeLegend)) if (this.badges.includes(b)) out.push(`${b}: ${meaning}`);
    return out;
  }

  private describeSpot(s: Spot): string {
    if (s.r >= 0 && s.c >= 0) return this.describeCell(s.r, s.c);
    const i = s.r >= 0 ? s.r : s.c;
    if (this.cross && this.describeLabel) return this.describeLabel(i);
    return s.r >= 0 ? `${this.rowAxis} ${this.rowLabel(i)}` : `${this.colAxis} ${this.colLabel(i)}`;
  }

  private spotOfCanvas(e: MouseEvent): Spot | null {
    const canvas = this.renderRoot.querySelector('canvas');
    if (!canvas) return null;
    const box = canvas.getBoundingClientRect();
    const c = Math.floor((e.clientX - box.left) / (this.cell.w + GAP));
    const r = Math.floor((e.clientY - box.top) / (this.cell.h + GAP));
    return r >= 0 && r < this.rows && c >= 0 && c < this.cols ? { r, c } : null;
  }

  private emitHover(s: Spot | null): void {
    let detail: CellDetail = { row: -1, col: -1 };
    if (s && s.r >= 0 && s.c >= 0) detail = { row: s.r, col: s.c };
    else if (s && this.cross) detail = { row: Math.max(s.r, s.c), col: Math.max(s.r, s.c) };
    else if (s) detail = { row: s.r, col: s.c };
    this.dispatchEvent(new CustomEvent<CellDetail>('pb-cell-hover', { detail, bubbles: true, composed: true }));
  }

  private setPointer(s: Spot | null): void {
    if (s?.r === this.pointer?.r && s?.c === this.pointer?.c) return;
    this.pointer = s;
    this.emitHover(s ?? this.focused);
  }

  private onLabelOver(e: Event): void {
    const el = (e.target as Element | null)?.closest?.('[data-r]') as HTMLElement | null;
    if (el) this.setPointer({ r: Number(el.dataset.r), c: Number(el.dataset.c) });
  }

  private activate(r: number, c: number): void {
    if (!this.interactive || r < 0 || c < 0 || this.masked(r, c)) return;
    this.dispatchEvent(new CustomEvent<CellDetail>('pb-cell-activate', { detail: { row: r, col: c }, bubbles: true, composed: true }));
  }

  private onClick(e: MouseEvent): void {
    const s = this.spotOfCanvas(e);
    if (!s) return;
    this.active = s;
    this.activate(s.r, s.c);
  }

  private onKeyDown(e: KeyboardEvent): void {
    let { r, c } = this.active;
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
        c = 0;
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
    this.active = { r: Math.max(0, Math.min(this.rows - 1, r)), c: Math.max(0, Math.min(this.cols - 1, c)) };
    this.focused = this.active;
    this.emitHover(this.active);
  }

  private renderLegend() {
    const d = formatValue(this.effectiveDomain, this.effectiveDomain >= 10 ? 1 : 2).replace('−', '');
    const diverging = this.scale === 'diverging';
    const items = [];
    if (!this.noLegend) {
      const [low, high] = diverging ? (this.better === 'lower' ? [`+${d}`, `−${d}`] : [`−${d}`, `+${d}`]) : ['0', d];
      items.push(html`<span class="scale"
        >${this.valueLabel}: ${low}<span class="ramp" style=${cssProps({ backgroundImage: scaleGradient(this.scale, this.scheme) })}></span>${high}${
          diverging ? html` (relative to ${formatValue(this.center, 2)}, no effect: grey; blue: ${this.better} is better)` : nothing
        }</span
      >`);
    }
    if (this.selected.some(Boolean)) items.push(html`<span><span class="swatch hatched"></span>${this.selectedLabel}</span>`);
    if (this.causal) items.push(html`<span><span class="swatch masked"></span>masked: a token cannot attend to later ones</span>`);
    if (this.marked.some(Boolean)) items.push(html`<span><span class="under">abc</span>${this.markedLabel}</span>`);
    for (const [b, meaning] of Object.entries(this.badgeLegend)) {
      if (this.badges.includes(b)) items.push(html`<span><span class="badge-key">${b}</span>${meaning}</span>`);
    }
    return items.length ? html`<div class="legend" part="legend">${items}</div>` : nothing;
  }

  override render() {
    const R = this.rows;
    const C = this.cols;
    const [hr, hc] = this.highlighted();
    const verticalCols = this.colLabels.some((l) => [...l].length > 3);
    const { w, h } = this.cell;
    const gridStyle = { gridTemplateColumns: `max-content repeat(${C}, ${w}px)`, gridTemplateRows: `auto repeat(${R}, ${h}px)` };
    const spot = this.pointer ?? this.focused;
    const readout = spot ? this.describeSpot(spot) : '';
    const withText = this.withText;
    // The keyboard cursor: one gridcell, the grid's active descendant (its id changes with it, so it is announced).
    const { r: ar, c: ac } = this.active;
    const cursorId = `cell-${ar}-${ac}`;
    return html`<figure part="figure">
      ${this.caption ? html`<figcaption part="caption">${this.caption}</figcaption>` : nothing}
      <span class="probe probe-min" style=${cssProps({ width: `var(--pb-cell-min, ${withText ? '2.6rem' : '0.9rem'})` })}></span>
      <span class="probe probe-max" style=${cssProps({ width: `var(--pb-cell-max, ${withText ? '4.5rem' : '1.9rem'})` })}></span>
      <span class="probe probe-h" style=${cssProps({ width: 'var(--pb-cell-height, 2.1em)' })}></span>
      <div class="scroll" @scroll=${() => this.measure()}>
        <div class="frame">
          ${this.colAxis ? html`<div class="axis col-axis" part="axis">${this.colAxis} →</div>` : nothing}
          ${this.rowAxis ? html`<div class="axis row-axis" part="axis">${this.rowAxis} <span class="arrow">↓</span></div>` : nothing}
          <div class="grid" part="grid" style=${cssProps(gridStyle)} @mouseover=${this.onLabelOver} @mouseleave=${() => this.setPointer(null)}>
            ${Array.from({ length: C }, (_, c) => {
              const text = this.colLabel(c);
              return html`<div
                part="label"
                class="label clabel ${verticalCols ? 'vertical' : ''} ${c === hc ? 'hl' : ''}"
                data-r="-1"
                data-c=${c}
                title=${text}
                style=${cssProps({ gridColumn: String(c + 2), maxHeight: verticalCols ? '7.5em' : null })}
              >${cut(text, verticalCols ? COL_LABEL_CHARS : 6)}</div>`;
            })}
            ${Array.from({ length: R }, (_, r) => {
              const text = this.rowLabel(r);
              // No whitespace around the text: labels are white-space: pre.
              return html`<div part="label" class="label rlabel ${r === hr ? 'hl' : ''}" data-r=${r} data-c="-1" title=${text} style=${cssProps({ gridRow: String(r + 2) })}>${cut(text, ROW_LABEL_CHARS)}</div>`;
            })}
            <div
              part="grid-cells"
              class="cells ${this.interactive ? 'interactive' : ''}"
              tabindex="0"
              role="grid"
              aria-label=${`${this.caption || `${this.valueLabel} by ${this.rowAxis} and ${this.colAxis}`}: ${R} × ${C} cells; arrow keys move between them${this.interactive ? ', Enter toggles one' : ''}`}
              aria-rowcount=${R}
              aria-colcount=${C}
              aria-activedescendant=${R && C ? cursorId : nothing}
              style=${cssProps({ gridColumn: `2 / span ${C}`, gridRow: `2 / span ${R}` })}
              @mousemove=${(e: MouseEvent) => this.setPointer(this.spotOfCanvas(e))}
              @mouseleave=${() => this.setPointer(null)}
              @click=${this.onClick}
              @keydown=${this.onKeyDown}
              @focus=${() => {
                this.focused = this.active;
                this.emitHover(this.active);
              }}
              @blur=${() => {
                this.focused = null;
                this.emitHover(this.pointer);
              }}
            >
              <canvas part="cells" aria-hidden="true"></canvas>
              ${
                R && C
                  ? html`<div role="row" aria-rowindex=${ar + 1}>
                    <div
                      role="gridcell"
                      part="cursor"
                      class="cursor"
                      id=${cursorId}
                      aria-colindex=${ac + 1}
                      aria-selected=${ifDefined(this.interactive || this.selected.length ? (this.selected[ar * C + ac] === true ? 'true' : 'false') : undefined)}
                      style=${cssProps({ left: `${ac * (w + GAP)}px`, top: `${ar * (h + GAP)}px`, width: `${w}px`, height: `${h}px` })}
                    >${this.describeCell(ar, ac)}</div>
                  </div>`
                  : nothing
              }
            </div>
          </div>
        </div>
      </div>
      ${this.scrollable ? html`<div class="scroll-hint" part="scroll-hint">Scroll sideways to see every column →</div>` : nothing}
      <div class="readout ${readout ? '' : 'hint'}" part="readout" aria-live=${this.focused ? 'off' : 'polite'}>
        ${readout || (this.interactive ? 'Hover or focus a cell to read it; click or press Enter to toggle it.' : 'Hover or focus a cell to read its value.')}
      </div>
      ${this.renderLegend()}
    </figure>`;
  }
}

/** Heatmaps stacked in one PNG (twice the CSS size), painted straight onto one canvas. */
export function pngOf(maps: readonly PbHeatmap[], legend?: readonly string[]): Promise<Blob> {
  const sizes = maps.map((m) => m.paintExport(null, legend));
  const W = Math.max(...sizes.map((s) => s.width));
  const H = sizes.reduce((a, s) => a + s.height, 0);
  const canvas = document.createElement('canvas');
  canvas.width = W * 2;
  canvas.height = H * 2;
  const ctx = canvas.getContext('2d')!;
  ctx.scale(2, 2);
  ctx.fillStyle = maps[0]?.data().background ?? '#fff';
  ctx.fillRect(0, 0, W, H);
  let y = 0;
  maps.forEach((m, i) => {
    ctx.save();
    ctx.translate(0, y);
    m.paintExport(ctx, legend);
    ctx.restore();
    y += sizes[i].height;
  });
  return new Promise((ok, fail) => canvas.toBlob((b) => (b ? ok(b) : fail(new Error('the PNG could not be made'))), 'image/png'));
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
