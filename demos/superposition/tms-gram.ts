/**
 * `<tms-gram>`: W W^T [F, F] of one instance (the paper's W^T W, whose W is [H, F]) as a heatmap,
 * red positive, blue negative, with the bias b as a last column: a diagonal of ones is a feature
 * with a dimension to itself, off-diagonal entries are interference.
 *
 * Properties: `W` ([F, H]), `bias` ([F]), `features` (F).
 * @csspart canvas - the heatmap (one pixel per entry, scaled up).
 */
import { LitElement, css, html, type PropertyValues } from 'lit';
import { customElement, property, query } from 'lit/decorators.js';
import { divergingColor } from './colors.ts';

@customElement('tms-gram')
export class TmsGram extends LitElement {
  static override styles = css`
    :host { display: block; }
    canvas { width: 100%; height: auto; image-rendering: pixelated; display: block; border: 1px solid #e4e6e9; }
  `;

  @property({ attribute: false }) W: Float32Array | null = null;
  @property({ attribute: false }) bias: Float32Array | null = null;
  @property({ type: Number }) features = 0;

  @query('canvas') private canvas!: HTMLCanvasElement;

  override render() {
    const F = this.features;
    // A gap column, then the bias: F + 2 columns.
    return html`<canvas part="canvas" width=${F + 2} height=${F} role="img" aria-label="W W transposed, with the bias"></canvas>`;
  }

  protected override updated(_: PropertyValues): void {
    const F = this.features;
    const W = this.W;
    const ctx = this.canvas?.getContext('2d');
    if (!ctx || !W || F === 0) return;
    const H = W.length / F;
    const img = ctx.createImageData(F + 2, F);
    const put = (r: number, c: number, v: number) => {
      const [R, G, B] = divergingColor(v);
      const o = 4 * (r * (F + 2) + c);
      img.data.set([R, G, B, 255], o);
    };
    for (let f = 0; f < F; f++) {
      for (let g = 0; g < F; g++) {
        let acc = 0;
        for (let k = 0; k < H; k++) acc += W[f * H + k]! * W[g * H + k]!;
        put(f, g, acc);
      }
      img.data.set([255, 255, 255, 255], 4 * (f * (F + 2) + F));
      put(f, F + 1, this.bias ? this.bias[f]! : 0);
    }
    ctx.putImageData(img, 0, 0);
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'tms-gram': TmsGram;
  }
}
