/**
 * `<pb-logit-lens>`: what the residual stream would predict if the model stopped there. Rows are
 * the residual stream before each layer (`blocks.L.hook_resid_pre`) and the final one
 * (`resid_post` of the last layer, which gives the model's own prediction); columns are
 * positions. Each cell shows the `k` most probable next tokens under `model.logitLens` (the final
 * LayerNorm and the unembedding applied to that row) and is coloured by the top token's
 * probability; hovering or focusing a cell lists the top five. A cell whose top token is the
 * prompt's actual next token is underlined. Ablated heads in the experiment state stay ablated.
 *
 * @csspart heatmap - The grid (a `<pb-heatmap>`).
 * @csspart status - Messages and errors.
 */
import { css, html, nothing } from 'lit';
import { customElement, property, state } from 'lit/decorators.js';
import { accumulatedResid } from '../hooks/cache-helpers.ts';
import { PbComputedFigure } from './figure.ts';
import { figureStyles } from './figure-styles.ts';
import { formatValue } from './heatmap.ts';
import './heatmap.ts';
import { headName, modelKey } from './live-run.ts';
import { runHeadAblation } from '../experiments/ablation.ts';
import type { HookName } from '../model/hook-points.ts';
import { topTokens, type TokenProb } from './top-k.ts';
import { positionLabel, visibleText } from './token-text.ts';

/** Tokens listed on hover. */
const HOVER_K = 5;

interface Lens {
  ids: number[];
  /** Row names: "resid_pre 0", …, "final". */
  rows: string[];
  /** top[row * T + pos]: the most probable tokens, most probable first. */
  top: TokenProb[][];
}

@customElement('pb-logit-lens')
export class PbLogitLens extends PbComputedFigure<Lens> {
  static override styles = [
    figureStyles,
    css`
      pb-heatmap {
        --pb-cell-min: 2rem;
        --pb-cell-max: var(--pb-lens-cell, 4.2rem);
      }
    `,
  ];

  /** Tokens written in each cell. */
  @property({ type: Number }) k = 1;

  @state() private lens: Lens | null = null;

  protected override willUpdate(changed: Map<string, unknown>): void {
    if (changed.has('k')) this.stateChanged();
  }

  protected override async refresh(): Promise<void> {
    const snap = this.fromSnapshot ? this.session!.snapshot : null;
    if (snap?.lens) {
      this.lens = { ids: snap.ids.clean, rows: snap.lens.rows, top: snap.lens.top.map((t) => t.map(([id, p]) => ({ id, p }))) };
      return;
    }
    const input = this.readInputs();
    if (!input) return;
    const { model, ids, ablate, state: st } = input;
    if (!ids.length) {
      this.stop();
      this.lens = null;
      return;
    }
    const k = Math.max(HOVER_K, Math.floor(this.k) || 1);
    const key = [modelKey(model), ids.join(','), ablate.map(headName).join(','), st.mode, k].join('|');
    await this.compute(
      key,
      async () => {
        const L = model.config.n_layers;
        const names: HookName[] = [...Array.from({ length: L }, (_, l): HookName => `blocks.${l}.hook_resid_pre`), `blocks.${L - 1}.hook_resid_post`];
        const { ablated: run } = await runHeadAblation(model, [ids], ablate, { mode: st.mode, cache: names });
        try {
          const stack = await accumulatedResid(run.cache); // [L + 1, 1, T, d_model]
          const logits = await model.logitLens(stack.data); // [(L + 1) * T, d_vocab]
          const V = model.config.d_vocab;
          const top: TokenProb[][] = [];
          for (let i = 0; i < logits.length / V; i++) top.push(topTokens(logits.subarray(i * V, (i + 1) * V), k));
          return { ids, rows: stack.labels.map((l) => (l === 'final_post' ? 'final' : `resid_pre ${l.split('_')[0]}`)), top };
        } finally {
          run.release();
        }
      },
      (lens) => (this.lens = lens),
    );
  }

  override render() {
    const lens = this.lens;
    const s = this.session;
    const label = (id: number) => visibleText(s?.label(id) ?? String(id));
    let body: unknown = nothing;
    if (lens) {
      const T = lens.ids.length;
      const R = lens.rows.length;
      const k = Math.max(1, Math.floor(this.k) || 1);
      const shown = lens.top.map((t) =>
        t
          .slice(0, k)
          .map((x) => label(x.id))
          .join('\n'),
      );
      const describe = (r: number, p: number) => {
        const t = lens.top[r * T + p];
        const next = p + 1 < T ? ` (the prompt continues with “${label(lens.ids[p + 1])}”)` : '';
        const list = t
          .slice(0, HOVER_K)
          .map((x) => `“${label(x.id)}” ${formatValue(100 * x.p, 1)}%`)
          .join(', ');
        const where = lens.rows[r] === 'final' ? 'Final residual stream' : `Residual stream before layer ${lens.rows[r].split(' ')[1]}`;
        return `${where}, position ${p} “${label(lens.ids[p])}”: ${list}${next}`;
      };
      body = html`<pb-heatmap
        part="heatmap"
        .values=${Float32Array.from(lens.top, (t) => t[0].p)}
        rows=${R}
        cols=${T}
        .rowLabels=${lens.rows}
        .colLabels=${lens.ids.map((id, i) => positionLabel(i, s?.label(id) ?? String(id)))}
        col-axis="position"
        scale="sequential"
        domain="1"
        value-label="top token’s probability"
        .cellText=${shown}
        .marked=${lens.top.map((t, i) => (i % T) + 1 < T && t[0].id === lens.ids[(i % T) + 1])}
        marked-label="the top token is the prompt's actual next token"
        .describe=${describe}
      ></pb-heatmap>`;
    }
    return html`
      <div class="toolbar">
        <span class="title">Logit lens</span>
        ${this.busy ? html`<span class="muted" role="status">computing…</span>` : nothing} ${this.renderExport()}
      </div>
      ${this.renderProblem()}
      ${!this.model && !this.fromSnapshot ? html`<div class="muted" part="status">${s?.noModelText() ?? 'Waiting for the model…'}</div>` : nothing}
      ${lens ? html`<p class="auto-caption" part="caption">The most probable next token if the model stopped before each layer (rows) at each position (columns), shaded by its probability${this.experiment?.state.ablate.length ? `, with ${this.experiment.state.ablate.join(', ')} ablated` : ''}.</p>` : nothing}
      ${this.renderResult(body)}
    `;
  }

  protected override exportTable() {
    const lens = this.lens;
    if (!lens) return null;
    const T = lens.ids.length;
    const label = (id: number) => this.session?.label(id) ?? String(id);
    const rows: (string | number)[][] = [];
    lens.top.forEach((t, i) => t.forEach((x, rank) => rows.push([lens.rows[Math.floor(i / T)], i % T, label(lens.ids[i % T]), rank + 1, x.id, label(x.id), x.p])));
    return { header: ['row', 'pos', 'token', 'rank', 'predicted_id', 'predicted', 'probability'], rows };
  }

  protected override exportJson() {
    return { figure: 'logit-lens', rows: this.lens?.rows, ids: this.lens?.ids, top: this.lens?.top, state: this.experiment?.state };
  }

  protected override exportExperiment() {
    return { kind: 'ablate' as const };
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'pb-logit-lens': PbLogitLens;
  }
}
