/**
 * `<pb-attention>`: attention patterns (`blocks.L.attn.hook_pattern`) of chosen heads, one
 * heatmap per head, query tokens down, key tokens across. Hovering or focusing a token (a label,
 * or a diagonal cell) highlights its row (where it attends) and its column (what attends to it)
 * in every head shown, and tints the other axis's labels by those weights.
 *
 * ```html
 * <pb-attention></pb-attention>               <!-- heads from the experiment state, with a picker -->
 * <pb-attention heads="0.2,1.3"></pb-attention>  <!-- fixed heads for this figure -->
 * ```
 *
 * The patterns are those of the model as the reader has it: heads ablated in the experiment
 * state stay ablated (an ablated layer-0 head changes what layer 1 attends to).
 *
 * @fires pb-heads-change - `{ heads }` when the reader picks heads with the picker.
 * @csspart picker - The head picker.
 * @csspart heatmap - Each head's heatmap (a `<pb-heatmap>`).
 * @csspart status - The line for messages (loading, errors).
 */
import type { HookName } from '../model/hook-points.ts';
import { css, html, nothing } from 'lit';
import { customElement, property, state } from 'lit/decorators.js';
import { PbComputedFigure } from './figure.ts';
import { figureStyles } from './figure-styles.ts';
import { formatValue } from './heatmap.ts';
import './heatmap.ts';
import { headName, modelKey, parseHeadList, type HeadRef } from './live-run.ts';
import { runHeadAblation } from '../experiments/ablation.ts';
import { positionLabel } from './token-text.ts';

export interface HeadsChangeDetail {
  heads: string[];
}

interface Pattern {
  head: HeadRef;
  /** [query, key] */
  values: Float32Array;
}

interface Drawn {
  labels: string[];
  patterns: Pattern[];
}

@customElement('pb-attention')
export class PbAttention extends PbComputedFigure<Drawn> {
  static override styles = [
    figureStyles,
    css`
      .heads {
        display: flex;
        flex-wrap: wrap;
        gap: 1.25rem 1.75rem;
        align-items: flex-start;
      }
      .picker {
        display: flex;
        flex-wrap: wrap;
        align-items: center;
        gap: 0.35rem 0.9rem;
        font-size: 0.9em;
      }
      /* A layer's heads wrap (GPT-2's 12 buttons are wider than a phone). */
      .layer {
        display: inline-flex;
        flex-wrap: wrap;
        max-width: 100%;
        align-items: center;
        gap: 0.25rem;
      }
      .layer-name {
        color: var(--_muted);
        margin-right: 0.1rem;
      }
      .picker button {
        min-width: 2.6em;
        padding: 0.15em 0.4em;
        font-variant-numeric: tabular-nums;
      }
      pb-heatmap {
        --pb-cell-max: var(--pb-attention-cell, 1.55rem);
      }
    `,
  ];

  /** Heads to show, "LAYER.HEAD" comma-separated; empty = the experiment's `heads`. */
  @property() heads = '';
  /** Hide the head picker. */
  @property({ type: Boolean, attribute: 'hide-picker' }) hidePicker = false;

  @state() private drawn: Drawn | null = null;
  /** The token under the pointer or focus in any head, -1 for none. */
  @state() private token = -1;
  /** The layer the picker shows, for models with many heads. */
  @state() private pickerLayer = 0;

  private headList(): string[] {
    if (this.heads.trim()) return this.heads.split(',');
    const fromState = this.experiment?.state.heads ?? [];
    return fromState.length ? [...fromState] : ['0.0'];
  }

  protected override willUpdate(changed: Map<string, unknown>): void {
    if (changed.has('heads')) this.stateChanged();
  }

