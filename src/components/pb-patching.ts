/**
 * `<pb-patching>`: activation patching. For every cell of the chosen site's grid, the corrupted
 * prompt runs with one activation taken from the clean prompt's run, and the cell shows the
 * experiment's metric (`patchingSweep`). Diverging colours centred at 0; layers down, positions
 * (clean tokens) or heads across. Sites with more axes are drawn as one heatmap per component
 * (`block_every`, `head_all_pos_every`), per layer picked from a menu (`*_by_pos`: heads down,
 * positions across), or both (`head_by_pos_every`); `pattern_dest_src` as one destination ×
 * source heatmap per head of the chosen layer.
 *
 * ```html
 * <pb-patching normalize></pb-patching>
 * ```
 * The sweep starts when the prompt, corrupted prompt, metric or site changes; a newer one
 * cancels the one before.
 *
 * @fires pb-patching-done - `{ site, shape, values, clean, corrupt }` when a sweep finishes (values row-major over shape).
 * @csspart site - The site menu.
 * @csspart progress - The progress bar.
 * @csspart summary - The clean and corrupted metric line.
 * @csspart heatmap - Each heatmap (a `<pb-heatmap>`).
 * @csspart status - Messages and errors.
 */
import { css, html, nothing } from 'lit';
import { customElement, property, state } from 'lit/decorators.js';
import { PATCH_SITES, patchingSweep, type Grid, type PatchSite } from '../experiments/patching.ts';
import { metricBetter, parseMetricSyntax, resolveMetricSpec, specToMetric } from '../experiments/metric-spec.ts';
import { PbComputedFigure } from './figure.ts';
import { figureStyles } from './figure-styles.ts';
import { formatValue } from './heatmap.ts';
import './heatmap.ts';
import { modelKey } from './live-run.ts';
import { positionLabel } from './token-text.ts';

export interface PatchingDoneDetail {
  site: PatchSite;
  shape: number[];
  /** Row-major over `shape`. */
  values: Float64Array;
  /** The metric on the clean and the corrupted prompt, unpatched. */
  clean: number;
  corrupt: number;
}

const SITE_TEXT: Record<PatchSite, string> = {
  resid_pre: 'residual stream before each layer',
  resid_mid: 'residual stream between attention and MLP',
  resid_post: 'residual stream after each layer',
  attn_out: 'attention output',
  mlp_out: 'MLP output',
  block_every: 'resid_pre, attn_out and mlp_out',
  z: 'each head’s output (z), all positions',
  q: 'each head’s queries, all positions',
  k: 'each head’s keys, all positions',
  v: 'each head’s values, all positions',
  pattern: 'each head’s attention pattern, all positions',
  z_by_pos: 'each head’s output (z) at one position',
  q_by_pos: 'each head’s queries at one position',
  k_by_pos: 'each head’s keys at one position',
  v_by_pos: 'each head’s values at one position',
  pattern_by_pos: 'each head’s pattern at one query position',
  pattern_dest_src: 'each head’s attention from one position to one other',
  head_all_pos_every: 'z, q, k, v and pattern of each head, all positions',
  head_by_pos_every: 'z, q, k, v and pattern of each head at one position',
};

/** The components of the sites with a leading component axis. */
const COMPONENTS: Partial<Record<PatchSite, string[]>> = {
  block_every: ['resid_pre', 'attn_out', 'mlp_out'],
  head_all_pos_every: ['z', 'q', 'k', 'v', 'pattern'],
  head_by_pos_every: ['z', 'q', 'k', 'v', 'pattern'],
};

/** Whether a grid is shown one layer at a time (it has a position axis besides layer and head). */
const perLayer = (g: Grid) => g.axes.includes('head') && g.axes.some((a) => a === 'pos' || a === 'dest_pos');

interface Computed {
  grid: Grid;
  clean: string[];
  corrupt: string[];
}

interface View {
  title: string;
  values: Float64Array;
  rows: number;
  cols: number;
  rowLabels: string[];
  colLabels: string[];
  rowAxis: string;
  colAxis: string;
  describe: (r: number, c: number) => string;
}

@customElement('pb-patching')
export class PbPatching extends PbComputedFigure<Computed> {
  static override styles = [
    figureStyles,
    css`
      .views {
        display: flex;
        flex-wrap: wrap;
        gap: 1rem 1.5rem;
      }
      .summary {
        margin: 0 0 0.5rem;
      }
      label {
        font-size: 0.9em;
      }
      pb-heatmap {
        --pb-cell-max: var(--pb-patching-cell, 1.9rem);
      }
    `,
  ];

