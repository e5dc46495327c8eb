/**
 * `<induction-trainer>`: trains a 2-layer attention-only transformer in the reader's browser with
 * the recipe that made induction-attn-2l (`src/train/induction-recipe.ts`), on associative recall
 * or, switched, on the repeated-segment data that gave induction-2l its shortcut. While it trains:
 * the loss on the scored tokens, and every `every` updates each head's previous-token score
 * (layer 0) and induction score (layer 1) and the loss on a repeat, with the phase change marked
 * where the best layer-1 induction score first passes 0.5. When it stops, the trained model is
 * handed to the `<pb-model>` named by `target` (its figures redraw on it) and offered as a
 * Hugging Face folder (config.json + model.safetensors).
 *
 * Attributes: `target` (id of a `<pb-model>`), `steps`, `every`, `batch`, `task` (recall |
 * repeated), `seed`; the page's address may override steps, batch and task with
 * `?train-steps=`, `?train-batch=`, `?train-task=`. The status line's `data-state` is
 * idle, training, paused, stopped, done or error, `data-step` the updates done, and once the
 * phase change has come `data-phase-change` its step and `data-phase-change-s` the seconds of
 * training to it (pauses and the scores' own forwards excluded): the figure to set against
 * PyTorch's time for the recipe on the reader's own GPU.
 *
 * @fires induction-trained - `{ step, phaseChange, phaseChangeSeconds }` when a run ends and its
 * model is handed over (0 and 0 without a phase change).
 */
import { LitElement, css, html, type PropertyValues } from 'lit';
import { customElement, property, query, state } from 'lit/decorators.js';
import { pageGpu } from '../../src/components/gpu.ts';
import type { PbModel } from '../../src/components/pb-model.ts';
import type { Model } from '../../src/hooks/model.ts';
import type { Checkpoint } from '../../src/model/checkpoint.ts';
import { RECIPE, headScores, modelFromFiles, recipeConfig, recipeInit, recipeTraining } from '../../src/train/induction-recipe.ts';
import type { InductionTask } from '../../src/train/induction-data.ts';
import { checkpointFiles } from '../../src/train/save-checkpoint.ts';
import type { TrainingRun } from '../../src/train/trainer.ts';
import '../superposition/loss-curve.ts';
import type { Series } from '../superposition/loss-curve.ts';

const HEAD_COLORS = ['#1f5fbf', '#c2410c', '#15803d', '#7e22ce'];

@customElement('induction-trainer')
export class InductionTrainer extends LitElement {
  static override styles = css`
    :host { display: block; font-size: 0.92rem; }
    form { display: flex; flex-wrap: wrap; gap: 0.4rem 0.9rem; align-items: center; margin: 0.5rem 0; }
    select, input, button { font: inherit; }
    input { width: 6rem; }
    button { padding: 0.2rem 0.8rem; border: 1px solid #c9ced6; border-radius: 6px; background: #fff; cursor: pointer; }
    button[name='train'] { background: #1f5fbf; border-color: #1f5fbf; color: #fff; }
    button:disabled { opacity: 0.55; cursor: default; }
    .status { color: #59636e; min-height: 1.4em; margin: 0.2rem 0 0.6rem; }
    .status.error { color: #b42318; }
    .curves { display: grid; grid-template-columns: repeat(auto-fit, minmax(17rem, 1fr)); gap: 0.8rem; }
    .downloads a { margin-right: 1rem; }
    .downloads a[aria-disabled='true'] { color: #8b949e; pointer-events: none; }
  `;

  @property() target = '';
  @property({ type: Number }) steps = 4000;
  @property({ type: Number }) every = 100;
  @property({ type: Number }) batch = RECIPE.batch;
  @property() task: InductionTask = 'recall';
  @property({ type: Number }) seed = 0;

  @state() private phase: 'idle' | 'training' | 'paused' | 'stopped' | 'done' | 'error' = 'idle';
  @state() private message = 'Ready.';
  @state() private step = 0;
  @state() private loss: Series[] = [];
  @state() private prev: Series[] = [];
  @state() private induction: Series[] = [];
  @state() private phaseChange = 0;
  /** Seconds of training to the phase change's report. */
  @state() private phaseChangeSeconds = 0;
  @state() private downloads: { config: string; weights: string } | null = null;

