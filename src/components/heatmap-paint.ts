/**
 * Drawing a heatmap's cells, and a whole figure for export, on a "pen": a canvas 2D context for
 * the live figure and PNG export, or an SVG string builder for SVG export. One layout, two
 * backends, so the exported picture is what the reader saw.
 */
import { cellColor, formatValue, scaleStops, type Better, type HeatmapScale, type Scheme } from './color-scale.ts';

export interface TextStyle {
  size: number;
  color: string;
  align?: 'left' | 'center' | 'right';
  bold?: boolean;
  mono?: boolean;
  underline?: boolean;
  /** Rotated -90° (reads bottom to top), for column labels. */
  vertical?: boolean;
}

export interface Pen {
  rect(x: number, y: number, w: number, h: number, fill: string): void;
  stroke(x: number, y: number, w: number, h: number, color: string, width: number): void;
  /** Diagonal hatching inside the box. */
  hatch(x: number, y: number, w: number, h: number, color: string): void;
  /** Text with its baseline centred vertically on y. */
  text(x: number, y: number, s: string, style: TextStyle): void;
  measure(s: string, style: TextStyle): number;
}

const SANS = 'system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif';
const MONO = 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace';
const font = (st: TextStyle) => `${st.bold ? '700 ' : ''}${st.size}px ${st.mono ? MONO : SANS}`;

export class CanvasPen implements Pen {
  constructor(private readonly ctx: CanvasRenderingContext2D) {}
  rect(x: number, y: number, w: number, h: number, fill: string): void {
    this.ctx.fillStyle = fill;
    this.ctx.fillRect(x, y, w, h);
  }
  stroke(x: number, y: number, w: number, h: number, color: string, width: number): void {
    this.ctx.strokeStyle = color;
    this.ctx.lineWidth = width;
    this.ctx.strokeRect(x + width / 2, y + width / 2, w - width, h - width);
  }
  hatch(x: number, y: number, w: number, h: number, color: string): void {
    const c = this.ctx;
    c.save();
    c.beginPath();
    c.rect(x, y, w, h);
    c.clip();
    c.strokeStyle = color;
    c.lineWidth = 1.5;
    c.beginPath();
    for (let d = -h; d < w; d += 6) {
      c.moveTo(x + d, y + h);
      c.lineTo(x + d + h, y);
    }
    c.stroke();
    c.restore();
  }
  text(x: number, y: number, s: string, st: TextStyle): void {
    const c = this.ctx;
    c.save();
    c.font = font(st);
    c.fillStyle = st.color;
    c.textBaseline = 'middle';
    c.textAlign = st.align ?? 'left';
    if (st.vertical) {
      c.translate(x, y);
      c.rotate(-Math.PI / 2);
      c.fillText(s, 0, 0);
    } else {
      c.fillText(s, x, y);
      if (st.underline) {
        const w = c.measureText(s).width;
        const left = st.align === 'center' ? x - w / 2 : st.align === 'right' ? x - w : x;
        c.fillRect(left, y + st.size * 0.55, w, Math.max(1, st.size / 12));
      }
    }
    c.restore();
  }
  measure(s: string, st: TextStyle): number {
    this.ctx.font = font(st);
    return this.ctx.measureText(s).width;
  }
}

