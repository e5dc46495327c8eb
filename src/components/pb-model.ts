/**
 * `<pb-model>`: loads a model and provides it, with the page's experiment state, to the figures
 * inside it.
 *
 * ```html
 * <pb-model id="fig-copy" src="induction-2l" models="../models/" prompt="0,200,290" metric="loss:1:-1"
 *   url-state="prompt ablate" snapshot="snapshots/fig-copy.json">
 *   <pb-attention></pb-attention>
 * </pb-model>
 * ```
 *
 * `src` is a preset (`induction-2l`, `gpt2`) or a model folder URL. Weights are kept in the
 * browser's Cache API, so a second visit does not download them again.
 *
 * URL state: the experiment is kept in the page's URL under this element's `id` (see
 * experiment.ts), and `url-state` lists what a link may change: `prompt corrupt ablate mode metric
 * site heads` (the default), any subset, `model` as well (a preset name only), or `none`. The model
 * never changes from a link unless `url-state` lists `model`.
 *
 * Without WebGPU, the figures draw from `snapshot` (a file `patchbay snapshot` wrote), read-only,
 * under a message that says what is missing and where the page runs live.
 *
 * Errors (a download that failed, a model Patchbay cannot run) are shown as errors, in their own
 * part, with a "Try again" button. Download progress is indeterminate while the size is unknown,
 * and gives the time left when it is known.
 *
 * @fires pb-model-loaded - `{ name, config }` once the model is ready.
 * @fires pb-model-error - `{ message }` when loading failed.
 * @slot - Figures that use the model.
 * @csspart status - The line with the loading state or the model's description.
 * @csspart progress - The download progress bar.
 * @csspart error - The error box (an alert), with its retry button.
 * @csspart retry - The "Try again" button.
 * @csspart notice - Notices about the link (heads dropped, parts ignored).
 * @csspart no-webgpu - The message shown when the browser has no WebGPU.
 */
import { LitElement, css, html, nothing } from 'lit';
import { customElement, property, state } from 'lit/decorators.js';
import { ContextProvider } from '@lit/context';
import { loadModel } from '../hooks/load.ts';
import { NoWebGPUError } from '../gpu/errors.ts';
import { cachedUrlModelSource } from '../model/cached-source.ts';
import { normalizeConfig } from '../model/normalize-config.ts';
import { loadTokenizer } from '../model/tokenizer.ts';
import { readSnapshot } from '../experiments/snapshot.ts';
import {
  SPEC_VERSION,
  figureInterventions,
  figureSpecInterventions,
  isBatch,
  promptText,
  type ExperimentKind,
  type ExperimentSpec,
  type ModelRef,
  type Prompts,
  type SaeHookNames,
} from '../experiments/spec.ts';
import { Experiment, experimentContext, parseUrlParts, type ExperimentState, type UrlPart } from './experiment.ts';
import { DEFAULT_HUB, PRESETS, resolveModelUrl } from '../model/presets.ts';
import { Session, sessionContext } from './session.ts';
import { pageGpu } from './gpu.ts';
import { palette } from './theme.ts';
import { describeProgress } from './progress.ts';
import { describeLoadError } from './load-error.ts';

export { describeLoadError };

export interface ModelLoadedDetail {
  name: string;
  config: import('../model/config.ts').ModelConfig;
}

@customElement('pb-model')
export class PbModel extends LitElement {
  static override styles = [
    palette,
    css`
      :host {
        display: block;
        font: inherit;
      }
      .status {
        font-size: 0.9em;
        color: var(--_muted);
        margin: 0.25em 0;
      }
      progress {
        width: 100%;
        max-width: 28em;
        height: 0.8em;
        accent-color: var(--_accent);
      }
      /* Errors have their own part and a look of their own, so a page's ::part(status) rules cannot make them read as status text. */
      .alert,
      .nogpu {
        display: flex;
        flex-wrap: wrap;
        align-items: center;
        gap: 0.4rem 0.8rem;
        margin: 0.5em 0;
        padding: 0.6em 0.8em;
        border: 1px solid var(--_error);
        border-left: 4px solid var(--_error);
        border-radius: 6px;
        background: var(--_error-bg);
        color: var(--_error);
        font: 0.92rem/1.45 var(--pb-font, system-ui, sans-serif);
      }
      .alert::before {
        content: '⚠';
        font-weight: 700;
      }
      .alert .msg {
        flex: 1 1 16rem;
        color: var(--_fg);
      }
      .nogpu {
        border-color: var(--_warn);
        background: var(--_warn-bg);
        color: var(--_fg);
      }
      .nogpu strong {
        color: var(--_fg);
      }
      button {
        font: inherit;
        font-size: 0.9em;
        padding: 0.25em 0.8em;
        border-radius: 6px;
        border: 1px solid currentColor;
        background: var(--_bg);
        color: var(--_error);
        cursor: pointer;
      }
      .notice {
        font-size: 0.88em;
        margin: 0.4em 0;
        padding: 0.4em 0.7em;
        border-left: 3px solid var(--_warn);
        background: var(--_warn-bg);
        color: var(--_fg);
      }
    `,
  ];

