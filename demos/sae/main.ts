// The SAE page: load induction-attn-2l (shipped with the site), cache a hook's activations on 256
// task sequences, train an SAE on them with the form's settings (src/train/sae.ts), plot the batch
// metrics as it trains, then evaluate it on 32 held-out sequences (src/train/sae-eval.ts), show
// its most frequent latents' top contexts and offer it in SAELens' format. Settings live in the
// address (?architecture=topk&dsae=256&k=8&steps=1000...). The status line carries data-state
// (loading, ready, collecting, training, paused, evaluating, done, stopped, error) and data-step.
import '../superposition/loss-curve.ts';
import './sae-features.ts';
import { acquireGpu, type Gpu } from '../../src/gpu/device.ts';
import type { SaeArchitecture } from '../../src/gpu/kernels/sae-train.cpu.ts';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { collectActivations } from '../../src/train/activations.ts';
import { TrainClock } from '../../src/train/clock.ts';
import { recallBatch } from '../../src/train/induction-data.ts';
import { Optimizer, entriesOf } from '../../src/train/optimizer.ts';
import { SeededRandom } from '../../src/util/random.ts';
import { SaeTraining, type ActivationStore, type SaeTrainConfig } from '../../src/train/sae.ts';
import { evaluateSae, topContexts } from '../../src/train/sae-eval.ts';
import { Trainer, type TrainingRun } from '../../src/train/trainer.ts';
import type { LossCurve } from '../superposition/loss-curve.ts';
import type { FeatureCard, SaeFeatures } from './sae-features.ts';

const $ = <T extends Element>(sel: string) => document.querySelector<T>(sel)!;
const form = $<HTMLFormElement>('#sae-form');
const status = $<HTMLElement>('#sae-status');
const field = <T extends HTMLInputElement | HTMLSelectElement>(name: string) => form.querySelector<T>(`[name=${name}]`)!;
const button = (name: string) => form.querySelector<HTMLButtonElement>(`button[name=${name}]`)!;

const T = 48;
const V = 256;
const DEFAULTS: Record<string, string> = { hook: 'blocks.0.hook_resid_post', architecture: 'topk', dsae: '256', k: '8', coefficient: '', steps: '1000', batch: '512' };
/** The sparsity coefficient when the form leaves it empty (aux for TopK, L1, L0). */
const COEFFICIENT: Record<SaeArchitecture, number> = { topk: 1, standard: 5, jumprelu: 2 };

const query = new URLSearchParams(location.search);
for (const [k, v] of Object.entries(DEFAULTS)) field(k).value = query.get(k) ?? v;

function setState(state: string, text?: string): void {
  status.dataset.state = state;
  status.classList.toggle('error', state === 'error');
  if (text !== undefined) status.textContent = text;
  const live = state === 'training' || state === 'paused';
  button('pause').disabled = !live;
  button('stop').disabled = !live;
  button('train').disabled = !['ready', 'done', 'stopped', 'error'].includes(state);
  button('pause').textContent = state === 'paused' ? 'Resume' : 'Pause';
  button('pause').setAttribute('aria-pressed', String(state === 'paused'));
}

interface Settings {
  hook: string;
  config: SaeTrainConfig;
  steps: number;
}

function settings(): Settings {
  const num = (n: string) => Number(field(n).value);
  const architecture = field('architecture').value as SaeArchitecture;
  const [dSae, k, steps, batch] = [num('dsae'), num('k'), num('steps'), num('batch')].map(Math.round) as [number, number, number, number];
  const coefficient = field('coefficient').value === '' ? COEFFICIENT[architecture] : num('coefficient');
  if (!(dSae >= 8 && dSae <= 4096)) throw new Error('Latents: a number from 8 to 4096.');
  if (architecture === 'topk' && !(k >= 1 && k <= dSae)) throw new Error('k: between 1 and the number of latents.');
  if (!(steps >= 1) || !(batch >= 8) || !(coefficient >= 0)) throw new Error('Steps and batch must be positive, the coefficient not negative.');
  for (const n of Object.keys(DEFAULTS)) if (field(n).value !== '') query.set(n, field(n).value);
  history.replaceState(null, '', `?${query}`);
  return {
    hook: field('hook').value,
    steps,
    // JumpReLU: SAELens' bandwidth 0.05 and threshold 0.01 assume activations scaled to norm ~1;
    // this residual stream's pre-activations run to several units, so both start at 0.5.
    config: { architecture, dSae, k, batch, coefficient, seed: 1, modelName: 'induction-attn-2l', deadWindow: 1000, bandwidth: 0.5, initThreshold: 0.5 },
  };
}

const gpuReady: Promise<Gpu> = acquireGpu();
let model: Model | null = null;
const stores = new Map<string, ActivationStore>();
let current: { run: TrainingRun; destroy(): void } | null = null;
const trainSeqs = recallBatch(new SeededRandom(11), 256, { T, V }).ids;
const heldOut = recallBatch(new SeededRandom(12), 32, { T, V });

