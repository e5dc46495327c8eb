/**
 * `<loss-curve>`: training loss against update, one line per series, log-scaled loss axis.
 *
 * Properties: `series` ({ label, color, points: [step, loss][] }[]), `steps` (the x-axis extent).
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

  override render() {
    const [W, H, L, B] = [600, 200, 44, 20]; // plot size, left and bottom margins
    const all = this.series.flatMap((s) => s.points.map((p) => p[1])).filter((v) => v > 0 && Number.isFinite(v));
    const lo = all.length ? Math.log10(Math.min(...all)) : -3;
    const hi = all.length ? Math.log10(Math.max(...all)) : 0;
    const [y0, y1] = [Math.floor(lo), Math.max(Math.ceil(hi), Math.floor(lo) + 1)];
    const x = (s: number) => L + ((W - L) * s) / Math.max(1, this.steps);
    const y = (v: number) => H - B - ((H - B) * (Math.log10(Math.max(v, 10 ** y0)) - y0)) / (y1 - y0);
    const ticks = [];
    for (let e = y0; e <= y1; e++) ticks.push(svg`<line x1=${L} x2=${W} y1=${y(10 ** e)} y2=${y(10 ** e)} stroke="#eceef1"></line><text x=${L - 4} y=${y(10 ** e) + 3} text-anchor="end">1e${e}</text>`);
    const lines = this.series.map((s) => svg`<polyline fill="none" stroke=${s.color} stroke-width="1.3" points=${s.points.map(([st, v]) => `${x(st).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}><title>${s.label}</title></polyline>`);
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
