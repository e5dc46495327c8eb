/**
 * `<pb-sae>`: loads a sparse autoencoder (or transcoder) for the model of the enclosing
 * `<pb-model>` and provides it, with the reader's feature experiment, to the feature figures
 * inside it (`<pb-features>`, `<pb-feature-acts>`, `<pb-steer>`).
 *
 * ```html
 * <pb-model src="gemma-3-270m" prompt="The capital of France is">
 *   <pb-sae src="hf://google/gemma-scope-2-270m-pt/resid_post_all/layer_12_width_16k_l0_small">
 *     <pb-features k="5"></pb-features>
 *     <pb-steer max="200"></pb-steer>
 *   </pb-sae>
 * </pb-model>
 * ```
 *
 * `src` is an SAE folder URL (relative to the page; SAELens' cfg.json + sae_weights.safetensors,
 * Gemma Scope 2's config.json + params.safetensors, or Gemma Scope's params.npz) or a Hub path
 * `hf://owner/repo/folder`. The SAE is spliced into the figures' runs with its error term unless
 * `error-term="false"`.
 *
 * The reader's feature experiment (the selected feature, the ablated features, the steering
 * coefficient) is part of the enclosing `<pb-model>`'s state, so a link carries it (url-state
 * parts `feature`, `features`, `steer`); `feature`, `ablate` and `steer` set the author's
 * starting point. Without WebGPU the feature figures draw the `<pb-model>`'s snapshot.
 *
 * @fires pb-sae-loaded - `{ name, config }` once the SAE is ready.
 * @fires pb-sae-error - `{ message }` when loading failed.
 * @slot - Feature figures.
 * @csspart status - The line with the loading state or error.
 */
import { LitElement, css, html, nothing } from 'lit';
import { customElement, property, state } from 'lit/decorators.js';
import { ContextConsumer, ContextProvider } from '@lit/context';
import { loadSae } from '../features/sae-load.ts';
import type { SaeConfig } from '../features/sae-config.ts';
import { parseHubPath } from '../model/hub-source.ts';
import { FeatureSession, featureContext } from './feature-session.ts';
import { sessionContext, type Session } from './session.ts';
import { experimentContext, type Experiment } from './experiment.ts';
import { errorMessage } from './latest.ts';
import { palette } from './theme.ts';

export interface SaeLoadedDetail {
  name: string;
  config: SaeConfig;
}

@customElement('pb-sae')
export class PbSae extends LitElement {
  static override styles = [
    palette,
    css`
      :host {
        display: block;
      }
      .status {
        font-size: 0.9em;
        color: var(--_muted);
        margin: 0.25em 0;
      }
      .status.error {
        color: var(--_error);
      }
    `,
  ];

  /** SAE folder URL (relative to the page) or `hf://owner/repo/folder`. */
  @property() src = '';
  /** Splice with the error term (the model unchanged until a feature is touched); "false" turns it off. */
  @property({ attribute: 'error-term', converter: { fromAttribute: (v: string | null) => v !== 'false' } }) errorTerm = true;
  /** The Hugging Face Hub's address for hf:// paths (mirrors, tests). */
  @property() hub = 'https://huggingface.co';
  /** The feature selected at first (e.g. `12`). */
  @property() feature = '';
  /** Features ablated at first (zeroed at every position), e.g. `3,7`. */
  @property() ablate = '';
  /** The selected feature's steering coefficient at first. */
  @property() steer = '';

  @state() private tick = 0;

  readonly features = new FeatureSession();
  protected readonly provider = new ContextProvider(this, { context: featureContext, initialValue: this.features });
  private session: Session | undefined;
  private experiment: Experiment | undefined;
  private loading: string | null = null;
  /** The SAE source last loaded: a new one resets the feature experiment, the first keeps the link's. */
  private loaded: string | null = null;

  constructor() {
    super();
    this.features.addEventListener('change', () => {
      this.tick++;
      this.toState();
    });
    new ContextConsumer(this, {
      context: experimentContext,
      subscribe: true,
      callback: (e) => {
        if (this.experiment === e) return;
        this.experiment?.removeEventListener('change', this.fromState);
        this.experiment = e;
        e.addEventListener('change', this.fromState);
        const authored: Record<string, unknown> = {};
        if (this.feature !== '') authored.feature = this.feature.trim();
        if (this.ablate !== '')
          authored.features = this.ablate
            .split(',')
            .map((f) => f.trim())
            .filter(Boolean);
        if (this.steer !== '') authored.steer = this.steer.trim();
        if (Object.keys(authored).length) e.author(authored);
        this.fromState();
      },
    });
    new ContextConsumer(this, {
      context: sessionContext,
      subscribe: true,
      callback: (s) => {
        this.session?.removeEventListener('change', this.onModel);
        this.session = s;
        s.addEventListener('change', this.onModel);
        this.onModel();
      },
    });
  }

  private readonly onModel = () => void this.load();

