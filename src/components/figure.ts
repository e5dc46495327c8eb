/**
 * Base class of Patchbay's figures: receives the session (model, tokenizer, status) and the
 * experiment state from the nearest `<pb-model>` through `@lit/context`, and re-renders when
 * either changes. Subclasses override `stateChanged()` to start GPU work (a run, a sweep) and
 * `render()` to draw what came back; `PbComputedFigure` below does the bookkeeping of a figure
 * that computes one thing at a time.
 */
import { LitElement, html, nothing, type PropertyValues } from 'lit';
import { state } from 'lit/decorators.js';
import { MetricSpecError } from '../experiments/metric-spec.ts';
import type { ExperimentKind } from '../experiments/spec.ts';
import { ExportMenu, stackPictures, type ExportSae, type Exportable } from './export-menu.ts';
import type { PbHeatmap } from './heatmap.ts';
import { ContextConsumer } from '@lit/context';
import type { Model } from '../hooks/model.ts';
import { experimentContext, type Experiment, type ExperimentState } from './experiment.ts';
import { Latest, errorMessage } from './latest.ts';
import { parseHeadList, type HeadRef } from './live-run.ts';
import { sessionContext, type Session } from './session.ts';

export abstract class PbFigure extends LitElement {
  @state() protected session: Session | undefined;
  @state() protected experiment: Experiment | undefined;
  /** Bumped on every session or experiment change, so `render` runs again. */
  @state() protected revision = 0;

  private readonly onChange = () => {
    this.revision++;
    this.stateChanged();
  };

  constructor() {
    super();
    new ContextConsumer(this, {
      context: sessionContext,
      subscribe: true,
      callback: (s) => {
        this.swap(this.session, s);
        this.session = s;
        this.onChange();
      },
    });
    new ContextConsumer(this, {
      context: experimentContext,
      subscribe: true,
      callback: (e) => {
        this.swap(this.experiment, e);
        this.experiment = e;
        this.onChange();
      },
    });
  }

  /** Moves the change listener from the old provided object to the new one. */
  private swap(old: EventTarget | undefined, next: EventTarget | undefined): void {
    if (old === next) return;
    old?.removeEventListener('change', this.onChange);
    next?.addEventListener('change', this.onChange);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.session?.removeEventListener('change', this.onChange);
    this.experiment?.removeEventListener('change', this.onChange);
  }

  override connectedCallback(): void {
    super.connectedCallback();
    this.session?.addEventListener('change', this.onChange);
    this.experiment?.addEventListener('change', this.onChange);
  }

  /** The model when it is loaded. */
  protected get model() {
    return this.session?.status === 'ready' ? this.session.model : null;
  }

  /** Called after the session or the experiment state changed. */
  protected stateChanged(): void {}

  /** True when the figures draw from a snapshot (no WebGPU): read-only. */
  protected get fromSnapshot(): boolean {
    return this.session?.status === 'snapshot';
  }

  // ---- Export (export-menu.ts): figures override what they have ----------------------------
  protected exportName(): string {
    return this.localName.replace(/^pb-/, '');
  }
  protected exportTable(): { header: string[]; rows: (string | number)[][] } | null {
    return null;
  }
  protected exportJson(): unknown {
    return { state: this.experiment?.state ?? null };
  }
  /** The figure's heatmaps, for PNG and SVG. */
  protected exportHeatmaps(): PbHeatmap[] {
    return [...this.renderRoot.querySelectorAll('pb-heatmap')];
  }
  protected exportPictures(): { svg(): string; png(): Promise<Blob> } | null {
    return stackPictures(this.exportHeatmaps());
  }
  protected exportExperiment(): ExperimentKind | null {
    return null;
  }
  /** The SAE a feature figure's spec splices (feature figures override it). */
  protected exportSae(): ExportSae | null {
    return null;
  }
  /**
   * The figure's tag for embed code, with the attributes it has now: its declared properties as
   * they are (a reader's choice such as the heads picked, or a value a script set, even where no
   * attribute was written), then any other attribute of the page's markup (`id`, `class`, …).
   */
  protected exportTag(): string {
    return figureTag(this);
  }

  private menu: ExportMenu | null = null;

  /** The figure's "Export" menu (put it in the toolbar). */
  protected renderExport() {
    const exportName = () => this.exportName();
    const source: Exportable = {
      get name() {
        return exportName();
      },
      table: () => this.exportTable(),
      json: () => this.exportJson(),
      pictures: () => this.exportPictures(),
      hasPictures: this.localName !== 'pb-prompt',
      experiment: () => this.exportExperiment(),
      sae: () => this.exportSae(),
      tag: () => this.exportTag(),
    };
    this.menu ??= new ExportMenu(this, source);
    return this.menu.render();
  }
}

/** What a computing figure reads for its job (see `PbComputedFigure.readInputs`). */
export interface FigureInputs {
  model: Model;
  session: Session;
  state: Readonly<ExperimentState>;
  /** The prompt's token ids. */
  ids: number[];
  /** The heads the state ablates. */
  ablate: HeadRef[];
}

/**
 * A figure that computes one thing at a time on the GPU: the newest `job` wins (see `Latest`),
 * `busy` is true while it runs (and is shown as `aria-busy`), `error` holds the message of what
 * went wrong, and leaving the page cancels the job. Subclasses implement `refresh()`, which runs
 * on every session or experiment change: read the state (`readInputs`), then `compute`.
 */
export abstract class PbComputedFigure<T> extends PbFigure {
  @state() protected busy = false;
  @state() protected error = '';
  /** A metric or position that no longer fits the prompt: said plainly, not as an error. */
  @state() protected notice = '';

  protected readonly job = new Latest<T>();

  protected override stateChanged(): void {
    void this.refresh();
  }

