// The superposition page: two panels, each a form, a status line and figures, driving one
// training run at a time (toy-run.ts). The five-feature panel starts on load with the settings in
// the page's address (?sparsity=0,0.8,0.9&importance=0.9&steps=2000&lr=0.02); the hundred-feature
// panel starts when asked. Each panel's <section>-level status carries data-state (training,
// paused, stopped, done, error) and data-step for anyone reading the page programmatically.
import './loss-curve.ts';
import './tms-dimensionality.ts';
import './tms-geometry.ts';
import './tms-gram.ts';
import './tms-norms.ts';
import { acquireGpu, type Gpu } from '../../src/gpu/device.ts';
import { featureDimensionality, featureNorms, featuresPerDimension, superposition } from '../../src/train/superposition-analysis.ts';
import { geometricImportance, type ToyModelConfig } from '../../src/train/superposition.ts';
import { css as rgb, importanceColor } from './colors.ts';
import type { LossCurve, Series } from './loss-curve.ts';
import type { TmsDimensionality } from './tms-dimensionality.ts';
import type { TmsGeometry } from './tms-geometry.ts';
import type { TmsGram } from './tms-gram.ts';
import type { TmsNorms } from './tms-norms.ts';
import { ToyRun, type ToyWeights } from './toy-run.ts';

/** Random starts per sparsity in the five-feature panel (the figure shows the lowest loss). */
const SEEDS = 4;
/** Smoothing of the reported losses used to pick that start (they are single batches). */
const EMA = 0.8;

const $ = <T extends Element>(sel: string) => document.querySelector<T>(sel)!;

interface Card {
  root: HTMLElement;
  title: HTMLElement;
  geometry: TmsGeometry | null;
  gram: TmsGram;
  norms: TmsNorms;
}

function card(parent: HTMLElement, label: string, withGeometry: boolean, features: number): Card {
  const root = document.createElement('div');
  root.className = 'card';
  const title = document.createElement('h3');
  title.textContent = label;
  root.append(title);
  const geometry = withGeometry ? document.createElement('tms-geometry') : null;
  if (geometry) root.append(geometry);
  const gram = document.createElement('tms-gram');
  gram.features = features;
  const norms = document.createElement('tms-norms');
  root.append(gram, norms);
  parent.append(root);
  return { root, title, geometry, gram, norms };
}

/** One panel: its form, status line, current run and what to draw. */
abstract class Panel {
  run: ToyRun | null = null;
  protected losses = new Float64Array(0);
  protected t0 = 0;

  constructor(
    protected readonly gpu: Promise<Gpu>,
    protected readonly form: HTMLFormElement,
    protected readonly status: HTMLElement,
  ) {
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.start();
    });
    this.button('pause').addEventListener('click', () => this.togglePause());
    this.button('stop').addEventListener('click', () => this.run?.run.stop());
    this.setState('idle');
  }

  protected button(name: string): HTMLButtonElement {
    return this.form.querySelector(`button[name=${name}]`)!;
  }

  protected input(name: string): HTMLInputElement {
    return this.form.querySelector(`input[name=${name}]`)!;
  }

  protected setState(state: string, text?: string): void {
    this.status.dataset.state = state;
    this.status.classList.toggle('error', state === 'error');
    if (text !== undefined) this.status.textContent = text;
    const live = state === 'training' || state === 'paused';
    this.button('pause').disabled = !live;
    this.button('stop').disabled = !live;
    this.button('pause').setAttribute('aria-pressed', String(state === 'paused'));
    this.button('pause').textContent = state === 'paused' ? 'Resume' : 'Pause';
  }

  private togglePause(): void {
    const r = this.run?.run;
    if (!r) return;
    if (r.state === 'paused') {
      r.resume();
      this.setState('training');
    } else if (r.state === 'running') {
      r.pause();
      this.button('pause').disabled = true;
      // The submit in flight finishes (and draws) first; then nothing runs until Resume.
      void r.whenPaused().then(() => {
        if (r.state === 'paused') this.setState('paused', `${this.status.textContent} (paused)`);
      });
    }
  }

  /** The model to train, from the form; throws with a message for the reader on bad input. */
  protected abstract config(): { config: ToyModelConfig; steps: number; lr: number };
  protected abstract prepare(config: ToyModelConfig): void;
  protected abstract draw(w: ToyWeights, config: ToyModelConfig): void;
  protected onLoss(_step: number, _loss: Float32Array): void {}

  async start(): Promise<void> {
    let settings;
    try {
      settings = this.config();
    } catch (e) {
      this.setState('error', (e as Error).message);
      return;
    }
    const old = this.run;
    if (old) {
      old.run.stop();
      await old.run.done.catch(() => undefined);
      old.destroy();
      this.run = null;
    }
    let gpu: Gpu;
    try {
      gpu = await this.gpu;
    } catch (e) {
      this.setState('error', `This browser cannot train the model: ${(e as Error).message}`);
      return;
    }
    const { config, steps, lr } = settings;
    this.losses = new Float64Array(config.featureProbability.length).fill(Number.NaN);
    this.prepare(config);
    this.status.dataset.step = '0';
    this.t0 = performance.now();
    let last: ToyWeights | null = null;
    const run = new ToyRun(gpu, {
      config,
      steps,
      lr,
      onLoss: (step, loss) => {
        loss.forEach((v, i) => (this.losses[i] = Number.isNaN(this.losses[i]!) ? v : EMA * this.losses[i]! + (1 - EMA) * v));
        this.onLoss(step, loss);
      },
      onWeights: (w) => {
        last = w;
        this.draw(w, config);
        const rate = w.step / (w.elapsedMs / 1000);
        this.status.dataset.step = String(w.step);
        if (this.status.dataset.state === 'training') this.status.textContent = `Training: step ${w.step} of ${steps} · ${(w.elapsedMs / 1000).toFixed(1)} s · ${rate.toFixed(0)} steps/s`;
      },
    });
    this.run = run;
    this.setState('training', 'Training: starting…');
    try {
      const end = await run.run.done;
      const w = last as ToyWeights | null;
      const secs = w ? w.elapsedMs / 1000 : 0;
      if (this.run !== run) return; // superseded
      if (end.state === 'stopped') this.setState('stopped', `Stopped at step ${end.step} of ${steps}.`);
      else this.setState('done', `Trained ${end.step} steps in ${secs.toFixed(1)} s (${(end.step / Math.max(secs, 1e-3)).toFixed(0)} steps/s) on ${gpu.adapterName}.`);
      this.status.dataset.step = String(end.step);
    } catch (e) {
      this.setState('error', `Training failed: ${(e as Error).message}`);
    }
  }
}

