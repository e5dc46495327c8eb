/**
 * `<induction-scores>`: measures, in the reader's browser, what the fixture recorded in PyTorch
 * for induction-2l (`induction_eval` in cases.json): on the fixture's 64 sequences BOS + x + x
 * (x: 20 random tokens, regenerated bit for bit in eval-set.ts), the loss on the repeat, the loss
 * with each head zero-ablated, and each head's previous-token and induction scores (scores.ts).
 *
 * ```html
 * <pb-model src="induction-2l"> <induction-scores reference="…/cases.json"></induction-scores> </pb-model>
 * ```
 *
 * The measurement starts once the element has scrolled into view and the model is loaded, so it
 * does not hold up the figures above it. One forward pass over the 64 sequences gives the loss
 * and the scores; each head's ablation is one more pass. Where that first pass took under a
 * second (a real GPU), the ablations follow at once; on a slow adapter (a software renderer
 * takes ~10 s a pass) each row gets a button, and one button measures them all.
 *
 * Renders a table into the light DOM (so the page's table styles apply). The status line's
 * `data-state` is `waiting`, `measuring`, `done` (loss and scores measured) or `error`;
 * `data-loss` holds the unablated loss and each head's row `data-ablated-loss` once measured,
 * for tests and for anyone reading the numbers programmatically.
 *
 * @fires induction-scores-done - `{ loss, heads }` once the loss and the scores are measured.
 */
import { html, nothing } from 'lit';
import { customElement, property, state } from 'lit/decorators.js';
import { PbFigure } from '../../src/components/figure.ts';
import { zeroHead } from '../../src/index.ts';
import type { Model } from '../../src/hooks/model.ts';
import { evalSequences } from './eval-set.ts';
import { headScores, repeatLoss, type HeadScores } from './scores.ts';

interface Row extends HeadScores {
  head: string;
  /** Loss on the repeat with this head's output zeroed; undefined until measured. */
  ablated?: number;
  /** True while that is being measured. */
  busy?: boolean;
}

/** A first pass faster than this means the ablations can run without asking. */
const AUTO_ABLATE_MS = 1000;

interface Reference {
  repeated_half_loss: number;
  head_ablation_repeated_half_loss: Record<string, number>;
  induction_score: Record<string, number>;
  prev_token_score: Record<string, number>;
}

@customElement('induction-scores')
export class InductionScores extends PbFigure {
  /** URL of the fixture's cases.json, whose `induction_eval` the measured numbers are compared with. */
  @property() reference = '';
  /** Number of sequences, tokens in the repeated segment, and the generator's seed (the fixture's). */
  @property({ type: Number }) count = 64;
  @property({ type: Number }) half = 20;
  @property({ type: Number }) seed = 99;

  @state() private rows: Row[] = [];
  @state() private loss: number | null = null;
  @state() private phase: 'waiting' | 'measuring' | 'done' | 'error' = 'waiting';
  @state() private message = '';
  @state() private ref: Reference | null = null;
  @state() private seconds = 0;
  @state() private visible = false;

  private measured: Model | null = null;
  private observer: IntersectionObserver | null = null;
  /** Ablation passes queue behind each other: the GPU runs one at a time anyway. */
  private queue: Promise<void> = Promise.resolve();

  protected override createRenderRoot() {
    return this;
  }