const xml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export class SvgPen implements Pen {
  private readonly parts: string[] = [];
  private hatchId = 0;
  constructor(private readonly measurer: Pen) {}
  rect(x: number, y: number, w: number, h: number, fill: string): void {
    this.parts.push(`<rect x="${x}" y="${y}" width="${w}" height="${h}" fill="${fill}"/>`);
  }
  stroke(x: number, y: number, w: number, h: number, color: string, width: number): void {
    this.parts.push(`<rect x="${x + width / 2}" y="${y + width / 2}" width="${w - width}" height="${h - width}" fill="none" stroke="${color}" stroke-width="${width}"/>`);
  }
  hatch(x: number, y: number, w: number, h: number, color: string): void {
    const id = `h${this.hatchId++}`;
    let lines = '';
    for (let d = -h; d < w; d += 6) lines += `M${x + d} ${y + h}L${x + d + h} ${y}`;
    this.parts.push(`<clipPath id="${id}"><rect x="${x}" y="${y}" width="${w}" height="${h}"/></clipPath><path d="${lines}" stroke="${color}" stroke-width="1.5" clip-path="url(#${id})"/>`);
  }
  text(x: number, y: number, s: string, st: TextStyle): void {
    const anchor = st.align === 'center' ? 'middle' : st.align === 'right' ? 'end' : 'start';
    const attrs = `font-family="${xml(st.mono ? MONO : SANS)}" font-size="${st.size}" fill="${st.color}" text-anchor="${anchor}" dominant-baseline="central"${st.bold ? ' font-weight="700"' : ''}${st.underline ? ' text-decoration="underline"' : ''}`;
    const t = st.vertical ? ` transform="rotate(-90 ${x} ${y})"` : '';
    this.parts.push(`<text x="${x}" y="${y}" ${attrs}${t} xml:space="preserve">${xml(s)}</text>`);
  }
  measure(s: string, st: TextStyle): number {
    return this.measurer.measure(s, st);
  }
  svg(width: number, height: number, background: string): string {
    return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}"><rect width="100%" height="100%" fill="${background}"/>${this.parts.join('')}</svg>`;
  }
}

/** What a heatmap draws: values and every mark. */
export interface HeatmapData {
  values: ArrayLike<number>;
  rows: number;
  cols: number;
  rowLabels: readonly string[];
  colLabels: readonly string[];
  rowAxis: string;
  colAxis: string;
  caption: string;
  scale: HeatmapScale;
  domain: number;
  center: number;
  better: Better;
  causal: boolean;
  selected: readonly boolean[];
  cellText: readonly (string | undefined)[];
  marked: readonly boolean[];
  badges: readonly (string | undefined)[];
  valueLabel: string;
  scheme: Scheme;
  fg: string;
  muted: string;
  background: string;
  masked: string;
}

/** Text cut to `max` px with an ellipsis. */
export function fitText(pen: Pen, s: string, max: number, st: TextStyle): string {
  if (pen.measure(s, st) <= max) return s;
  const chars = [...s];
  while (chars.length > 1 && pen.measure(chars.join('') + '…', st) > max) chars.pop();
  return chars.join('') + '…';
}

/** The cells, at (x0, y0), each cw × ch with `gap` between them. */
export function paintCells(pen: Pen, d: HeatmapData, x0: number, y0: number, cw: number, ch: number, gap: number): void {
  const opts = { scale: d.scale, domain: d.domain, center: d.center, better: d.better, scheme: d.scheme };
  const size = Math.max(8, Math.min(13, ch * 0.34, cw * 0.3));
  for (let r = 0; r < d.rows; r++) {
    for (let c = 0; c < d.cols; c++) {
      const i = r * d.cols + c;
      const x = x0 + c * (cw + gap);
      const y = y0 + r * (ch + gap);
      if (d.causal && c > r) {
        pen.rect(x, y, cw, ch, d.masked);
        continue;
      }
      const col = cellColor(d.values[i], opts);
      pen.rect(x, y, cw, ch, col.background);
      if (d.selected[i]) {
        pen.hatch(x, y, cw, ch, d.scheme === 'dark' ? 'rgba(230,237,243,0.45)' : 'rgba(17,24,39,0.35)');
        pen.stroke(x, y, cw, ch, d.fg, 2);
      }
      const text = d.cellText[i];
      const badge = d.badges[i];
      const lines = text ? text.split('\n') : [];
      const area = badge ? ch - size - 2 : ch;
      lines.forEach((line, k) => {
        const st: TextStyle = { size, color: col.color, align: 'center', mono: true, bold: !!d.marked[i], underline: !!d.marked[i] };
        pen.text(x + cw / 2, y + (area * (k + 0.5)) / lines.length, fitText(pen, line, cw - 4, st), st);
      });
      if (badge) {
        const bs: TextStyle = { size: Math.max(8, size * 0.85), color: '#111827', align: 'center' };
        pen.rect(x + 1, y + ch - size - 1, cw - 2, size, 'rgba(255,255,255,0.88)');
        pen.text(x + cw / 2, y + ch - size / 2 - 1, fitText(pen, badge, cw - 4, bs), bs);
      }
    }
  }
}