  /** Preset name or model folder URL. */
  @property() src = '';
  /** Base URL of local presets' folders, relative to the page. */
  @property() models = 'models/';
  /** Hugging Face Hub host for Hub presets. */
  @property() hub = DEFAULT_HUB;
  /** `none` for a model folder without a tokenizer (prompts are ids): no tokenizer.json is requested. */
  @property() tokenizer = '';
  /** Initial prompt (text, or ids for a model without a tokenizer); a link may change it (url-state). */
  @property() prompt = '';
  /** Initial corrupted prompt for patching figures. */
  @property() corrupt = '';
  /** Initial metric spec, e.g. `logit-diff:-1:247:72` or `loss:0:-1`. */
  @property() metric = '';
  /** Initial patching site. */
  @property() site = 'resid_pre';
  /** Initial heads shown by attention figures, e.g. `0.2,1.3`. */
  @property() heads = '';
  /** Initial ablated heads, e.g. `0.2,1.3` (a link may change them: url-state `ablate`). */
  @property() ablate = '';
  /** How heads are ablated: `zero` (default) or `mean` (each head's mean over the prompt). */
  @property() mode: 'zero' | 'mean' = 'zero';
  /** What a link may change (see above); read once, when the element connects. */
  @property({ attribute: 'url-state' }) urlStateParts: string | null = null;
  /** A snapshot file (`patchbay snapshot`) the figures draw from when the browser has no WebGPU. */
  @property() snapshot = '';
  /** The script tag's URL in "copy embed code" (default: where patchbay.js was loaded from). */
  @property({ attribute: 'embed-src' }) embedSrc = '';

  /**
   * A Hugging Face access token for gated repositories (a property, never an attribute, so it
   * stays out of the page's HTML and URL). Sent as `Authorization: Bearer …` with every download.
   */
  @property({ attribute: false }) token = '';

  @state() private tick = 0;
  /** Notices about the link or the state (dropped heads). */
  @state() private notices: string[] = [];

  readonly session = new Session();
  private experiment: Experiment | null = null;
  // Providers register themselves with this element as reactive controllers.
  protected readonly sessionProvider = new ContextProvider(this, { context: sessionContext, initialValue: this.session });
  private loading: string | null = null;
  private progressTimer: ReturnType<typeof setInterval> | undefined;

  constructor() {
    super();
    // Figures listen to the session's own change events; this element only redraws its status.
    this.session.addEventListener('change', () => this.tick++);
  }

  /** True when this element keeps any state in the URL. */
  get urlState(): boolean {
    return (this.experiment?.urlSync?.parts.length ?? 0) > 0;
  }

  /** What links may change here (the parsed `url-state`). */
  get urlParts(): readonly UrlPart[] {
    return this.experiment?.urlSync?.parts ?? [];
  }

