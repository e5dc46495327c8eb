/**
 * `<pb-model>`: loads a model and provides it, with the page's experiment state, to the figures
 * inside it.
 *
 * ```html
 * <pb-model src="induction-2l" models="../models/" prompt="0,200,290" metric="loss:1:16">
 *   <pb-attention></pb-attention>
 * </pb-model>
 * ```
 *
 * `src` is a preset (`induction-2l`, `gpt2`) or a model folder URL. Weights are kept in the
 * browser's Cache API, so a second visit does not download them again. Messages name what went
 * wrong: no WebGPU in this browser, a download that failed, a model Patchbay cannot run.
 *
 * @fires pb-model-loaded - `{ name, config }` once the model is ready.
 * @fires pb-model-error - `{ message }` when loading failed.
 * @slot - Figures that use the model.
 * @csspart status - The line with the loading state or error.
 * @csspart progress - The download progress bar.
 */
import { LitElement, css, html, nothing } from 'lit';
import { customElement, property, state } from 'lit/decorators.js';
import { ContextProvider } from '@lit/context';
import { loadModel } from '../model/load.ts';
import { cachedUrlModelSource } from '../model/cached-source.ts';
import { Experiment, experimentContext } from './experiment.ts';
import { DEFAULT_HUB, PRESETS, resolveModelUrl } from './presets.ts';
import { Session, sessionContext } from './session.ts';
import { pageGpu } from './gpu.ts';
import { describeLoadError } from './load-error.ts';

export { describeLoadError };

export interface ModelLoadedDetail {
  name: string;
  config: import('../model/config.ts').ModelConfig;
}

@customElement('pb-model')
export class PbModel extends LitElement {
  static override styles = css`
    :host { display: block; font: inherit; }
    .status { font-size: 0.9em; color: #555; margin: 0.25em 0; }
    .status.error { color: #b00020; }
    progress { width: 100%; max-width: 28em; height: 0.8em; }
  `;

  /** Preset name or model folder URL. */
  @property() src = '';
  /** Base URL of local presets' folders, relative to the page. */
  @property() models = 'models/';
  /** Hugging Face Hub host for Hub presets. */
  @property() hub = DEFAULT_HUB;
  /** Initial prompt (text, or ids for a model without a tokenizer); the URL's `prompt` wins. */
  @property() prompt = '';
  /** Initial corrupted prompt for patching figures. */
  @property() corrupt = '';
  /** Initial metric spec, e.g. `logit-diff:16:247:72` or `loss:11:16`. */
  @property() metric = '';
  /** Initial patching site. */
  @property() site = 'resid_pre';
  /** Initial heads shown by attention figures, e.g. `0.2,1.3`. */
  @property() heads = '';
  /**
   * Keep the experiment state in the page URL (turn off for a second model on one page with
   * `url-state="false"`: a plain boolean attribute could only ever turn it on).
   */
  @property({ attribute: 'url-state', converter: { fromAttribute: (v: string | null) => v !== 'false' } }) urlState = true;

  @state() private tick = 0;

  readonly session = new Session();
  private experiment: Experiment | null = null;
  // Providers register themselves with this element as reactive controllers.
  protected readonly sessionProvider = new ContextProvider(this, { context: sessionContext, initialValue: this.session });
  private loading: string | null = null;

  constructor() {
    super();
    // Figures listen to the session's own change events; this element only redraws its status.
    this.session.addEventListener('change', () => this.tick++);
  }

  override connectedCallback(): void {
    super.connectedCallback();
    // A shared link may name the model (`?model=pythia-70m`, as <pb-model-picker> writes it).
    const fromUrl = this.urlState && typeof location !== 'undefined' ? new URLSearchParams(location.search).get('model') : null;
    if (fromUrl) this.src = fromUrl;
    if (!this.experiment) {
      this.experiment = new Experiment(
        {
          prompt: this.prompt,
          corrupt: this.corrupt,
          metric: this.metric,
          site: this.site,
          heads: this.heads ? this.heads.split(',') : [],
        },
        this.urlState && typeof location !== 'undefined',
      );
      // The provider registers itself with this element as a reactive controller.
      new ContextProvider(this, { context: experimentContext, initialValue: this.experiment });
    }
  }

  /** The experiment state this element provides. */
  get state(): Experiment {
    return this.experiment!;
  }

  protected override updated(changed: Map<string, unknown>): void {
    if (changed.has('src') || changed.has('models') || changed.has('hub')) void this.load();
  }

  private async load(): Promise<void> {
    const src = this.src;
    if (!src || this.loading === src + this.models + this.hub) return;
    this.loading = src + this.models + this.hub;
    const s = this.session;
    s.model?.destroy();
    s.set({ status: 'loading', name: src, model: null, tokenizer: null, error: '', progress: { loaded: 0, total: 0 }, fromCache: false });
    try {
      const gpu = await pageGpu();
      if (this.loading !== src + this.models + this.hub) return; // superseded before it fetched anything
      const url = resolveModelUrl(src, this.models, this.hub, document.baseURI);
      const source = cachedUrlModelSource(url);
      const done = new Map<string, { loaded: number; total: number }>();
      const model = await loadModel(gpu, source, {
        tokenizer: PRESETS[src]?.tokenizer !== false,
        onProgress: (p) => {
          done.set(p.file ?? '', { loaded: p.loaded, total: p.total });
          let loaded = 0;
          let total = 0;
          for (const v of done.values()) (loaded += v.loaded), (total += v.total);
          s.set({ progress: { loaded, total } });
        },
      });
      const tokenizer = model.tokenizer;
      if (this.loading !== src + this.models + this.hub) {
        model.destroy(); // a newer `src` took over while this one loaded
        return;
      }
      s.set({ status: 'ready', model, tokenizer, fromCache: source.fromCache.has('model.safetensors') });
      this.dispatchEvent(new CustomEvent<ModelLoadedDetail>('pb-model-loaded', { detail: { name: src, config: model.config }, bubbles: true, composed: true }));
    } catch (e) {
      const message = describeLoadError(e, src);
      s.set({ status: 'error', error: message });
      this.dispatchEvent(new CustomEvent('pb-model-error', { detail: { message }, bubbles: true, composed: true }));
    }
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.session.model?.destroy();
    this.session.set({ model: null, status: 'idle' });
    this.loading = null;
  }

  override render() {
    void this.tick;
    const s = this.session;
    const { loaded, total } = s.progress;
    const mb = (n: number) => (n / 1e6).toFixed(1);
    const pct = total ? Math.floor((100 * loaded) / total) : 0;
    const title = PRESETS[s.name]?.title ?? s.name;
    return html`
      ${s.status === 'loading'
        ? html`<div class="status" part="status" role="status">
              Loading ${title}: ${mb(loaded)}${total ? html` of ${mb(total)} MB (${pct}%)` : ' MB'}
            </div>
            <progress part="progress" max=${total || 1} .value=${total ? loaded : 0}></progress>`
        : nothing}
      ${s.status === 'ready'
        ? html`<div class="status" part="status">
            ${title}: ${s.model!.config.n_layers} layers × ${s.model!.config.n_heads} heads on ${s.model!.gpu.adapterName}${s.fromCache ? ' (weights from this browser\'s cache)' : ''}
          </div>`
        : nothing}
      ${s.status === 'error' ? html`<div class="status error" part="status" role="alert">${s.error}</div>` : nothing}
      <slot></slot>
    `;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'pb-model': PbModel;
  }
}