  /**
   * Report (m − m_corrupt) / (m_clean − m_corrupt): 0 = corrupted, 1 = clean. Attribute
   * `normalize` (the property has another name: `Node.normalize` is a DOM method).
   */
  @property({ type: Boolean, attribute: 'normalize' }) normalized = false;

  @state() private computed: Computed | null = null;
  @state() private progress: { done: number; total: number } | null = null;
  /** The layer shown for `*_by_pos` sites. */
  @state() private layer = 0;

  protected override willUpdate(changed: Map<string, unknown>): void {
    if (changed.has('normalized')) this.stateChanged();
  }

  protected override stop(): void {
    super.stop();
    this.progress = null;
  }

  /** True when the clean and corrupted prompts are the same tokens: patching cannot change anything. */
  @state() private identical = false;

  protected override async refresh(): Promise<void> {
    const snap = this.fromSnapshot ? this.session!.snapshot : null;
    if (snap) {
      const p = snap.patching;
      if (!p) {
        this.notice = 'This snapshot has no patching grid.';
        return;
      }
      const grid: Grid = {
        site: p.site,
        shape: p.shape,
        axes: p.axes,
        values: Float64Array.from(p.values),
        clean: p.clean,
        corrupt: p.corrupt,
        stats: { passes: 0, work: 0, naiveWork: 0, unchanged: 0 },
      };
      this.normalized = p.normalize;
      this.computed = { grid, clean: snap.labels.clean, corrupt: snap.labels.corrupt ?? snap.labels.clean };
      return;
    }
    const model = this.model;
    const ex = this.experiment;
    const session = this.session;
    if (!model || !ex || !session) return;
    const st = ex.state;
    let clean: number[];
    let corrupt: number[];
    const metricText = st.metric;
    try {
      if (!(PATCH_SITES as readonly string[]).includes(st.site)) throw new Error(`unknown patching site "${st.site}"; the sites are ${PATCH_SITES.join(', ')}`);
      clean = session.tokenize(st.prompt);
      corrupt = session.tokenize(st.corrupt);
      if (!st.prompt || !st.corrupt) throw new Error('Patching needs a clean prompt and a corrupted prompt.');
      if (!metricText) throw new Error('Patching needs a metric (e.g. logit-diff:POS:GOOD:BAD).');
      if (clean.length !== corrupt.length) {
        throw new Error(`The clean and corrupted prompts must have the same number of tokens (${clean.length} and ${corrupt.length}).`);
      }
      resolveMetricSpec(parseMetricSyntax(metricText), clean, model.config.d_vocab, session.tokenizer);
    } catch (e) {
      this.fail(e);
      return;
    }
    this.identical = clean.every((id, i) => id === corrupt[i]);
    if (this.identical) {
      // Nothing to patch: every cell would be the corrupted run itself. Say so instead of drawing a blank map.
      this.stop();
      this.error = '';
      this.notice = '';
      this.computed = null;
      return;
    }
    const site = st.site as PatchSite;
    const normalize = this.normalized;
    const key = [modelKey(model), clean.join(','), corrupt.join(','), metricText, site, normalize].join('|');
    if (this.job.has(key)) return;
    this.error = '';
    this.progress = { done: 0, total: 0 };
    const labels = (ids: number[]) => ids.map((id, i) => positionLabel(i, session.label(id)));
    await this.compute(
      key,
      async (signal) => {
        const metric = specToMetric(parseMetricSyntax(metricText), clean, model.config.d_vocab, session.tokenizer);
        const grid = await patchingSweep(model, clean, corrupt, site, metric, {
          normalize,
          signal,
          onProgress: (done, total) => {
            if (!signal.aborted) this.progress = { done, total };
          },
        });
        return { grid, clean: labels(clean), corrupt: labels(corrupt) };
      },
      (computed) => {
        this.progress = null;
        this.computed = computed;
        const g = computed.grid;
        this.layer = Math.min(this.layer, g.shape[g.axes.indexOf('layer')] - 1);
        this.dispatchEvent(
          new CustomEvent<PatchingDoneDetail>('pb-patching-done', {
            detail: { site: g.site, shape: [...g.shape], values: g.values, clean: g.clean, corrupt: g.corrupt },
            bubbles: true,
            composed: true,
          }),
        );
      },
      () => {
        this.progress = null;
      },
    );
  }

  private valueText(v: number): string {
    return this.normalized ? `${formatValue(v, 3)} (0 = corrupted, 1 = clean)` : `metric ${formatValue(v, 3)}`;
  }