  @query('select[name=task]') private taskSelect!: HTMLSelectElement;
  @query('input[name=steps]') private stepsInput!: HTMLInputElement;

  private run: TrainingRun | null = null;
  private current: { model: Model; checkpoint: Checkpoint; shapes: Map<string, number[]>; destroy(): void } | null = null;

  override connectedCallback(): void {
    super.connectedCallback();
    const q = new URLSearchParams(location.search);
    const n = (k: string) => (q.has(k) ? Number(q.get(k)) : NaN);
    if (n('train-steps') > 0) this.steps = n('train-steps');
    if (n('train-batch') > 0) this.batch = n('train-batch');
    const t = q.get('train-task');
    if (t === 'recall' || t === 'repeated') this.task = t;
  }

  protected override firstUpdated(_: PropertyValues): void {
    this.taskSelect.value = this.task;
    this.stepsInput.value = String(this.steps);
  }

  override render() {
    const live = this.phase === 'training' || this.phase === 'paused';
    return html`
      <form @submit=${this.onSubmit}>
        <label>Data
          <select name="task" ?disabled=${live}>
            <option value="recall">associative recall (induction-attn-2l's)</option>
            <option value="repeated">a repeated segment (induction-2l's)</option>
          </select>
        </label>
        <label>Steps <input name="steps" type="number" min="1" step="any" ?disabled=${live} /></label>
        <button type="submit" name="train" ?disabled=${live}>Train</button>
        <button type="button" name="pause" ?disabled=${!live} @click=${this.togglePause}>${this.phase === 'paused' ? 'Resume' : 'Pause'}</button>
        <button type="button" name="stop" ?disabled=${!live} @click=${() => this.run?.stop()}>Stop</button>
      </form>
      <div class="status ${this.phase === 'error' ? 'error' : ''}" role="status" data-state=${this.phase} data-step=${this.step} data-phase-change=${this.phaseChange} data-phase-change-s=${this.phaseChangeSeconds.toFixed(1)}>${this.message}</div>
      <div class="curves">
        <loss-curve label="loss (scored tokens; dashed: on a repeat)" .series=${this.loss} .steps=${this.steps}></loss-curve>
        <loss-curve label="layer 0: previous-token score per head" linear .series=${this.prev} .steps=${this.steps}></loss-curve>
        <loss-curve label="layer 1: induction score per head" linear .series=${this.induction} .steps=${this.steps} .marker=${this.phaseChange}></loss-curve>
      </div>
      <p class="downloads">
        The trained model as a Hugging Face folder:
        <a download="config.json" href=${this.downloads?.config ?? ''} aria-disabled=${String(!this.downloads)}>config.json</a>
        <a download="model.safetensors" href=${this.downloads?.weights ?? ''} aria-disabled=${String(!this.downloads)}>model.safetensors</a>
      </p>
    `;
  }

  private togglePause(): void {
    const r = this.run;
    if (!r) return;
    if (r.state === 'paused') {
      r.resume();
      this.phase = 'training';
    } else {
      r.pause();
      void r.whenPaused().then(async () => {
        if (r.state !== 'paused') return;
        this.phase = 'paused';
        this.message = `Paused at step ${this.step}; the figures below show the model as it is now.`;
        await this.handOver();
      });
    }
  }

  private async onSubmit(e: Event): Promise<void> {
    e.preventDefault();
    const steps = Math.round(Number(this.stepsInput.value));
    if (!(steps >= 1)) {
      this.phase = 'error';
      this.message = 'Steps: a positive number.';
      return;
    }
    this.steps = steps;
    this.task = this.taskSelect.value as InductionTask;
    await this.train();
  }