/** Five features in two dimensions, several sparsities, the best of SEEDS starts each. */
class SmallPanel extends Panel {
  private cards: Card[] = [];
  private sparsities: number[] = [];
  private curve = $<LossCurve>('#small-loss');
  private series: Series[] = [];

  constructor(gpu: Promise<Gpu>) {
    super(gpu, $<HTMLFormElement>('#small-form'), $('#small-status'));
    const q = new URLSearchParams(location.search);
    this.input('sparsity').value = q.get('sparsity') ?? '0, 0.7, 0.8, 0.9, 0.97';
    this.input('importance').value = q.get('importance') ?? '0.9';
    this.input('steps').value = q.get('steps') ?? '2000';
    this.input('lr').value = q.get('lr') ?? '0.02';
  }

  protected config() {
    const sparsities = this.input('sparsity')
      .value.split(/[\s,]+/)
      .filter(Boolean)
      .map(Number);
    if (!sparsities.length || sparsities.some((s) => !(s >= 0 && s < 1))) throw new Error('Sparsities are numbers from 0 up to (not including) 1, separated by commas.');
    if (sparsities.length > 12) throw new Error('At most 12 sparsities at a time.');
    const ratio = Number(this.input('importance').value);
    if (!(ratio > 0 && ratio <= 1)) throw new Error('The importance ratio is a number in (0, 1].');
    const steps = Math.round(Number(this.input('steps').value));
    const lr = Number(this.input('lr').value);
    if (!(steps >= 1 && steps <= 1e6) || !(lr > 0 && lr < 10)) throw new Error('Steps must be a positive count and the learning rate a positive number.');
    this.sparsities = sparsities;
    const q = new URLSearchParams(location.search);
    q.set('sparsity', sparsities.join(','));
    q.set('importance', String(ratio));
    q.set('steps', String(steps));
    q.set('lr', String(lr));
    history.replaceState(null, '', `?${q}`);
    const config: ToyModelConfig = {
      features: 5,
      hidden: 2,
      featureProbability: sparsities.flatMap((s) => Array<number>(SEEDS).fill(1 - s)),
      importance: geometricImportance(5, ratio),
      batch: 1024,
      seed: 0,
    };
    return { config, steps, lr };
  }

  protected prepare(config: ToyModelConfig): void {
    const parent = $<HTMLElement>('#small-cards');
    parent.replaceChildren();
    this.cards = this.sparsities.map((s) => {
      const c = card(parent, `S = ${s}`, true, config.features);
      c.root.dataset.sparsity = String(s);
      return c;
    });
    this.series = this.sparsities.map((s, k) => ({ label: `S = ${s}`, color: rgb(importanceColor(this.sparsities.length > 1 ? k / (this.sparsities.length - 1) : 0)), points: [] }));
    this.curve.steps = Number(this.input('steps').value);
    this.curve.series = [];
  }

