/**
 * `<tms-norms>`: each feature's norm ||W_f|| as a bar (1: fully represented, 0: dropped), coloured
 * by its superposition sum_{g != f} (W^_f . W_g)^2: black for a feature with a dimension to itself,
 * yellow for one that shares its direction with others (the paper's bar charts).
 *
 * Properties: `norms` ([F]), `superposition` ([F]).
 * @csspart plot - the SVG.
 */
import { LitElement, css, html, svg } from 'lit';
import { customElement, property } from 'lit/decorators.js';
import { css as rgb, superpositionColor } from './colors.ts';

@customElement('tms-norms')
export class TmsNorms extends LitElement {
  static override styles = css`
    :host { display: block; }
    svg { width: 100%; height: auto; display: block; }
  `;

  @property({ attribute: false }) norms: Float32Array | null = null;
  @property({ attribute: false }) superposition: Float32Array | null = null;

  override render() {
    const n = this.norms;
    const F = n?.length ?? 0;
    const rowH = F > 30 ? 1 : 6; // many features: a dense strip
    const height = Math.max(1, F * rowH);
    const bars = [];
    for (let f = 0; f < F; f++) {
      const w = (Math.min(1.5, n![f]!) / 1.5) * 100;
      const s = this.superposition?.[f] ?? 0;
      bars.push(
        svg`<rect x="0" y=${f * rowH} width=${w} height=${rowH * 0.8} fill=${rgb(superpositionColor(s))}><title>feature ${f}: norm ${n![f]!.toFixed(2)}, superposition ${s.toFixed(2)}</title></rect>`,
      );
    }
    return html`<svg part="plot" viewBox="0 0 100 ${height}" preserveAspectRatio="none" role="img" aria-label="feature norms coloured by superposition">
      ${bars}
      <line x1=${100 / 1.5} y1="0" x2=${100 / 1.5} y2=${height} stroke="#8b949e" stroke-dasharray="1 1" stroke-width="0.4"></line>
    </svg>`;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'tms-norms': TmsNorms;
  }
}
