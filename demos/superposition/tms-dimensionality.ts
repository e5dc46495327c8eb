/**
 * `<tms-dimensionality>`: how many features a model packs per hidden dimension, against sparsity
 * (the paper's "feature dimensionality" section). x is 1 / (1 - S) on a log axis (1: dense); the
 * line is ||W||_F^2 / m, features per dimension; the dots are each feature's dimensionality
 * D_f = ||W_f||^2 / sum_g (W^_f . W_g)^2 (the fraction of a dimension it gets), read on the right
 * axis, where the paper found it sticks to 1, 1/2 (antipodal pairs), 2/5 (pentagons), 1/3 ...
 *
 * Properties: `points` ({ density: 1 - S, perDim: ||W||_F^2 / m, dims: D_f [F] }[]).
 * @csspart plot - the SVG.
 */
import { LitElement, css, html, svg } from 'lit';
import { customElement, property } from 'lit/decorators.js';

export interface DimPoint {
  /** Feature probability, 1 - S. */
  density: number;
  /** ||W||_F^2 / m. */
  perDim: number;
  /** Each represented feature's dimensionality D_f. */
  dims: Float32Array;
}

const FRACTIONS: [number, string][] = [
  [1, '1'],
  [3 / 4, '3/4'],
  [2 / 3, '2/3'],
  [1 / 2, '1/2'],
  [2 / 5, '2/5'],
  [1 / 3, '1/3'],
];

@customElement('tms-dimensionality')
export class TmsDimensionality extends LitElement {
  static override styles = css`
    :host { display: block; }
    svg { width: 100%; height: auto; display: block; overflow: visible; }
    text { fill: #59636e; font-size: 12px; }
  `;

  @property({ attribute: false }) points: DimPoint[] = [];
  /** Hidden dimensions m, for the y-axis extent (features per dimension can reach F / m). */
  @property({ type: Number }) maxPerDim = 5;

  override render() {
    const [W, H, L, R, B] = [600, 260, 40, 40, 34];
    const xs = this.points.map((p) => 1 / p.density);
    const xmax = Math.max(10, ...xs);
    const x = (v: number) => L + ((W - L - R) * Math.log10(v)) / Math.log10(xmax);
    const yl = (v: number) => H - B - ((H - B - 34) * v) / this.maxPerDim; // features per dimension (left)
    const yr = (v: number) => H - B - (H - B - 34) * v; // D_f in [0, 1] (right)
    const grid = FRACTIONS.map(([v, t]) => svg`<line x1=${L} x2=${W - R} y1=${yr(v)} y2=${yr(v)} stroke="#eceef1"></line><text x=${W - R + 3} y=${yr(v) + 3}>${t}</text>`);
    const decades = [];
    for (let d = 1; d <= xmax * 1.001; d *= 10)
      decades.push(svg`<line x1=${x(d)} x2=${x(d)} y1=${H - B} y2=${H - B + 3} stroke="#8b949e"></line><text x=${x(d)} y=${H - B + 15} text-anchor="middle">${d}</text>`);
    const sorted = [...this.points].sort((a, b) => a.density - b.density).reverse();
    const line = sorted.map((p) => `${x(1 / p.density).toFixed(1)},${yl(p.perDim).toFixed(1)}`).join(' ');
    const dots = this.points.flatMap((p) =>
      Array.from(p.dims)
        .filter((d) => d > 0.02)
        .map((d) => svg`<circle cx=${x(1 / p.density)} cy=${yr(Math.min(1, d))} r="2" fill="#1f5fbf" fill-opacity="0.35"></circle>`),
    );
    return html`<svg part="plot" viewBox="0 0 ${W} ${H}" role="img" aria-label="features per dimension against sparsity">
      ${grid}${decades}
      <line x1=${L} x2=${W - R} y1=${H - B} y2=${H - B} stroke="#8b949e"></line>
      <text x=${L} y="12">features per dimension (line, left axis)</text>
      <text x=${L} y="27">dots: each feature's share of a dimension (right axis)</text>
      <text x=${(W - R + L) / 2} y=${H - 2} text-anchor="middle">1 / (1 − S)</text>
      <text x=${L - 3} y=${yl(0) + 3} text-anchor="end">0</text>
      <text x=${L - 3} y=${yl(this.maxPerDim) + 3} text-anchor="end">${this.maxPerDim}</text>
      ${dots}
      <polyline points=${line} fill="none" stroke="#c2410c" stroke-width="1.6"></polyline>
      ${sorted.map((p) => svg`<circle cx=${x(1 / p.density)} cy=${yl(p.perDim)} r="3.2" fill="#c2410c"><title>S = ${(1 - p.density).toFixed(3)}: ${p.perDim.toFixed(2)} features per dimension</title></circle>`)}
    </svg>`;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'tms-dimensionality': TmsDimensionality;
  }
}