/** The whole figure (caption, labels, cells, legend) as drawn for export; returns its size. */
export function paintFigure(pen: Pen, d: HeatmapData, cw: number, ch: number, legend: readonly string[]): { width: number; height: number } {
  const gap = 1;
  const label: TextStyle = { size: 11, color: d.fg, mono: true };
  const rowW = Math.min(140, Math.max(20, ...d.rowLabels.map((l) => pen.measure(l, label)))) + 8;
  const vertical = d.colLabels.some((l) => [...l].length > 3);
  const colH = vertical ? Math.min(110, Math.max(...d.colLabels.map((l) => pen.measure(l, label)), 10) + 8) : 18;
  const pad = 12;
  const capH = d.caption ? 22 : 0;
  const axisH = d.colAxis ? 16 : 0;
  const x0 = pad + rowW + (d.rowAxis ? 16 : 0);
  const y0 = pad + capH + axisH + colH;
  const gridW = d.cols * (cw + gap) - gap;
  const gridH = d.rows * (ch + gap) - gap;
  if (d.caption) pen.text(pad, pad + 9, d.caption, { size: 13, color: d.fg, bold: true });
  if (d.colAxis) pen.text(x0 + gridW / 2, pad + capH + 7, `${d.colAxis} →`, { size: 11, color: d.muted, align: 'center' });
  if (d.rowAxis) pen.text(pad + 6, y0 + gridH / 2, `${d.rowAxis} ↓`, { size: 11, color: d.muted, align: 'center', vertical: true });
  d.colLabels.forEach((l, c) => {
    const x = x0 + c * (cw + gap) + cw / 2;
    if (vertical) pen.text(x, y0 - 4, fitText(pen, l, colH - 8, label), { ...label, vertical: true });
    else pen.text(x, y0 - colH / 2, fitText(pen, l, cw, label), { ...label, align: 'center' });
  });
  d.rowLabels.forEach((l, r) => pen.text(x0 - 6, y0 + r * (ch + gap) + ch / 2, fitText(pen, l, rowW - 8, label), { ...label, align: 'right' }));
  paintCells(pen, d, x0, y0, cw, ch, gap);
  // Legend: the scale's ramp and its meaning, then the marks.
  let y = y0 + gridH + 14;
  const stops = scaleStops(d.scale, d.scheme);
  const rampW = 120;
  stops.forEach((s, i) => pen.rect(x0 + (i * rampW) / stops.length, y - 5, rampW / stops.length + 0.5, 10, s));
  const dom = formatValue(d.domain, d.domain >= 10 ? 1 : 2).replace('−', '');
  const ends = d.scale === 'diverging' ? `${d.valueLabel}: centre ${formatValue(d.center, 2)} = no effect, ±${dom} at full colour; blue = ${d.better} is better` : `${d.valueLabel}: 0 to ${dom}`;
  pen.text(x0 + rampW + 8, y, ends, { size: 11, color: d.muted });
  for (const item of legend) {
    y += 16;
    pen.text(x0, y, item, { size: 11, color: d.muted });
  }
  return { width: Math.ceil(Math.max(x0 + gridW, x0 + rampW + 8 + pen.measure(ends, { size: 11, color: '' })) + pad), height: Math.ceil(y + 10 + pad) };
}