  /** The start with the lowest smoothed loss for sparsity k. */
  private best(k: number): number {
    let best = k * SEEDS;
    for (let i = k * SEEDS; i < (k + 1) * SEEDS; i++) if (this.losses[i]! < this.losses[best]!) best = i;
    return best;
  }

  protected override onLoss(step: number, loss: Float32Array): void {
    this.series.forEach((s, k) => s.points.push([step, loss[this.best(k)]!]));
    this.curve.series = [...this.series];
  }

  protected draw(w: ToyWeights, config: ToyModelConfig): void {
    const { features: F, hidden: H } = config;
    const I = config.featureProbability.length;
    const norms = featureNorms(w.W, I, F, H);
    const sup = superposition(w.W, I, F, H);
    this.cards.forEach((c, k) => {
      const i = this.best(k);
      const W = w.W.slice(i * F * H, (i + 1) * F * H);
      c.root.dataset.instance = String(i);
      c.title.textContent = `S = ${this.sparsities[k]}`;
      const loss = document.createElement('span');
      loss.className = 'loss';
      loss.textContent = ` loss ${this.losses[i]!.toExponential(2)}`;
      c.title.append(loss);
      if (c.geometry) c.geometry.W = W;
      c.gram.W = W;
      c.gram.bias = w.b.slice(i * F, (i + 1) * F);
      c.norms.norms = norms.slice(i * F, (i + 1) * F);
      c.norms.superposition = sup.slice(i * F, (i + 1) * F);
    });
  }
}

/** A hundred features in twenty dimensions, sixteen sparsities from dense to 99.9%. */
class BigPanel extends Panel {
  private cards: Card[] = [];
  private densities: number[] = [];
  private readonly plot = $<TmsDimensionality>('#big-dims');
  /** Instances shown as cards. */
  private static readonly SHOWN = [0, 5, 10, 15];

  constructor(gpu: Promise<Gpu>) {
    super(gpu, $<HTMLFormElement>('#big-form'), $('#big-status'));
    const q = new URLSearchParams(location.search);
    this.input('steps').value = q.get('big-steps') ?? '2000';
    this.input('lr').value = q.get('big-lr') ?? '0.01';
  }

  protected config() {
    const steps = Math.round(Number(this.input('steps').value));
    const lr = Number(this.input('lr').value);
    if (!(steps >= 1 && steps <= 1e6) || !(lr > 0 && lr < 10)) throw new Error('Steps must be a positive count and the learning rate a positive number.');
    this.densities = Array.from({ length: 16 }, (_, k) => 10 ** (-3 * (k / 15)));
    const config: ToyModelConfig = { features: 100, hidden: 20, featureProbability: this.densities, importance: Array<number>(100).fill(1), batch: 256, seed: 1 };
    return { config, steps, lr };
  }

  protected prepare(config: ToyModelConfig): void {
    const parent = $<HTMLElement>('#big-cards');
    parent.replaceChildren();
    this.plot.maxPerDim = config.features / config.hidden + 2;
    this.plot.points = [];
    this.cards = BigPanel.SHOWN.map((i) => card(parent, `S = ${(1 - this.densities[i]!).toFixed(3)}`, false, config.features));
  }

  protected draw(w: ToyWeights, config: ToyModelConfig): void {
    const { features: F, hidden: H } = config;
    const I = config.featureProbability.length;
    const perDim = featuresPerDimension(w.W, I, F, H);
    const dims = featureDimensionality(w.W, I, F, H);
    const norms = featureNorms(w.W, I, F, H);
    const sup = superposition(w.W, I, F, H);
    this.plot.points = this.densities.map((density, i) => ({ density, perDim: perDim[i]!, dims: dims.slice(i * F, (i + 1) * F) }));
    BigPanel.SHOWN.forEach((i, k) => {
      const c = this.cards[k]!;
      c.gram.W = w.W.slice(i * F * H, (i + 1) * F * H);
      c.gram.bias = w.b.slice(i * F, (i + 1) * F);
      c.norms.norms = norms.slice(i * F, (i + 1) * F);
      c.norms.superposition = sup.slice(i * F, (i + 1) * F);
    });
  }
}

const gpu = acquireGpu();
gpu.catch(() => undefined); // reported by the panels
const small = new SmallPanel(gpu);
new BigPanel(gpu);
void small.start();
