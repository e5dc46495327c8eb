/**
 * `<tms-geometry>`: the hidden space of a 2-dimensional toy model, each feature's direction W_f
 * drawn as a line from the origin (the paper's figure 1), coloured by importance. Features the
 * model does not represent are short lines near the origin.
 *
 * Properties: `W` ([F, 2] row-major), `scale` (the radius of the drawn circle, default 1.2).
 * @csspart plot - the SVG.
 */
import { LitElement, css, html, svg } from 'lit';
import { customElement, property } from 'lit/decorators.js';
import { css as rgb, importanceColor } from './colors.ts';

@customElement('tms-geometry')
export class TmsGeometry extends LitElement {
  static override styles = css`
    :host { display: block; }
    svg { width: 100%; height: auto; display: block; }
  `;

  /** Feature directions [F, 2]. */
  @property({ attribute: false }) W: Float32Array | null = null;
  @property({ type: Number }) scale = 1.2;

  override render() {
    const W = this.W;
    const R = 50; // SVG units per unit of W, out to `scale`
    const s = R / this.scale;
    const F = W ? W.length / 2 : 0;
    const lines = [];
    for (let f = F - 1; f >= 0; f--) {
      const [x, y] = [W![2 * f]! * s, -W![2 * f + 1]! * s];
      const c = rgb(importanceColor(F > 1 ? f / (F - 1) : 0));
      lines.push(svg`<line x1="0" y1="0" x2=${x} y2=${y} stroke=${c} stroke-width="2.2" stroke-linecap="round"></line>
        <circle cx=${x} cy=${y} r="3" fill=${c}><title>feature ${f}: (${W![2 * f]!.toFixed(2)}, ${W![2 * f + 1]!.toFixed(2)})</title></circle>`);
    }
    return html`<svg part="plot" viewBox="-55 -55 110 110" role="img" aria-label="feature directions in the 2-dimensional hidden space">
      <circle cx="0" cy="0" r=${s} fill="none" stroke="#d0d4da" stroke-dasharray="2 2"></circle>
      <line x1="-52" y1="0" x2="52" y2="0" stroke="#eceef1"></line>
      <line x1="0" y1="-52" x2="0" y2="52" stroke="#eceef1"></line>
      ${lines}
    </svg>`;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'tms-geometry': TmsGeometry;
  }
}