  protected override async refresh(): Promise<void> {
    const snap = this.fromSnapshot ? this.session!.snapshot : null;
    if (snap) {
      const T = snap.ids.clean.length;
      const labels = snap.labels.clean.map((t, i) => positionLabel(i, t));
      const heads = this.headList()
        .map((h) => h.trim())
        .filter((h) => snap.attention.heads.includes(h));
      this.drawn = {
        labels,
        patterns: heads.map((h) => ({
          head: { layer: Number(h.split('.')[0]), head: Number(h.split('.')[1]) },
          values: Float32Array.from(snap.attention.patterns[snap.attention.heads.indexOf(h)].slice(0, T * T)),
        })),
      };
      return;
    }
    const input = this.readInputs((model) => parseHeadList(this.headList(), model.config));
    if (!input) return;
    const { model, session, ids, ablate, state: st, more: heads } = input;
    if (ids.length === 0 || heads.length === 0) {
      this.stop();
      this.drawn = null;
      this.error = '';
      return;
    }
    const key = [modelKey(model), ids.join(','), heads.map(headName).join(','), ablate.map(headName).join(','), st.mode].join('|');
    const labels = ids.map((id, i) => positionLabel(i, session.label(id)));
    await this.compute(
      key,
      async () => {
        const layers = [...new Set(heads.map((h) => h.layer))];
        const names = layers.map((l): HookName => `blocks.${l}.attn.hook_pattern`);
        const { ablated: run } = await runHeadAblation(model, [ids], ablate, { mode: st.mode, cache: names });
        try {
          const T = ids.length;
          const byLayer = new Map(await Promise.all(layers.map(async (l, i) => [l, await run.cache.read(names[i])] as const))); // [1, H, T, T]
          return { labels, patterns: heads.map((h) => ({ head: h, values: byLayer.get(h.layer)!.slice(h.head * T * T, (h.head + 1) * T * T) })) };
        } finally {
          run.release();
        }
      },
      (drawn) => (this.drawn = drawn),
    );
  }

  private pick(name: string): void {
    const current = this.headList().map((s) => s.trim());
    const next = current.includes(name) ? current.filter((h) => h !== name) : [...current, name];
    if (next.length === 0) return; // keep at least one head on screen
    if (this.heads.trim()) this.heads = next.join(',');
    else this.experiment?.update({ heads: next });
    this.dispatchEvent(new CustomEvent<HeadsChangeDetail>('pb-heads-change', { detail: { heads: next }, bubbles: true, composed: true }));
  }

  private renderPicker() {
    const model = this.model;
    if (!model || this.hidePicker) return nothing;
    const { n_layers: L, n_heads: H } = model.config;
    const chosen = new Set(this.headList().map((s) => s.trim()));
    const layerButtons = (l: number) =>
      html`<span class="layer" role="group" aria-label=${`Layer ${l}`}>
        <span class="layer-name">L${l}</span>
        ${Array.from({ length: H }, (_, h) => {
          const name = `${l}.${h}`;
          return html`<button type="button" aria-pressed=${chosen.has(name) ? 'true' : 'false'} aria-label=${`Show head ${name}`} @click=${() => this.pick(name)}>
            ${name}
          </button>`;
        })}
      </span>`;
    // Every head as a button for small models; a layer menu first for large ones.
    const all = L * H <= 32;
    return html`<div class="picker" part="picker" role="group" aria-label="Heads shown">
      ${
        all
          ? Array.from({ length: L }, (_, l) => layerButtons(l))
          : html`<label
              >Layer
              <select
                aria-label="Layer"
                @change=${(e: Event) => (this.pickerLayer = Number((e.target as HTMLSelectElement).value))}
              >
                ${Array.from({ length: L }, (_, l) => html`<option value=${l} ?selected=${l === this.pickerLayer}>${l}</option>`)}
              </select></label
            >
            ${layerButtons(Math.min(this.pickerLayer, L - 1))}`
      }
    </div>`;
  }

