/**
 * `<sae-features>`: an SAE's latents with the contexts they fire most on. Each latent is a card:
 * its index, how often it fires (density), and its top contexts as token-id chips ending at the
 * token it fires on (highlighted, with the activation), plus what those contexts share: the most
 * common current token and the most common previous token, with how many of the contexts have it.
 *
 * Properties: `features` (FeatureCard[], shown in the given order).
 * @csspart card - one latent.
 */
import { LitElement, css, html } from 'lit';
import { customElement, property } from 'lit/decorators.js';

export interface FeatureContextView {
  /** The tokens shown: the firing token last. */
  tokens: number[];
  /** Its position in the sequence. */
  pos: number;
  value: number;
}

export interface FeatureCard {
  index: number;
  density: number;
  contexts: FeatureContextView[];
}

/** The most common value in `xs` and how many times it occurs. */
function mode(xs: number[]): [number, number] {
  const counts = new Map<number, number>();
  for (const x of xs) counts.set(x, (counts.get(x) ?? 0) + 1);
  let best: [number, number] = [NaN, 0];
  for (const [k, n] of counts) if (n > best[1]) best = [k, n];
  return best;
}

@customElement('sae-features')
export class SaeFeatures extends LitElement {
  static override styles = css`
    :host { display: grid; grid-template-columns: repeat(auto-fill, minmax(17rem, 1fr)); gap: 0.8rem; font-size: 0.85rem; }
    .card { border: 1px solid #e4e6e9; border-radius: 8px; padding: 0.5rem 0.6rem; }
    h3 { font-size: 0.88rem; margin: 0 0 0.2rem; }
    .meta { color: #59636e; font-size: 0.78rem; margin-bottom: 0.35rem; }
    .ctx { display: flex; gap: 2px; align-items: center; margin: 2px 0; font-family: ui-monospace, monospace; font-size: 0.75rem; }
    .tok { padding: 0 3px; border-radius: 3px; background: #f1f3f5; color: #59636e; }
    .tok.fire { background: #fde68a; color: #1f2328; font-weight: 600; }
    .val { margin-left: auto; color: #59636e; }
  `;

  @property({ attribute: false }) features: FeatureCard[] = [];

  override render() {
    return this.features.map((f) => {
      const [cur, nCur] = mode(f.contexts.map((c) => c.tokens[c.tokens.length - 1]!));
      const [prev, nPrev] = mode(f.contexts.filter((c) => c.tokens.length > 1).map((c) => c.tokens[c.tokens.length - 2]!));
      const n = f.contexts.length;
      return html`<div class="card" part="card" data-feature=${f.index}>
        <h3>Latent ${f.index}</h3>
        <div class="meta">
          fires on ${(100 * f.density).toFixed(2)}% of tokens · current token ${cur} in ${nCur}/${n} · previous token ${Number.isNaN(prev) ? '–' : prev} in ${nPrev}/${n}
        </div>
        ${f.contexts.map(
          (c) => html`<div class="ctx" title=${`position ${c.pos}`}>
            ${c.tokens.map((t, i) => html`<span class=${i === c.tokens.length - 1 ? 'tok fire' : 'tok'}>${t}</span>`)}
            <span class="val">${c.value.toFixed(2)}</span>
          </div>`,
        )}
      </div>`;
    });
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'sae-features': SaeFeatures;
  }
}