  override firstUpdated(): void {
    this.observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) {
        this.visible = true;
        this.observer?.disconnect();
        this.stateChanged();
      }
    });
    this.observer.observe(this);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.observer?.disconnect();
  }

  override connectedCallback(): void {
    super.connectedCallback();
    if (this.reference && !this.ref) {
      fetch(new URL(this.reference, document.baseURI))
        .then((r) => (r.ok ? r.json() : null))
        .then((j) => (this.ref = (j?.induction_eval as Reference | undefined) ?? null))
        .catch(() => undefined); // the comparison column is optional
    }
  }

  protected override stateChanged(): void {
    const model = this.model;
    if (model && this.visible && model !== this.measured) {
      this.measured = model;
      void this.measure(model);
    }
  }

  private async measure(model: Model): Promise<void> {
    const t0 = performance.now();
    this.phase = 'measuring';
    this.rows = [];
    this.loss = null;
    try {
      const { n_layers: L, d_vocab } = model.config;
      const seqs = evalSequences(this.count, this.half, d_vocab, this.seed);
      const clean = await model.run(seqs, { cache: /attn\.hook_pattern$/ });
      try {
        this.loss = repeatLoss(await clean.logits.read(), clean.logits.shape, seqs, this.half);
        const rows: Row[] = [];
        for (let l = 0; l < L; l++) {
          const p = clean.cache.get(`blocks.${l}.attn.hook_pattern`);
          headScores(await p.read(), p.shape, this.half).forEach((s, h) => rows.push({ head: `${l}.${h}`, ...s }));
        }
        this.rows = rows;
      } finally {
        clean.release();
      }
      const ms = performance.now() - t0;
      this.seconds = ms / 1000;
      this.phase = 'done';
      this.dispatchEvent(new CustomEvent('induction-scores-done', { detail: { loss: this.loss, heads: this.rows }, bubbles: true, composed: true }));
      if (ms < AUTO_ABLATE_MS) this.ablateAll();
    } catch (e) {
      this.phase = 'error';
      this.message = e instanceof Error ? e.message : String(e);
    }
  }

  /** Measures the loss on the repeat with `row`'s head zeroed (queued behind other passes). */
  ablate(row: Row): Promise<void> {
    const model = this.measured;
    if (!model || row.ablated !== undefined || row.busy) return this.queue;
    row.busy = true;
    this.rows = [...this.rows];
    this.queue = this.queue.then(async () => {
      if (this.measured !== model) return; // the model changed under us
      const seqs = evalSequences(this.count, this.half, model.config.d_vocab, this.seed);
      const [l, h] = row.head.split('.').map(Number);
      try {
        const run = await model.runWithHooks(seqs, [zeroHead(l, h)]);
        try {
          row.ablated = repeatLoss(await run.logits.read(), run.logits.shape, seqs, this.half);
        } finally {
          run.release();
        }
      } catch (e) {
        this.message = e instanceof Error ? e.message : String(e);
      } finally {
        row.busy = false;
        this.rows = [...this.rows];
      }
    });
    return this.queue;
  }

  ablateAll(): Promise<void> {
    for (const row of this.rows) void this.ablate(row);
    return this.queue;
  }

  /** Largest absolute difference between the measured numbers and the fixture's. */
  private maxDifference(): number | null {
    const r = this.ref;
    if (!r || this.loss === null || this.phase !== 'done') return null;
    let d = Math.abs(this.loss - r.repeated_half_loss);
    for (const row of this.rows) {
      d = Math.max(
        d,
        Math.abs(row.prevToken - (r.prev_token_score[row.head] ?? NaN)),
        Math.abs(row.induction - (r.induction_score[row.head] ?? NaN)),
        row.ablated === undefined ? 0 : Math.abs(row.ablated - (r.head_ablation_repeated_half_loss[row.head] ?? NaN)),
      );
    }
    return Number.isNaN(d) ? null : d;
  }

  override render() {
    void this.revision;
    if (this.phase === 'waiting') {
      return html`<p class="scores-status" role="status" data-state="waiting">
        ${this.model ? 'The measurement starts when this part of the page is on screen.' : 'Waiting for the model…'}
      </p>`;
    }
    if (this.phase === 'error') return html`<p class="scores-status error" role="alert" data-state="error">Could not measure: ${this.message}</p>`;
    const f3 = (x: number | undefined) => (x === undefined ? '…' : x.toFixed(3));
    const diff = this.maxDifference();
    const r = this.ref;
    const pending = this.rows.filter((row) => row.ablated === undefined);
    const anyBusy = this.rows.some((row) => row.busy);
    return html`
      <p class="scores-status" role="status" data-state=${this.phase}>
        ${this.phase === 'measuring' ? html`Measuring on ${this.count} sequences…` : html`One pass over ${this.count} sequences of ${2 * this.half + 1} tokens took ${this.seconds.toFixed(1)} s.`}
        Loss on the repeat, nothing ablated:
        <strong class="loss" data-loss=${this.loss ?? nothing}>${this.loss === null ? '…' : this.loss.toFixed(3)}</strong>
        nats${r ? html` (PyTorch recorded ${r.repeated_half_loss.toFixed(3)})` : nothing}.
      </p>
      <table class="scores">
        <thead>
          <tr>
            <th scope="col">Head</th>
            <th scope="col" class="num">Previous-token score</th>
            <th scope="col" class="num">Induction score</th>
            <th scope="col" class="num">Most attention at</th>
            <th scope="col" class="num">Loss with head zeroed</th>
          </tr>
        </thead>
        <tbody>
          ${this.rows.map(
            (row) => html`<tr data-head=${row.head} data-ablated-loss=${row.ablated ?? nothing}>
              <th scope="row">${row.head}</th>
              <td class="num">${f3(row.prevToken)}</td>
              <td class="num">${f3(row.induction)}</td>
              <td class="num">${row.peakOffset === 0 ? 'itself' : `${row.peakOffset} back`} (${(100 * row.peakShare).toFixed(0)}%)</td>
              <td class="num ablated">
                ${
                  row.ablated !== undefined
                    ? row.ablated.toFixed(3)
                    : html`<button type="button" class="measure" ?disabled=${row.busy} @click=${() => void this.ablate(row)}
                      aria-label=${`Measure the loss with head ${row.head} zeroed`}>${row.busy ? 'measuring…' : 'Measure'}</button>`
                }
              </td>
            </tr>`,
          )}
        </tbody>
      </table>
      ${
        pending.length && !anyBusy && this.phase === 'done'
          ? html`<p class="scores-actions">
            <button type="button" class="measure-all" @click=${() => void this.ablateAll()}>Measure every head</button>
            <span class="muted">one pass per head, about ${Math.max(1, Math.round(pending.length * this.seconds))} s on this device</span>
          </p>`
          : nothing
      }
      ${
        diff !== null
          ? html`<p class="scores-check">
            ${
              diff < 1e-3
                ? `Every number measured ${pending.length ? 'so far' : 'above'} agrees with what PyTorch recorded for the fixture to within`
                : 'These numbers differ from what PyTorch recorded for the fixture by up to'
            }
            <span class="max-diff" data-max-diff=${diff}>${diff.toExponential(1)}</span>.
          </p>`
          : nothing
      }
    `;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'induction-scores': InductionScores;
  }
}
