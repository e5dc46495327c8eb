/**
 * The estimate-against-exact scatter that the attribution figures draw beside their tables: one
 * square plot over [-lim, lim] on both axes, the axes through 0, the diagonal where the estimate
 * equals the exact effect, and the verified (top) points in red. `scatterStyles` styles it and lays
 * the figure's `.views` (table or heatmaps beside the scatter) out in a wrapping row.
 */
import { css, html, svg } from 'lit';
import { formatValue } from './heatmap.ts';

/** One dot: the exact effect along x, the estimate along y, its tooltip, whether it was verified. */
export interface ScatterPoint {
  exact: number;
  estimate: number;
  title: string;
  top: boolean;
}

export const scatterStyles = css`
  .views {
    display: flex;
    flex-wrap: wrap;
    gap: 1rem 1.5rem;
    align-items: flex-start;
  }
  svg {
    width: 15rem;
    height: 15rem;
  }
  .axis {
    stroke: currentColor;
    stroke-opacity: 0.3;
  }
  .diag {
    stroke: currentColor;
    stroke-opacity: 0.35;
    stroke-dasharray: 3 3;
  }
  .dot {
    fill: #2563eb;
    fill-opacity: 0.75;
  }
  .dot.top {
    fill: #dc2626;
  }
  .tick {
    font-size: 9px;
    fill: currentColor;
  }
`;

/** The scatter as `<svg part="scatter">`, labelled for screen readers by `ariaLabel`. */
export function estimateScatter(points: readonly ScatterPoint[], o: { xLabel: string; yLabel: string; ariaLabel: string; radius: number }) {
  const lim = Math.max(1e-9, ...points.flatMap((p) => [Math.abs(p.exact), Math.abs(p.estimate)])) * 1.05;
  const S = 200; // plot side in viewBox units; the margins hold the tick labels
  const px = (v: number) => ((v + lim) / (2 * lim)) * S;
  const py = (v: number) => S - ((v + lim) / (2 * lim)) * S;
  return html`<svg part="scatter" viewBox="-24 -8 ${S + 32} ${S + 32}" role="img" aria-label=${o.ariaLabel}>
    ${svg`<line class="axis" x1="0" y1=${py(0)} x2=${S} y2=${py(0)}></line>
      <line class="axis" x1=${px(0)} y1="0" x2=${px(0)} y2=${S}></line>
      <line class="diag" x1=${px(-lim)} y1=${py(-lim)} x2=${px(lim)} y2=${py(lim)}></line>
      <text class="tick" x=${S} y=${S + 18} text-anchor="end">${o.xLabel} →</text>
      <text class="tick" x="-20" y="6">${o.yLabel} ↑</text>
      <text class="tick" x="0" y=${S + 8} text-anchor="middle">${formatValue(-lim, 2)}</text>
      <text class="tick" x=${S} y=${S + 8} text-anchor="middle">${formatValue(lim, 2)}</text>
      ${points.map((p) => svg`<circle class=${p.top ? 'dot top' : 'dot'} cx=${px(p.exact)} cy=${py(p.estimate)} r=${o.radius}><title>${p.title}</title></circle>`)}`}
  </svg>`;
}