  /** Reads the state and starts the job for it (or keeps the one that already computes it). */
  protected abstract refresh(): Promise<void>;

  /** What `aria-busy` says. */
  protected isBusy(): boolean {
    return this.busy;
  }

  protected override updated(changed: PropertyValues): void {
    super.updated(changed);
    this.setAttribute('aria-busy', String(this.isBusy()));
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.stop();
  }

  /** Cancels the job; its outcome is dropped. */
  protected stop(): void {
    this.job.cancel();
    this.busy = false;
  }

  /**
   * Stops the job and shows what went wrong; a metric that does not apply to this prompt is a
   * notice, not an error. Results already drawn stay, dimmed as out of date (`renderStale`).
   * Returns null, for `return this.fail(e)`.
   */
  protected fail(e: unknown): null {
    this.stop();
    if (e instanceof MetricSpecError && e.notApplicable) {
      this.notice = `This figure's metric no longer applies to the prompt: ${e.message}`;
      this.error = '';
    } else {
      this.error = errorMessage(e);
      this.notice = '';
    }
    return null;
  }

  /** True when what is drawn was computed for another state (an error or notice came since). */
  protected get stale(): boolean {
    return !!(this.error || this.notice);
  }

  /** The error or notice line, in its own part (`error` is styled as an error whatever the page does to `status`). */
  protected renderProblem() {
    if (this.error) return html`<div class="error" part="error" role="alert">${this.error}</div>`;
    if (this.notice) return html`<div class="notice" part="notice" role="status">${this.notice}</div>`;
    return nothing;
  }

  /** Results drawn for an older state: dimmed, hidden from assistive tools, labelled. */
  protected renderResult(content: unknown) {
    if (content === nothing || content === null || content === undefined) return nothing;
    const stale = this.stale;
    return html`${stale ? html`<div class="stale-note">Out of date: these results are for the previous settings.</div>` : nothing}
      <div class="result ${stale ? 'stale' : ''}" data-stale=${stale ? 'true' : 'false'} aria-hidden=${stale ? 'true' : 'false'}>${content}</div>`;
  }

  /**
   * The model, the prompt's token ids and the ablated heads, parsed from the state, with what
   * `more` reads (parsed after the prompt, before the ablation list). Null when the model, the
   * experiment or the session is not there yet, or when something does not parse (`fail` has
   * then shown why).
   */
  protected readInputs(): FigureInputs | null;
  protected readInputs<X>(more: (model: Model, ids: number[]) => X): (FigureInputs & { more: X }) | null;
  protected readInputs<X>(more?: (model: Model, ids: number[]) => X): (FigureInputs & { more: X | undefined }) | null {
    const model = this.model;
    const session = this.session;
    const state = this.experiment?.state;
    if (!model || !state || !session) return null;
    try {
      const ids = session.tokenize(state.prompt);
      const extra = more?.(model, ids);
      return { model, session, state, ids, ablate: parseHeadList(state.ablate, model.config), more: extra };
    } catch (e) {
      return this.fail(e);
    }
  }

  /**
   * Runs `fn` as the job for `key`, unless the newest job already computes that key, with `busy`
   * set while it runs. When it ends (and no newer job or `stop` took over), `error` is set from
   * its outcome (cleared on success) and `done` gets the value, or `failed` runs, in the same
   * update.
   */
  protected async compute(key: string, fn: (signal: AbortSignal) => Promise<T>, done: (value: T) => void, failed?: () => void): Promise<void> {
    if (this.job.has(key)) return;
    this.busy = true;
    const outcome = await this.job.run(key, fn);
    if (!outcome) return;
    this.busy = false;
    if (outcome.ok) {
      this.error = '';
      this.notice = '';
      done(outcome.value);
    } else {
      this.fail(outcome.error);
      failed?.();
    }
  }
}

/** An attribute's value in double quotes. */
const escapeAttr = (v: string) => v.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

/**
 * `<tag a="…" b></tag>` for `el` as it is now. Each declared property (lit's `elementProperties`,
 * not `@state`) that differs from a fresh element's default, or whose attribute the markup has,
 * is written through its converter (a Boolean as a bare name, absent when false); then the
 * markup's other attributes, except `aria-busy` (the figure's own, while it computes).
 */
export function figureTag(el: LitElement): string {
  const cls = el.constructor as typeof LitElement;
  const fresh = document.createElement(el.localName) as unknown as Record<PropertyKey, unknown>;
  const own = el as unknown as Record<PropertyKey, unknown>;
  const same = (a: unknown, b: unknown) => a === b || (typeof a === 'object' && JSON.stringify(a) === JSON.stringify(b));
  const attrs: string[] = [];
  const written = new Set<string>(['aria-busy']);
  for (const [name, opts] of cls.elementProperties) {
    if (opts.state || opts.attribute === false || typeof name !== 'string') continue;
    const attr = typeof opts.attribute === 'string' ? opts.attribute : name.toLowerCase();
    written.add(attr);
    const value = own[name];
    if (same(value, fresh[name]) && !el.hasAttribute(attr)) continue;
    const convert = typeof opts.converter === 'object' ? opts.converter.toAttribute : undefined;
    const text: unknown = convert ? convert(value, opts.type) : opts.type === Boolean ? (value ? '' : null) : value !== null && typeof value === 'object' ? JSON.stringify(value) : value;
    if (text === null || text === undefined) continue;
    attrs.push(text === '' && opts.type === Boolean ? attr : `${attr}="${escapeAttr(String(text))}"`);
  }
  for (const a of el.attributes) if (!written.has(a.name)) attrs.push(a.value === '' ? a.name : `${a.name}="${escapeAttr(a.value)}"`);
  return `<${el.localName}${attrs.length ? ' ' + attrs.join(' ') : ''}></${el.localName}>`;
}
