/**
 * The bench's training section: steps per second of Patchbay's training loop against PyTorch CPU
 * eager (bench/peer/torch_train.py) on the same machine, at the same shapes and batch, in one run:
 *
 *   tms_5_2      Toy Models of Superposition 5 -> 2, 32 instances, batch 1024 (kernels v1)
 *   tms_400_30   400 -> 30, 16 instances, batch 1024 (kernels v3: products on the matmul)
 *   transformer  the induction recipe's model (2 layers, attention only, d_model 64, 4 heads,
 *                vocabulary 256), batch 64 x 48, AdamW after clipping, one update per submit (the
 *                token batches and the embedding's scatter index come from the host)
 *
 * Each Patchbay figure is the loop's own rate (`Trainer.train`, steps per submit sized to
 * ~200 ms, data drawn on the GPU, AdamW lr 1e-3) after 3 untimed steps that compile the pipelines.
 * The peer runs in a child process, each workload with 1 thread and with all cores, the faster
 * counting; its Python is PATCHBAY_TORCH_PYTHON, /work/venv/bin/python or python3, the first that
 * imports torch.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../src/gpu/device.ts';
import { TrainClock } from '../src/train/clock.ts';
import { Optimizer, entriesOf } from '../src/train/optimizer.ts';
import { ToyModel, type ToyModelConfig } from '../src/train/superposition.ts';
import { Trainer } from '../src/train/trainer.ts';
import { RECIPE, modelFromFiles, recipeConfig, recipeInit, recipeTraining } from '../src/train/induction-recipe.ts';

const log = (msg: string) => process.stderr.write(`bench: ${msg}\n`);
const round = (x: number, d = 2) => +x.toFixed(d);

/** A Python that imports torch, or null. */
export function findTorchPython(): string | null {
  const candidates = [process.env.PATCHBAY_TORCH_PYTHON, '/work/venv/bin/python', 'python3'].filter((p): p is string => !!p && (!p.startsWith('/') || existsSync(p)));
  for (const py of candidates) if (spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0) return py;
  return null;
}

async function toySteps(gpu: Gpu, config: ToyModelConfig, steps: number): Promise<{ steps: number; seconds: number; steps_per_s: number; version: string }> {
  const clock = new TrainClock(gpu);
  const toy = new ToyModel(gpu, clock, config);
  const opt = new Optimizer(gpu, clock, entriesOf(toy.params.list), { kind: 'adamw', lr: 1e-3 });
  const trainer = new Trainer(gpu, clock, toy.task, opt);
  try {
    await trainer.train({ until: 3, stepsPerSubmit: 1 }).done;
    const t0 = performance.now();
    await trainer.train({ until: 3 + steps, stepsPerSubmit: 'auto', targetSubmitMs: 200, every: steps }).done;
    const s = (performance.now() - t0) / 1000;
    return { steps, seconds: round(s, 3), steps_per_s: round(steps / s), version: toy.version };
  } finally {
    trainer.destroy();
    opt.destroy();
    toy.destroy();
    clock.destroy();
  }
}

/** The induction recipe's model (2 layers, attention only) at batch 64 x 48 on recall data. */
async function transformerSteps(gpu: Gpu, steps: number): Promise<{ steps: number; seconds: number; steps_per_s: number }> {
  const { model, checkpoint } = await modelFromFiles(gpu, { 'config.json': JSON.stringify(recipeConfig()), 'model.safetensors': recipeInit(0) });
  const r = await recipeTraining(gpu, model, checkpoint, 'recall', 0, RECIPE.batch);
  try {
    await r.trainer.train({ until: 3 }).done;
    const t0 = performance.now();
    await r.trainer.train({ until: 3 + steps, every: steps, targetSubmitMs: 250 }).done;
    const s = (performance.now() - t0) / 1000;
    return { steps, seconds: round(s, 3), steps_per_s: round(steps / s) };
  } finally {
    r.destroy();
    model.destroy();
  }
}

export interface TrainingBenchOptions {
  /** Timed transformer updates (default 20; 0 skips it). */
  transformerSteps?: number;
}

export async function trainingBench(gpu: Gpu, options: TrainingBenchOptions = {}): Promise<Record<string, unknown>> {
  const probs = (I: number) => Array.from({ length: I }, (_, i) => 0.5 ** (i / 3));
  log('training: superposition 5 -> 2');
  const small = await toySteps(gpu, { features: 5, hidden: 2, featureProbability: probs(32), batch: 1024 }, 200);
  log('training: superposition 400 -> 30');
  const large = await toySteps(gpu, { features: 400, hidden: 30, featureProbability: probs(16), batch: 1024 }, 10);
  const ours: Record<string, { steps_per_s: number }> = { tms_5_2: small, tms_400_30: large };
  const tSteps = options.transformerSteps ?? 20;
  if (tSteps > 0) {
    log('training: 2-layer transformer');
    ours.transformer = await transformerSteps(gpu, tSteps);
  }
  const python = findTorchPython();
  let peer: Record<string, { steps_per_s: number }> & { torch?: string; threads_tried?: number[] } = {};
  let peerNote: string | undefined;
  if (python) {
    log(`training: PyTorch CPU eager peer (${python})`);
    const r = spawnSync(python, [join(import.meta.dirname, 'peer', 'torch_train.py')], { encoding: 'utf8' });
    if (r.status === 0) peer = JSON.parse(r.stdout);
    else peerNote = `torch_train.py failed: ${r.stderr.trim().split('\n').pop()}`;
  } else peerNote = 'no Python with torch (set PATCHBAY_TORCH_PYTHON)';
  const rows: Record<string, unknown> = {};
  for (const [name, mine] of Object.entries(ours)) {
    const theirs = peer[name];
    rows[name] = { patchbay: mine, ...(theirs ? { torch_cpu: theirs, patchbay_over_torch: round(mine.steps_per_s / theirs.steps_per_s, 3) } : {}) };
  }
  return {
    shapes: {
      tms_5_2: 'features 5, hidden 2, 32 instances, batch 1024, AdamW',
      tms_400_30: 'features 400, hidden 30, 16 instances, batch 1024, AdamW',
      transformer: '2 layers, attention only, d_model 64, 4 heads, vocab 256, 48 tokens, batch 64, AdamW + clip 1',
    },
    ...rows,
    ...(peer.torch ? { torch: peer.torch, torch_threads_tried: peer.threads_tried } : {}),
    ...(peerNote ? { peer_note: peerNote } : {}),
  };
}