  /** The experiment state's feature parts, as the feature session holds them. */
  private readonly fromState = () => {
    const st = this.experiment?.state;
    if (!st) return;
    const f = this.features;
    const selected = st.feature === '' || !/^\d+$/.test(st.feature) ? null : Number(st.feature);
    const ablated = st.features
      .filter((x) => /^\d+$/.test(x))
      .map(Number)
      .sort((a, b) => a - b);
    const steer = Number.isFinite(Number(st.steer)) ? Number(st.steer) : 0;
    if (f.selected !== selected || f.steer !== steer || f.ablated.join() !== ablated.join()) f.set({ selected, ablated, steer });
  };

  /** The feature session's experiment, written to the state (and so the URL). */
  private toState(): void {
    const e = this.experiment;
    if (!e) return;
    const f = this.features;
    e.update({ feature: f.selected === null ? '' : String(f.selected), features: f.ablated.map(String), steer: f.steer === 0 ? '' : String(f.steer) });
  }

  protected override updated(changed: Map<string, unknown>): void {
    if (changed.has('errorTerm') && this.features.errorTerm !== this.errorTerm) this.features.set({ errorTerm: this.errorTerm });
    if (changed.has('src') || changed.has('hub')) void this.load();
  }

  /** Loads `src` on the model's GPU once the model is ready (again when the model changes). */
  private async load(): Promise<void> {
    const model = this.session?.status === 'ready' ? this.session.model : null;
    const f = this.features;
    if (!model || !this.src) {
      if (!model && f.sae) {
        f.sae.destroy();
        f.set({ sae: null, status: 'idle' });
        this.loading = null;
      }
      return;
    }
    const key = `${this.src}|${this.hub}|${modelId(model)}`;
    if (this.loading === key) return;
    this.loading = key;
    f.sae?.destroy();
    // Another SAE's features mean something else: its experiment starts afresh (the first SAE keeps the link's).
    const fresh = this.loaded !== null && this.loaded !== this.src ? { selected: null, ablated: [], steer: 0 } : {};
    this.loaded = this.src;
    f.set({ status: 'loading', name: this.src, sae: null, error: '', progress: { loaded: 0, total: 0 }, ...fresh });
    try {
      const src = parseHubPath(this.src) ? this.src : new URL(this.src, document.baseURI).toString();
      const sae = await loadSae(model.gpu, src, { hub: this.hub, onProgress: (p) => f.set({ progress: { loaded: p.loaded, total: p.total } }) });
      if (this.loading !== key) {
        sae.destroy();
        return;
      }
      f.set({ status: 'ready', sae });
      this.dispatchEvent(new CustomEvent<SaeLoadedDetail>('pb-sae-loaded', { detail: { name: this.src, config: sae.config }, bubbles: true, composed: true }));
    } catch (e) {
      if (this.loading !== key) return;
      const message = `Could not load the SAE "${this.src}": ${errorMessage(e)}`;
      f.set({ status: 'error', error: message });
      this.dispatchEvent(new CustomEvent('pb-sae-error', { detail: { message }, bubbles: true, composed: true }));
    }
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.experiment?.removeEventListener('change', this.fromState);
    this.features.sae?.destroy();
    this.features.set({ sae: null, status: 'idle' });
    this.loading = null;
  }

  override render() {
    void this.tick;
    const f = this.features;
    const c = f.sae?.config;
    const mb = (n: number) => (n / 1e6).toFixed(1);
    return html`
      ${
        f.status === 'loading'
          ? html`<div class="status" part="status" role="status">Loading the SAE ${f.name}: ${mb(f.progress.loaded)}${f.progress.total ? ` of ${mb(f.progress.total)}` : ''} MB</div>`
          : nothing
      }
      ${
        f.status === 'ready' && c
          ? html`<div class="status" part="status">
            ${c.transcoder ? 'Transcoder' : 'SAE'} on ${c.hook_name}${c.transcoder ? html` → ${c.hook_name_out}` : nothing}: ${c.d_sae} features
            (${c.architecture}${c.k ? `, k = ${c.k}` : ''})${f.errorTerm ? ', spliced with its error term' : ', spliced without its error term'}
          </div>`
          : nothing
      }
      ${f.status === 'error' ? html`<div class="status error" part="status" role="alert">${f.error}</div>` : nothing}
      ${
        this.session?.status === 'snapshot' && this.session.snapshot?.features
          ? html`<div class="status" part="status">
            Snapshot of the SAE on ${this.session.snapshot.features.sae.hook}: ${this.session.snapshot.features.sae.d_sae} features (${this.session.snapshot.features.sae.architecture})
          </div>`
          : nothing
      }
      <slot></slot>
    `;
  }
}

const ids = new WeakMap<object, number>();
let next = 1;
function modelId(m: object): number {
  let id = ids.get(m);
  if (id === undefined) ids.set(m, (id = next++));
  return id;
}

declare global {
  interface HTMLElementTagNameMap {
    'pb-sae': PbSae;
  }
}