  /** Trains a fresh model with the current settings. */
  async train(): Promise<void> {
    // The figures let go of the last model before it is freed.
    (document.getElementById(this.target) as PbModel | null)?.session.set({ status: 'idle', model: null });
    this.current?.destroy();
    this.current = null;
    this.loss = [];
    this.prev = [];
    this.induction = [];
    this.phaseChange = 0;
    this.phaseChangeSeconds = 0;
    this.step = 0;
    try {
      const gpu = await pageGpu();
      const { model, checkpoint } = await modelFromFiles(gpu, { 'config.json': JSON.stringify(recipeConfig()), 'model.safetensors': recipeInit(this.seed) });
      const r = await recipeTraining(gpu, model, checkpoint, this.task, this.seed, this.batch);
      this.current = {
        model,
        checkpoint,
        shapes: r.shapes,
        destroy: () => {
          r.destroy();
          model.destroy();
        },
      };
      const lossLine: Series = { label: 'loss', color: '#1f2328', points: [] };
      const repeatLine: Series = { label: 'loss on a repeat', color: '#8b949e', points: [] };
      const prev = HEAD_COLORS.map((color, h): Series => ({ label: `head 0.${h}`, color, points: [] }));
      const ind = HEAD_COLORS.map((color, h): Series => ({ label: `head 1.${h}`, color, points: [] }));
      this.phase = 'training';
      this.message = `Training on ${this.task === 'recall' ? 'associative recall' : 'repeated segments'}…`;
      const every = Math.min(this.every, this.steps);
      this.run = r.trainer.train({
        until: this.steps,
        every: Math.max(1, Math.min(10, every)),
        // Only the reports that draw the heads' scores read the model; training runs on behind the others.
        readsModelAt: (t) => t % every === 0 || t === this.steps,
        onReport: async (rep) => {
          this.step = rep.step;
          lossLine.points.push([rep.step, rep.metrics.objective![0]!]);
          if (rep.step % every === 0 || rep.step === this.steps) {
            const s = await headScores(model, 1000 + rep.step);
            repeatLine.points.push([rep.step, s.repeatLoss]);
            s.prevToken.forEach((v, h) => prev[h]!.points.push([rep.step, v]));
            s.induction.forEach((v, h) => ind[h]!.points.push([rep.step, v]));
            if (!this.phaseChange && Math.max(...s.induction) > 0.5) {
              this.phaseChange = rep.step;
              this.phaseChangeSeconds = rep.elapsedMs / 1000;
            }
            this.prev = prev.map((x) => ({ ...x }));
            this.induction = ind.map((x) => ({ ...x }));
          }
          this.loss = [{ ...lossLine }, { ...repeatLine }];
          if (this.phase === 'training') {
            this.message = `Step ${rep.step} of ${this.steps} · ${(rep.elapsedMs / 1000).toFixed(0)} s · loss ${rep.metrics.objective![0]!.toFixed(3)}${this.phaseChange ? ` · phase change at step ${this.phaseChange} (${this.phaseChangeSeconds.toFixed(0)} s)` : ''}`;
          }
        },
      });
      const end = await this.run.done;
      this.phase = end.state === 'stopped' ? 'stopped' : 'done';
      this.message = `${end.state === 'stopped' ? 'Stopped' : 'Trained'} at step ${end.step}${this.phaseChange ? `; the phase change came at step ${this.phaseChange}, after ${this.phaseChangeSeconds.toFixed(1)} s of training` : '; no phase change yet (no layer-1 head has an induction score above 0.5)'}. The figures below now show this model.`;
      await this.handOver();
      this.dispatchEvent(
        new CustomEvent('induction-trained', { detail: { step: end.step, phaseChange: this.phaseChange, phaseChangeSeconds: this.phaseChangeSeconds }, bubbles: true, composed: true }),
      );
    } catch (err) {
      this.phase = 'error';
      this.message = `Training failed: ${(err as Error).message}`;
    }
  }

  /** Gives the model to the target `<pb-model>` (its figures recompute) and prepares the downloads. */
  private async handOver(): Promise<void> {
    const cur = this.current;
    if (!cur) return;
    const el = document.getElementById(this.target) as PbModel | null;
    el?.session.set({ status: 'ready', name: 'your model', model: cur.model, tokenizer: null, error: '' });
    const m = cur.model;
    const files = await checkpointFiles(m.gpu, m.config, m.gpuWeights, cur.shapes, cur.checkpoint.tensors, cur.checkpoint.hfConfig);
    if (this.downloads) {
      URL.revokeObjectURL(this.downloads.config);
      URL.revokeObjectURL(this.downloads.weights);
    }
    this.downloads = {
      config: URL.createObjectURL(new Blob([files['config.json']], { type: 'application/json' })),
      weights: URL.createObjectURL(new Blob([files['model.safetensors'] as BlobPart], { type: 'application/octet-stream' })),
    };
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'induction-trainer': InductionTrainer;
  }
}