  override connectedCallback(): void {
    super.connectedCallback();
    if (this.experiment) return;
    const { parts, unknown } = parseUrlParts(this.getAttribute('url-state') ?? this.urlStateParts);
    if (unknown.length) console.warn(`pb-model: url-state lists unknown parts ${unknown.join(', ')} (parts: prompt corrupt ablate mode metric site heads model, or none)`);
    const browser = typeof location !== 'undefined';
    const prefix = this.id ? `${this.id}.` : '';
    // A link may name the model (`?id.model=pythia-70m`, as <pb-model-picker> writes it), if the author allows it.
    if (browser && parts.includes('model')) {
      const fromUrl = new URLSearchParams(location.search).get(`${prefix}model`);
      if (fromUrl && PRESETS[fromUrl]) this.src = fromUrl;
      else if (fromUrl) this.notices = [...this.notices, `The link names the model "${fromUrl}", which is not a preset here; showing ${this.src}.`];
    }
    this.experiment = new Experiment(
      {
        prompt: this.prompt,
        corrupt: this.corrupt,
        metric: this.metric,
        site: this.site,
        heads: this.heads ? this.heads.split(',') : [],
        ablate: this.ablate ? this.ablate.split(',').map((h) => h.trim()) : [],
        mode: this.mode === 'mean' ? 'mean' : 'zero',
      },
      browser && parts.length ? { prefix, parts } : null,
    );
    // The provider registers itself with this element as a reactive controller.
    new ContextProvider(this, { context: experimentContext, initialValue: this.experiment });
  }

  /** The experiment state this element provides. */
  get state(): Experiment {
    return this.experiment!;
  }

  protected override updated(changed: Map<string, unknown>): void {
    if (changed.has('src') || changed.has('models') || changed.has('hub')) void this.load();
  }

  /** Loads the model again after an error ("Try again"). */
  retry(): void {
    this.loading = null;
    void this.load();
  }

  private async load(): Promise<void> {
    const src = this.src;
    const key = src + this.models + this.hub;
    if (!src || this.loading === key) return;
    this.loading = key;
    const s = this.session;
    s.model?.destroy();
    s.set({ status: 'loading', name: src, model: null, tokenizer: null, error: '', progress: { loaded: 0, total: 0, started: performance.now() }, fromCache: false, snapshot: null, config: null });
    // Redraw the time left once a second even when no bytes arrive.
    clearInterval(this.progressTimer);
    this.progressTimer = setInterval(() => this.tick++, 1000);
    try {
      let gpu;
      try {
        gpu = await pageGpu();
      } catch (e) {
        if (e instanceof NoWebGPUError) return await this.showSnapshot(e);
        throw e;
      }
      if (this.loading !== key) return; // superseded before it fetched anything
      const url = resolveModelUrl(src, this.models, this.hub, document.baseURI);
      const token = this.token;
      const authed: typeof fetch | undefined = token
        ? (input, init) => {
            const headers = new Headers(init?.headers);
            headers.set('Authorization', `Bearer ${token}`);
            return fetch(input, { ...init, headers });
          }
        : undefined;
      const source = cachedUrlModelSource(url, authed ? { fetch: authed } : {});
      const files = new Map<string, { loaded: number; total: number }>();
      let started = 0;
      const model = await loadModel(gpu, source, {
        tokenizer: PRESETS[src]?.tokenizer !== false && this.tokenizer !== 'none',
        onProgress: (p) => {
          // The time left is reckoned from the first report (the download under way), not from
          // the start of load(): getting a GPU device first would make every estimate too long.
          if (!files.size) started = performance.now();
          files.set(p.file ?? '', { loaded: p.loaded, total: p.total });
          let loaded = 0;
          let total = 0;
          let unknown = false;
          for (const v of files.values()) {
            loaded += v.loaded;
            total += v.total;
            if (!v.total) unknown = true; // one file of unknown size: the total is unknown
          }
          s.set({ progress: { loaded, total: unknown ? 0 : total, started } });
        },
      });
      const tokenizer = model.tokenizer;
      if (this.loading !== src + this.models + this.hub) {
        model.destroy(); // a newer `src` took over while this one loaded
        return;
      }
      s.set({ status: 'ready', model, tokenizer, fromCache: source.fromCache.has('model.safetensors') });
      this.dropMissingHeads();
      this.dispatchEvent(new CustomEvent<ModelLoadedDetail>('pb-model-loaded', { detail: { name: src, config: model.config }, bubbles: true, composed: true }));
    } catch (e) {
      const message = describeLoadError(e, src);
      s.set({ status: 'error', error: message });
      this.dispatchEvent(new CustomEvent('pb-model-error', { detail: { message }, bubbles: true, composed: true }));
    } finally {
      clearInterval(this.progressTimer);
    }
  }