  private describer(p: Pattern, labels: string[]) {
    const T = labels.length;
    const tok = (i: number) => `position ${labels[i].replace(' ', ' “')}”`;
    return {
      cell: (q: number, k: number) => (k > q ? `Query ${tok(q)} cannot see key ${tok(k)} (causal mask)` : `Query ${tok(q)} → key ${tok(k)}: attention ${formatValue(p.values[q * T + k], 3)}`),
      label: (i: number) => {
        let top = 0;
        for (let k = 1; k <= i; k++) if (p.values[i * T + k] > p.values[i * T + top]) top = k;
        return `Token ${tok(i)}: row = where it attends (most to ${tok(top)}, ${formatValue(p.values[i * T + top], 2)}); column = what attends to it`;
      },
    };
  }

  override render() {
    const s = this.session;
    const d = this.drawn;
    let status: unknown = nothing;
    if (this.error || this.notice) status = this.renderProblem();
    else if (!this.model && !this.fromSnapshot) status = html`<div class="muted" part="status">${s?.noModelText() ?? 'Waiting for the model…'}</div>`;
    else if (!d && !this.busy) status = html`<div class="muted" part="status">Enter a prompt to see attention patterns.</div>`;
    return html`
      <div class="toolbar">
        <span class="title">Attention patterns</span>
        ${this.busy ? html`<span class="muted" role="status">computing…</span>` : nothing} ${this.renderExport()}
      </div>
      ${this.renderPicker()} ${status}
      ${d ? html`<p class="auto-caption" part="caption">${this.captionText(d)}</p>` : nothing}
      ${this.renderResult(
        d
          ? html`<div class="heads" @pb-cell-hover=${(e: CustomEvent<{ row: number; col: number }>) => (this.token = e.detail.row === e.detail.col ? e.detail.row : -1)}>
            ${d.patterns.map((p) => {
              const describe = this.describer(p, d.labels);
              return html`<pb-heatmap
                part="heatmap"
                .values=${p.values}
                rows=${d.labels.length}
                cols=${d.labels.length}
                .rowLabels=${d.labels}
                .colLabels=${d.labels}
                row-axis="query"
                col-axis="key"
                caption=${`Head ${headName(p.head)}`}
                value-label="attention"
                scale="sequential"
                domain="1"
                causal
                cross
                .highlight=${this.token}
                .describe=${describe.cell}
                .describeLabel=${describe.label}
                data-head=${headName(p.head)}
              ></pb-heatmap>`;
            })}
          </div>`
          : nothing,
      )}
    `;
  }

  /** What is drawn, in words that follow the reader's choices. */
  private captionText(d: Drawn): string {
    const st = this.experiment?.state;
    const heads = d.patterns.map((p) => headName(p.head)).join(', ');
    const ablated = st?.ablate.length ? ` With ${st.ablate.join(', ')} ${st.mode}-ablated.` : '';
    return `Attention of head${d.patterns.length === 1 ? '' : 's'} ${heads} over ${d.labels.length} tokens: each row is a query position, each column a key position, shaded by attention weight (rows sum to 1).${ablated}`;
  }

  protected override exportTable() {
    const d = this.drawn;
    if (!d) return null;
    const T = d.labels.length;
    const rows: (string | number)[][] = [];
    for (const p of d.patterns) for (let q = 0; q < T; q++) for (let k = 0; k <= q; k++) rows.push([headName(p.head), q, d.labels[q], k, d.labels[k], p.values[q * T + k]]);
    return { header: ['head', 'query_pos', 'query_token', 'key_pos', 'key_token', 'attention'], rows };
  }

  protected override exportJson() {
    const d = this.drawn;
    return { figure: 'attention', tokens: d?.labels ?? [], heads: d?.patterns.map((p) => ({ head: headName(p.head), pattern: Array.from(p.values) })) ?? [], state: this.experiment?.state };
  }

  protected override exportExperiment() {
    return { kind: 'ablate' as const };
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'pb-attention': PbAttention;
  }
  interface HTMLElementEventMap {
    'pb-heads-change': CustomEvent<HeadsChangeDetail>;
  }
}