async function start(): Promise<void> {
  let s: Settings;
  try {
    s = settings();
  } catch (e) {
    setState('error', (e as Error).message);
    return;
  }
  const gpu = await gpuReady;
  if (!model) return;
  if (current) {
    current.run.stop();
    await current.run.done;
    current.destroy();
    current = null;
  }
  let store = stores.get(s.hook);
  if (!store) {
    setState('collecting', `Caching ${s.hook} on ${trainSeqs.length} sequences…`);
    store = await collectActivations(model, trainSeqs, s.hook, { onProgress: (d, n) => (status.textContent = `Caching ${s.hook}: ${d} of ${n} sequences`) });
    stores.set(s.hook, store);
  }
  const clock = new TrainClock(gpu);
  const sae = new SaeTraining(gpu, clock, store, s.config);
  const opt = new Optimizer(gpu, clock, entriesOf(sae.params.list), { kind: 'adamw', lr: 3e-3, weightDecay: 0, clipNorm: 1 });
  const trainer = new Trainer(gpu, clock, sae.task, opt);
  const destroy = () => {
    trainer.destroy();
    opt.destroy();
    sae.destroy();
    clock.destroy();
  };
  const fvu = { label: 'FVU', color: '#1f5fbf', points: [] as [number, number][] };
  const l0 = { label: 'L0', color: '#c2410c', points: [] as [number, number][] };
  const curves = [$<LossCurve>('#fvu-curve'), $<LossCurve>('#l0-curve')];
  curves.forEach((c) => (c.steps = s.steps));
  let drawn = 0;
  const run = trainer.train({
    until: s.steps,
    every: 10,
    onReport: (r) => {
      const m = r.metrics.sae!;
      fvu.points.push([r.step, m[4]!]);
      l0.points.push([r.step, m[3]!]);
      status.dataset.step = String(r.step);
      $('#dead').textContent = String(m[5]);
      if (performance.now() - drawn > 100 || r.step === s.steps) {
        drawn = performance.now();
        curves[0]!.series = [{ ...fvu }];
        curves[1]!.series = [{ ...l0 }];
        if (status.dataset.state === 'training')
          status.textContent = `Training: step ${r.step} of ${s.steps} · ${(r.elapsedMs / 1000).toFixed(1)} s · FVU ${m[4]!.toFixed(3)} · L0 ${m[3]!.toFixed(1)}`;
      }
    },
  });
  current = { run, destroy };
  status.dataset.step = '0';
  setState('training', 'Training: starting…');
  const end = await run.done;
  if (current?.run !== run) return;
  setState('evaluating', `Evaluating after ${end.step} steps…`);
  const loaded = await sae.toSae();
  let ev;
  try {
    ev = await evaluateSae(model, loaded, heldOut.ids, heldOut.targets);
  } finally {
    loaded.destroy();
  }
  const dead = Array.from(ev.density).filter((d) => d === 0).length;
  const shown: Record<string, string> = {
    ce_loss_without_sae: ev.ce_loss_without_sae.toFixed(4),
    ce_loss_with_sae: ev.ce_loss_with_sae.toFixed(4),
    ce_loss_with_ablation: ev.ce_loss_with_ablation.toFixed(4),
    ce_loss_score: ev.ce_loss_score.toFixed(3),
    l0: ev.l0.toFixed(2),
    fvu: ev.fvu.toFixed(4),
    dead: String(dead),
  };
  for (const [k, text] of Object.entries(shown)) {
    const cell = $<HTMLElement>(`#eval [data-metric=${k}]`);
    cell.textContent = text;
    cell.dataset.value = String(k === 'dead' ? dead : ev[k as keyof typeof ev]);
  }
  const tops = topContexts(ev.acts, s.config.dSae, T, 8);
  const order = Array.from(ev.density, (d, j) => [d, j] as const)
    .filter(([d]) => d > 0)
    .sort((a, b) => b[0] - a[0])
    .slice(0, 12);
  const cards: FeatureCard[] = order.map(([density, j]) => ({
    index: j,
    density,
    contexts: tops[j]!.map((c) => ({ pos: c.pos, value: c.value, tokens: heldOut.ids[c.seq]!.slice(Math.max(0, c.pos - 4), c.pos + 1) })),
  }));
  $<SaeFeatures>('#feature-cards').features = cards;
  const files = await sae.toSaeLens();
  for (const [id, name, type] of [
    ['#download-cfg', 'cfg.json', 'application/json'],
    ['#download-weights', 'sae_weights.safetensors', 'application/octet-stream'],
  ] as const) {
    const a = $<HTMLAnchorElement>(id);
    if (a.href) URL.revokeObjectURL(a.href);
    a.href = URL.createObjectURL(new Blob([files[name] as BlobPart], { type }));
    a.removeAttribute('aria-disabled');
  }
  setState(end.state === 'stopped' ? 'stopped' : 'done', `${end.state === 'stopped' ? 'Stopped' : 'Trained'} at step ${end.step}; evaluated on ${heldOut.ids.length} held-out sequences.`);
}

form.addEventListener('submit', (e) => {
  e.preventDefault();
  void start().catch((err) => setState('error', `Training failed: ${(err as Error).message}`));
});
button('pause').addEventListener('click', () => {
  const r = current?.run;
  if (!r) return;
  if (r.state === 'paused') {
    r.resume();
    setState('training');
  } else {
    r.pause();
    void r.whenPaused().then(() => r.state === 'paused' && setState('paused', `${status.textContent} (paused)`));
  }
});
button('stop').addEventListener('click', () => current?.run.stop());

setState('loading', 'Loading induction-attn-2l…');
try {
  const gpu = await gpuReady;
  model = await loadModel(gpu, new URL('../models/induction-attn-2l/', location.href).href);
  setState('ready', 'Ready: press Train.');
  if (query.has('autostart')) void start().catch((err) => setState('error', `Training failed: ${(err as Error).message}`));
} catch (e) {
  setState('error', `This browser cannot run the model: ${(e as Error).message}`);
}