  /** No WebGPU: the figures draw the snapshot, if the page has one; else what needs no weights. */
  private async showSnapshot(e: NoWebGPUError): Promise<void> {
    const s = this.session;
    const message = describeLoadError(e, this.src);
    if (!this.snapshot) return this.showWeightless(message);
    try {
      const res = await fetch(new URL(this.snapshot, document.baseURI));
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const snap = readSnapshot(await res.json());
      this.experiment!.update(stateOfSpec(snap.spec, this.experiment!.state));
      s.set({ status: 'snapshot', snapshot: snap, error: message });
    } catch (err) {
      s.set({ status: 'error', error: `${message} The page's snapshot (${this.snapshot}) could not be read: ${(err as Error).message}.` });
    }
  }

  /**
   * No WebGPU and no snapshot: the model's config.json and tokenizer (small files; never the
   * weights) are read, so figures show the prompt's tokens and the heads' layout. When even those
   * cannot be read, the message stands alone.
   */
  private async showWeightless(message: string): Promise<void> {
    const s = this.session;
    try {
      const source = cachedUrlModelSource(resolveModelUrl(this.src, this.models, this.hub, document.baseURI));
      const bytes = await source.file('config.json');
      if (!bytes) throw new Error('no config.json');
      const config = normalizeConfig(JSON.parse(new TextDecoder().decode(bytes)));
      const tokenizer = PRESETS[this.src]?.tokenizer !== false && this.tokenizer !== 'none' ? await loadTokenizer(source) : null;
      s.set({ status: 'weightless', error: message, tokenizer, config: { n_layers: config.n_layers, n_heads: config.n_heads, d_vocab: config.d_vocab } });
      this.dropMissingHeads();
    } catch {
      s.set({ status: 'error', error: message });
    }
  }

  /** Heads in the state (a link's `ablate` or `heads`) that this model does not have are dropped, with a notice. */
  private dropMissingHeads(): void {
    const shape = this.session.shape;
    const ex = this.experiment;
    if (!shape || !ex) return;
    const fits = (h: string) => {
      const m = /^(\d+)\.(\d+)$/.exec(h.trim());
      return !!m && Number(m[1]) < shape.n_layers && Number(m[2]) < shape.n_heads;
    };
    const st = ex.state;
    const bad = [...new Set([...st.ablate, ...st.heads].filter((h) => !fits(h)))];
    if (!bad.length) return;
    ex.update({ ablate: st.ablate.filter(fits), heads: st.heads.filter(fits) });
    this.notices = [...this.notices, `Ignored ${bad.length === 1 ? 'head' : 'heads'} ${bad.join(', ')} from the link: this model has layers 0–${shape.n_layers - 1} and heads 0–${shape.n_heads - 1}.`];
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    clearInterval(this.progressTimer);
    this.session.model?.destroy();
    this.session.set({ model: null, status: 'idle' });
    this.loading = null;
  }

  /** The model as a spec's `model`. */
  modelRef(): ModelRef {
    const p = PRESETS[this.src];
    if (p) return { preset: this.src };
    return { url: new URL(this.src, document.baseURI).toString() };
  }

  /**
   * The experiment as a spec: `experiment` says what a figure computes from it; a feature figure
   * passes its SAE (`sae`), so the spec splices it and carries the feature ablations and steering.
   */
  specFor(experiment: ExperimentKind, sae?: { url: string; errorTerm: boolean; hooks: SaeHookNames }): ExperimentSpec {
    const st = this.experiment!.state;
    const ids = (p: string): string | number[] =>
      this.session.tokenizer || !/^[\d\s,]+$/.test(p)
        ? p
        : p
            .split(/[\s,]+/)
            .filter(Boolean)
            .map(Number);
    const spec: ExperimentSpec = { patchbay: SPEC_VERSION, model: this.modelRef(), prompts: { clean: ids(st.prompt) }, experiment };
    if (sae) spec.sae = sae.errorTerm ? { url: sae.url } : { url: sae.url, error_term: false };
    if (st.corrupt && (experiment.kind === 'patch' || experiment.kind === 'attribute')) spec.prompts.corrupt = ids(st.corrupt);
    if (experiment.kind === 'ablate') {
      const steer = Number(st.steer);
      const list = figureSpecInterventions(
        {
          heads: st.ablate,
          mode: st.mode,
          features: sae ? st.features.map(Number) : [],
          steer: sae && st.feature !== '' && Number.isFinite(steer) && steer !== 0 ? { feature: Number(st.feature), coeff: steer } : null,
        },
        sae?.hooks ?? null,
      );
      if (list.length) spec.interventions = list;
    }
    const view: NonNullable<ExperimentSpec['view']> = {};
    if (st.heads.length) view.heads = [...st.heads];
    if (sae && st.feature !== '') view.feature = Number(st.feature);
    if (Object.keys(view).length) spec.view = view;
    return spec;
  }

