/**
 * `<pb-model-picker>`: a menu of model presets that switches a `<pb-model>` to the chosen one
 * (and records it in the page URL as `?ID.model=`, which the `<pb-model>` reads on load when its
 * `url-state` lists `model`).
 *
 * ```html
 * <pb-model id="m" src="gpt2"> … </pb-model>
 * <pb-model-picker for="m" presets="gpt2,pythia-70m,smollm2-135m"></pb-model-picker>
 * ```
 *
 * @fires pb-model-pick - `{ src }` when the reader picks a model.
 * @csspart select - The menu.
 */
import { LitElement, css, html } from 'lit';
import { customElement, property } from 'lit/decorators.js';
import { PRESETS } from '../model/presets.ts';
import type { PbModel } from './pb-model.ts';

@customElement('pb-model-picker')
export class PbModelPicker extends LitElement {
  static override styles = css`
    :host { display: inline-block; }
    label { font-size: 0.9em; }
    select { font: inherit; margin-left: 0.4em; max-width: 100%; }
  `;

  /** Id of the `<pb-model>` to switch (default: the nearest enclosing one). */
  @property() for = '';
  /** Comma-separated preset names to offer (default: all). */
  @property() presets = '';

  private target(): PbModel | null {
    if (this.for) return (this.getRootNode() as Document | ShadowRoot).querySelector?.(`#${CSS.escape(this.for)}`) as PbModel | null;
    return this.closest('pb-model');
  }

  private pick(e: Event): void {
    const src = (e.target as HTMLSelectElement).value;
    const model = this.target();
    if (model) model.src = src;
    // Recorded in the URL under the model's key when its url-state lets a link change the model.
    if (typeof location !== 'undefined' && model?.urlParts.includes('model')) {
      const url = new URL(location.href);
      url.searchParams.set(`${model.id ? `${model.id}.` : ''}model`, src);
      history.replaceState(history.state, '', url);
    }
    this.dispatchEvent(new CustomEvent('pb-model-pick', { detail: { src }, bubbles: true, composed: true }));
  }

  override render() {
    const names = this.presets ? this.presets.split(',').map((s) => s.trim()) : Object.keys(PRESETS);
    const current = this.target()?.src ?? '';
    return html`<label
      >Model
      <select part="select" @change=${this.pick} aria-label="Model">
        ${names.map((n) => html`<option value=${n} ?selected=${n === current}>${PRESETS[n]?.title ?? n}</option>`)}
      </select></label
    >`;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'pb-model-picker': PbModelPicker;
  }
}
