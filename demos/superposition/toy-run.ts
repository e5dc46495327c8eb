/**
 * One training run of Toy Models of Superposition on the page: the model, AdamW at a constant
 * learning rate after a short warm-up (as the paper trains, with a larger rate), and the loop,
 * with the weights read back about ten times a second for the figures (every report when the
 * GPU is slow). Owns its GPU objects; `stop()` ends it and `destroy()` frees them.
 */
import type { Gpu } from '../../src/gpu/device.ts';
import { TrainClock } from '../../src/train/clock.ts';
import { Optimizer, entriesOf } from '../../src/train/optimizer.ts';
import { linearWarmup } from '../../src/train/schedule.ts';
import { ToyModel, type ToyModelConfig } from '../../src/train/superposition.ts';
import { Trainer, type TrainingRun } from '../../src/train/trainer.ts';

export interface ToyWeights {
  step: number;
  W: Float32Array; // [I, F, H]
  b: Float32Array; // [I, F]
  elapsedMs: number;
}

export interface ToyRunOptions {
  config: ToyModelConfig;
  steps: number;
  /** Learning rate (reached after a linear warm-up over the first 2% of the steps). */
  lr: number;
  /** Every 10 updates: the loss per instance on that update's batch. */
  onLoss: (step: number, loss: Float32Array) => void;
  /** About ten times a second, and after the last update. */
  onWeights: (w: ToyWeights) => void;
}

/** Milliseconds between weight read-backs for the figures. */
const DRAW_MS = 100;

export class ToyRun {
  readonly run: TrainingRun;
  private readonly clock: TrainClock;
  private readonly toy: ToyModel;
  private readonly opt: Optimizer;
  private readonly trainer: Trainer;

  constructor(gpu: Gpu, o: ToyRunOptions) {
    this.clock = new TrainClock(gpu);
    this.toy = new ToyModel(gpu, this.clock, o.config);
    const lr = linearWarmup(o.lr, Math.max(1, Math.round(o.steps / 50)));
    this.opt = new Optimizer(gpu, this.clock, entriesOf(this.toy.params.list), { kind: 'adamw', lr });
    this.trainer = new Trainer(gpu, this.clock, this.toy.task, this.opt);
    let drawn = -Infinity;
    this.run = this.trainer.train({
      until: o.steps,
      every: 10,
      onReport: async (r) => {
        o.onLoss(r.step, r.metrics.loss!);
        const now = performance.now();
        if (now - drawn < DRAW_MS && r.step !== o.steps) return;
        drawn = now;
        const { W, b } = await this.toy.weights();
        o.onWeights({ step: r.step, W, b, elapsedMs: r.elapsedMs });
      },
    });
  }

  destroy(): void {
    this.trainer.destroy();
    this.opt.destroy();
    this.toy.destroy();
    this.clock.destroy();
  }
}