  /**
   * Sets the experiment from a spec (a figure's "Load spec"). A spec for another model switches
   * the model only where `url-state` allows `model`; the notice says so otherwise. Interventions
   * the figures cannot show (anything but head ablations, feature ablations and one feature's
   * steering) are left out, with a notice.
   */
  loadSpec(spec: ExperimentSpec): void {
    const patch = stateOfSpec(spec, this.experiment!.state);
    if (!figureInterventions(spec)) {
      this.notices = [
        ...this.notices,
        'The spec has interventions these figures cannot show (they show head ablations, feature ablations and one feature steered); its prompts and metric were loaded. patchbay run runs it whole.',
      ];
    }
    const mine = JSON.stringify(this.modelRef());
    if (JSON.stringify(spec.model) !== mine) {
      if ('preset' in spec.model && this.urlParts.includes('model') && PRESETS[spec.model.preset]) this.src = spec.model.preset;
      else this.notices = [...this.notices, `The spec is for another model (${JSON.stringify(spec.model)}); this figure runs ${this.src}, so only the prompts, interventions and metric were loaded.`];
    }
    this.experiment!.update(patch);
    this.dropMissingHeads();
  }

  /** A link to the page with this model's current state (whatever url-state allows to be read back). */
  linkUrl(): string {
    return location.href;
  }

