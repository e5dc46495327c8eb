/**
 * `<loss-curve>`: training loss against update, one line per series, log-scaled loss axis (or,
 * with `linear`, a 0 to `max` axis: scores).
 *
 * Properties: `series` ({ label, color, points: [step, loss][] }[]), `steps` (the x-axis extent),
 * `linear` and `max`, `marker` (a step to mark with a vertical line, e.g. a phase change).
 * @csspart plot - the SVG.
 */
import { LitElement, css, html, svg } from 'lit';
import { customElement, property } from 'lit/decorators.js';

export interface Series {
  label: string;
  color: string;
  points: [number, number][];
}

@customElement('loss-curve')
export class LossCurve extends LitElement {
  static override styles = css`
    :host { display: block; font-size: 0.8rem; }
    svg { width: 100%; height: auto; display: block; overflow: visible; }
    text { fill: #59636e; font-size: 12px; }
  `;

  @property({ attribute: false }) series: Series[] = [];
  @property({ type: Number }) steps = 1;
  /** The y-axis label. */
  @property() label = 'loss';
  /** A linear axis from 0 to `max` instead of a log axis. */
  @property({ type: Boolean }) linear = false;
  @property({ type: Number }) max = 1;
  /** A step marked with a dashed vertical line (0: none). */
  @property({ type: Number }) marker = 0;

  override render() {
    const [W, H, L, B] = [600, 200, 44, 20]; // plot size, left and bottom margins
    const all = this.series.flatMap((s) => s.points.map((p) => p[1])).filter((v) => v > 0 && Number.isFinite(v));
    const lo = all.length ? Math.log10(Math.min(...all)) : -3;
    const hi = all.length ? Math.log10(Math.max(...all)) : 0;
    const [y0, y1] = [Math.floor(lo), Math.max(Math.ceil(hi), Math.floor(lo) + 1)];
    const x = (s: number) => L + ((W - L) * s) / Math.max(1, this.steps);
    const y = this.linear
      ? (v: number) => H - B - ((H - B - 6) * Math.min(Math.max(v, 0), this.max)) / this.max
      : (v: number) => H - B - ((H - B) * (Math.log10(Math.max(v, 10 ** y0)) - y0)) / (y1 - y0);
    const ticks = [];
    if (this.linear) {
      for (const f of [0, 0.25, 0.5, 0.75, 1])
        ticks.push(
          svg`<line x1=${L} x2=${W} y1=${y(f * this.max)} y2=${y(f * this.max)} stroke="#eceef1"></line><text x=${L - 4} y=${y(f * this.max) + 3} text-anchor="end">${+(f * this.max).toFixed(2)}</text>`,
        );
    } else {
      for (let e = y0; e <= y1; e++)
        ticks.push(svg`<line x1=${L} x2=${W} y1=${y(10 ** e)} y2=${y(10 ** e)} stroke="#eceef1"></line><text x=${L - 4} y=${y(10 ** e) + 3} text-anchor="end">1e${e}</text>`);
    }
    if (this.marker > 0)
      ticks.push(
        svg`<line x1=${x(this.marker)} x2=${x(this.marker)} y1="4" y2=${H - B} stroke="#c2410c" stroke-dasharray="3 3"></line><text x=${x(this.marker) + 3} y="24" fill="#c2410c">step ${this.marker}</text>`,
      );
    const lines = this.series.map(
      (s) =>
        svg`<polyline fill="none" stroke=${s.color} stroke-width="1.3" points=${s.points.map(([st, v]) => `${x(st).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}><title>${s.label}</title></polyline>`,
    );
    return html`<svg part="plot" viewBox="0 0 ${W} ${H}" role="img" aria-label=${`${this.label} against training step`}>
      ${ticks}
      <line x1=${L} x2=${W} y1=${H - B} y2=${H - B} stroke="#8b949e"></line>
      <text x=${L} y=${H - 4}>0</text><text x=${W} y=${H - 4} text-anchor="end">${this.steps} steps</text>
      <text x=${L + 4} y="12">${this.label}</text>
      ${lines}
    </svg>`;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'loss-curve': LossCurve;
  }
}