  private views(c: Computed): View[] {
    const g = c.grid;
    const T = c.clean.length;
    const text = (l: string) => l.slice(l.indexOf(' ') + 1);
    const tok = (p: number) => {
      const a = text(c.clean[p]);
      const b = text(c.corrupt[p]);
      return a === b ? `position ${p} “${a}”` : `position ${p} “${a}” (corrupted: “${b}”)`;
    };
    const numbers = (n: number) => Array.from({ length: n }, (_, i) => String(i));
    const names = COMPONENTS[g.site];
    const inner = names ? g.shape.slice(1) : g.shape; // the grid of one component
    const size = inner.reduce((a, b) => a * b, 1);
    const axes = names ? g.axes.slice(1) : g.axes;
    const parts = (names ?? ['']).map((name, i) => ({ name, values: g.values.subarray(i * size, (i + 1) * size) }));
    const L = inner[0];
    const l = Math.min(this.layer, L - 1);
    const prefix = (name: string) => (name ? `${name}, ` : '');
    if (axes.length === 2) {
      // Layers down; positions (resid sites) or heads (whole-head sites) across.
      const byPos = axes[1] === 'pos';
      const B = inner[1];
      return parts.map(({ name, values }) => ({
        title: name || `${g.site}: ${SITE_TEXT[g.site]}`,
        values,
        rows: L,
        cols: B,
        rowLabels: numbers(L),
        colLabels: byPos ? c.clean : numbers(B),
        rowAxis: 'layer',
        colAxis: byPos ? 'position' : 'head',
        describe: byPos
          ? (r: number, p: number) => `${prefix(name)}layer ${r}, ${tok(p)}: ${this.valueText(values[r * T + p])}`
          : (r: number, h: number) => `${prefix(name)}head ${r}.${h}: ${this.valueText(values[r * B + h])}`,
      }));
    }
    if (axes.length === 4) {
      // [layer, head, dest, src]: one destination x source map per head of the chosen layer.
      const H = inner[1];
      return Array.from({ length: H }, (_, h) => {
        const values = g.values.subarray((l * H + h) * T * T, (l * H + h + 1) * T * T);
        return {
          title: `Head ${l}.${h}`,
          values,
          rows: T,
          cols: T,
          rowLabels: c.clean,
          colLabels: c.clean,
          rowAxis: 'destination',
          colAxis: 'source',
          describe: (d: number, s: number) => `Head ${l}.${h}, attention from ${tok(d)} to ${tok(s)}: ${this.valueText(values[d * T + s])}`,
        };
      });
    }
    // Heads down, positions across, for the chosen layer: [layer, head, pos] as it is, [layer, pos, head] transposed.
    return parts.map(({ name, values: all }) => {
      const headsFirst = axes[1] === 'head';
      const H = headsFirst ? inner[1] : inner[2];
      const values = new Float64Array(H * T);
      for (let h = 0; h < H; h++) for (let p = 0; p < T; p++) values[h * T + p] = headsFirst ? all[(l * H + h) * T + p] : all[(l * T + p) * H + h];
      return {
        title: name ? `${name}, layer ${l}` : `Layer ${l}`,
        values,
        rows: H,
        cols: T,
        rowLabels: numbers(H),
        colLabels: c.clean,
        rowAxis: 'head',
        colAxis: 'position',
        describe: (h: number, p: number) => `${prefix(name)}head ${l}.${h}, ${tok(p)}: ${this.valueText(values[h * T + p])}`,
      };
    });
  }