  /**
   * HTML that embeds this model with its current state and the figure `figure` (e.g.
   * `<pb-patching normalize></pb-patching>`): every part of the state is an attribute (the
   * prompts, metric, site, heads shown, ablated heads and their mode; a feature figure's SAE,
   * selected, ablated and steered features on its `<pb-sae>`), so the embedded figure opens as
   * the reader sees it now. `url-state="none"`: a link on the embedding page cannot change it.
   */
  embedCode(figure: string, sae?: { src: string; errorTerm: boolean } | null): string {
    const st = this.experiment!.state;
    const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
    const abs = (u: string) => new URL(u, document.baseURI).toString();
    const preset = PRESETS[this.src];
    const src = preset ? this.src : abs(this.src);
    const attrs: [string, string][] = [['src', src]];
    if (preset?.local) attrs.push(['models', abs(this.models)]);
    if (preset?.repo && this.hub !== DEFAULT_HUB) attrs.push(['hub', this.hub]);
    if (this.tokenizer) attrs.push(['tokenizer', this.tokenizer]);
    for (const k of ['prompt', 'corrupt', 'metric', 'site'] as const) if (st[k] && !(k === 'site' && st.site === 'resid_pre')) attrs.push([k, st[k]]);
    if (st.heads.length) attrs.push(['heads', st.heads.join(',')]);
    if (st.ablate.length) attrs.push(['ablate', st.ablate.join(',')]);
    if (st.ablate.length && st.mode !== 'zero') attrs.push(['mode', st.mode]);
    if (this.snapshot) attrs.push(['snapshot', abs(this.snapshot)]);
    attrs.push(['url-state', 'none']);
    const line = (tag: string, a: [string, string][]) => `<${tag}${a.map(([k, v]) => ` ${k}="${esc(v)}"`).join('')}>`;
    const script = this.embedSrc ? abs(this.embedSrc) : (libraryUrl ?? 'patchbay.js');
    let inner = `  ${figure}`;
    if (sae) {
      const sa: [string, string][] = [['src', /^hf:\/\//.test(sae.src) ? sae.src : abs(sae.src)]];
      if (!sae.errorTerm) sa.push(['error-term', 'false']);
      if (st.feature !== '') sa.push(['feature', st.feature]);
      if (st.features.length) sa.push(['ablate', st.features.join(',')]);
      if (st.steer !== '' && Number(st.steer) !== 0) sa.push(['steer', st.steer]);
      inner = `  ${line('pb-sae', sa)}\n    ${figure}\n  </pb-sae>`;
    }
    return `<script type="module" src="${esc(script)}"></script>\n${line('pb-model', attrs)}\n${inner}\n</pb-model>`;
  }

  private renderStatus() {
    const s = this.session;
    const title = PRESETS[s.name]?.title ?? s.name;
    if (s.status === 'loading') {
      const { text, fraction } = describeProgress(s.progress, performance.now());
      return html`<div class="status" part="status" role="status">Loading ${title}: ${text}</div>
        ${
          fraction === null
            ? html`<progress part="progress" aria-label=${`Loading ${title}`}></progress>`
            : html`<progress part="progress" aria-label=${`Loading ${title}`} max="1" .value=${fraction}></progress>`
        }`;
    }
    if (s.status === 'ready') {
      return html`<div class="status" part="status">
        ${title}: ${s.model!.config.n_layers} layers × ${s.model!.config.n_heads} heads on ${s.model!.gpu.adapterName}${s.fromCache ? " (weights from this browser's cache)" : ''}
      </div>`;
    }
    if (s.status === 'snapshot' || s.status === 'weightless' || (s.status === 'error' && /WebGPU/.test(s.error) && !/download|Unsupported/i.test(s.error))) {
      return html`<div class="nogpu" part="no-webgpu" role="note">
        <span
          ><strong>This browser has no WebGPU</strong>, which the figures below need to run ${title} live.
          ${
            s.status === 'snapshot'
              ? html`They show a snapshot computed ahead of time, for the article's own settings: clicking and editing will not change them.`
              : s.status === 'weightless'
                ? html`This page has no snapshot of their results, so they show only what needs no weights: the prompt as the model's tokenizer splits it, and the layout of its ${s.config!.n_layers} × ${s.config!.n_heads} attention heads.`
                : html`This page has no snapshot to show instead.`
          }
          Open it in a browser with WebGPU (Chrome or Edge 113 or later on Windows, macOS and ChromeOS; Safari 26; Firefox 141 on Windows) to run it.
          <span class="detail">(${s.error})</span></span
        >
      </div>`;
    }
    if (s.status === 'error') {
      return html`<div class="alert" part="error" role="alert">
        <span class="msg">${s.error}</span>
        <button type="button" part="retry" @click=${() => this.retry()}>Try again</button>
      </div>`;
    }
    return nothing;
  }

  override render() {
    void this.tick;
    return html`
      ${this.renderStatus()}
      ${this.notices.map((n) => html`<div class="notice" part="notice" role="status">${n}</div>`)}
      <slot></slot>
    `;
  }
}

/** One prompt of a spec as figures keep it (a batch's first row: figures show one prompt). */
const firstPrompt = (p: Prompts): string => promptText(isBatch(p) ? p[0] : p);

/** The figures' state for a spec: prompts, metric, site, heads shown, and the interventions figures can show. */
function stateOfSpec(spec: ExperimentSpec, now: Readonly<ExperimentState>): Partial<ExperimentState> {
  const e = spec.experiment;
  const f = figureInterventions(spec);
  const patch: Partial<ExperimentState> = { prompt: firstPrompt(spec.prompts.clean) };
  if (spec.prompts.corrupt !== undefined) patch.corrupt = firstPrompt(spec.prompts.corrupt);
  if ('metric' in e && e.metric) patch.metric = e.metric;
  if ('site' in e) patch.site = e.site;
  if (spec.view?.heads) patch.heads = [...spec.view.heads];
  if (f) {
    patch.ablate = f.heads;
    patch.mode = f.heads.length ? f.mode : now.mode;
    patch.features = f.features.map(String);
    patch.steer = f.steer ? String(f.steer.coeff) : '';
    if (f.steer) patch.feature = String(f.steer.feature);
  }
  if (spec.view?.feature !== undefined) patch.feature = String(spec.view.feature);
  return patch;
}

/** Where the library bundle was loaded from, when it was (dist/patchbay.js sets it). */
let libraryUrl: string | null = null;
export function setLibraryUrl(url: string): void {
  libraryUrl = url;
}

declare global {
  interface HTMLElementTagNameMap {
    'pb-model': PbModel;
  }
}