  override render() {
    const ex = this.experiment;
    const model = this.model;
    const site = ex?.state.site ?? 'resid_pre';
    const c = this.computed;
    const g = c?.grid;
    const progress = this.progress;
    // Diverging around "no effect": the corrupted run (0 when normalized, m_corrupt otherwise).
    const center = g && !this.normalized ? g.corrupt : 0;
    let domain = 0;
    if (g) for (const v of g.values) if (Number.isFinite(v)) domain = Math.max(domain, Math.abs(v - center));
    if (this.normalized) domain = Math.max(domain, 1);
    let better: 'higher' | 'lower' = 'higher';
    try {
      better = this.normalized ? 'higher' : metricBetter(parseMetricSyntax(ex?.state.metric ?? ''));
    } catch {
      better = 'higher';
    }
    return html`
      <div class="toolbar">
        <span class="title">Activation patching</span>
        <label
          >Site
          <select part="site" aria-label="Patching site" ?disabled=${this.fromSnapshot} @change=${(e: Event) => ex?.update({ site: (e.target as HTMLSelectElement).value })}>
            ${PATCH_SITES.map((s) => html`<option value=${s} ?selected=${s === site} title=${SITE_TEXT[s]}>${s}</option>`)}
          </select></label
        >
        ${
          g && perLayer(g)
            ? html`<label
              >Layer
              <select aria-label="Layer shown" @change=${(e: Event) => (this.layer = Number((e.target as HTMLSelectElement).value))}>
                ${Array.from({ length: g.shape[g.axes.indexOf('layer')] }, (_, l) => html`<option value=${l} ?selected=${l === this.layer}>${l}</option>`)}
              </select></label
            >`
            : nothing
        }
      </div>
      ${this.renderExport()}
      ${!model && !this.fromSnapshot ? html`<div class="muted" part="status">${this.session?.noModelText() ?? 'Waiting for the model…'}</div>` : nothing}
      ${this.renderProblem()}
      ${
        this.identical && !this.fromSnapshot
          ? html`<div class="notice" part="notice" role="status">
            The clean and corrupted prompts are the same tokens, so patching one into the other changes nothing: every cell would equal the
            corrupted run. Edit the corrupted prompt so it differs where the behaviour should change.
          </div>`
          : nothing
      }
      ${
        progress
          ? html`<div class="progress" role="status">
            <progress part="progress" max=${progress.total || 1} value=${progress.done}></progress>
            <span>${progress.total ? `${progress.done} of ${progress.total} patched runs…` : 'Running the clean and corrupted prompts…'}</span>
          </div>`
          : nothing
      }
      ${this.renderResult(
        g && c
          ? html`<p class="auto-caption" part="caption">${this.captionText(g.site)}</p>
            <div class="summary muted" part="summary">
              Metric on the clean prompt <span class="num">${formatValue(g.clean, 3)}</span>, on the corrupted prompt
              <span class="num">${formatValue(g.corrupt, 3)}</span>. Each cell: the corrupted run with that activation taken from the clean
              run${this.normalized ? ', scaled so 0 = corrupted and 1 = clean' : ''}.
            </div>
            <div class="views">
              ${this.views(c).map(
                (v, i, all) =>
                  html`<pb-heatmap
                    ?no-legend=${i < all.length - 1}
                    part="heatmap"
                    .values=${v.values}
                    rows=${v.rows}
                    cols=${v.cols}
                    .rowLabels=${v.rowLabels}
                    .colLabels=${v.colLabels}
                    row-axis=${v.rowAxis}
                    col-axis=${v.colAxis}
                    caption=${v.title}
                    scale="diverging"
                    domain=${domain}
                    center=${center}
                    better=${better}
                    value-label=${this.normalized ? 'restored fraction' : 'metric'}
                    .describe=${v.describe}
                    data-site=${g.site}
                  ></pb-heatmap>`,
              )}
            </div>`
          : nothing,
      )}
    `;
  }

  /** The caption of what is drawn, following the site and normalization the reader chose. */
  private captionText(site: PatchSite): string {
    const metric = this.experiment?.state.metric ?? '';
    return `${this.normalized ? 'Normalized metric (0 = corrupted, 1 = clean)' : `Metric ${metric}`}, patching ${site} (${SITE_TEXT[site]}) from the clean run into the corrupted one, one cell per patched run. Grey = no effect; blue = toward the clean behaviour.`;
  }

  protected override exportTable() {
    const g = this.computed?.grid;
    if (!g) return null;
    const rows: (string | number)[][] = [];
    const idx = new Array<number>(g.shape.length).fill(0);
    for (let i = 0; i < g.values.length; i++) {
      let rest = i;
      for (let d = g.shape.length - 1; d >= 0; d--) {
        idx[d] = rest % g.shape[d];
        rest = Math.floor(rest / g.shape[d]);
      }
      rows.push([...idx, g.values[i]]);
    }
    return { header: [...g.axes, this.normalized ? 'normalized_metric' : 'metric'], rows };
  }

  protected override exportJson() {
    const g = this.computed?.grid;
    return g
      ? { figure: 'patching', site: g.site, shape: g.shape, axes: g.axes, values: Array.from(g.values), clean: g.clean, corrupt: g.corrupt, normalize: this.normalized, tokens: this.computed?.clean }
      : { figure: 'patching', state: this.experiment?.state };
  }

  protected override exportExperiment() {
    const st = this.experiment?.state;
    if (!st?.metric || !st.corrupt) return null;
    return { kind: 'patch' as const, site: st.site as PatchSite, metric: st.metric, ...(this.normalized ? { normalize: true } : {}) };
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'pb-patching': PbPatching;
  }
  interface HTMLElementEventMap {
    'pb-patching-done': CustomEvent<PatchingDoneDetail>;
  }
}
