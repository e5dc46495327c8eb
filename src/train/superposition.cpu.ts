/**
 * The toy model's whole training step on the CPU, from the same kernels' references: features
 * (`sparseFeaturesCpu`, the GPU's bits), forward and backward (`tmsForwardCpu` / `tmsBackwardCpu`,
 * float64 sums), clipping (`gradNormCpu`) and AdamW (`adamwCpu`, fp32 like torch). The GPU
 * trainer must follow it update for update (tests/train/superposition.test.ts).
 */
import { gradNormCpu } from '../gpu/kernels/grad-norm.cpu.ts';
import { adamwCpu, type AdamWHyper } from '../gpu/kernels/optim.cpu.ts';
import { tmsBackwardCpu, tmsForwardCpu } from '../gpu/kernels/superposition.cpu.ts';
import { sparseFeaturesCpu } from '../gpu/kernels/synthetic.cpu.ts';
import type { LrSchedule } from './schedule.ts';
import { importanceMatrix, toyInit, type ToyModelConfig } from './superposition.ts';

export class ToyModelCpu {
  readonly W: Float32Array;
  readonly b: Float32Array;
  /** Loss per instance of the last step's forward. */
  readonly loss: Float32Array;
  step = 0;
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];

  constructor(
    readonly config: ToyModelConfig,
    readonly hyper: AdamWHyper & { lr: LrSchedule; clipNorm?: number },
  ) {
    const init = toyInit(config);
    this.W = init.W;
    this.b = init.b;
    this.loss = new Float32Array(config.featureProbability.length);
    this.m = [new Float32Array(this.W.length), new Float32Array(this.b.length)];
    this.v = [new Float32Array(this.W.length), new Float32Array(this.b.length)];
  }

  /** One update: the batch of update t = step + 1, forward, backward, clip, AdamW. */
  update(): void {
    const c = this.config;
    const [B, I, F, H] = [c.batch ?? 1024, c.featureProbability.length, c.features, c.hidden];
    const t = this.step + 1;
    const x = new Float32Array(B * I * F);
    sparseFeaturesCpu(x, Float32Array.from(c.featureProbability), B, I, F, c.seed ?? 0, t);
    const h = new Float32Array(B * I * H);
    const y = new Float32Array(B * I * F);
    const imp = importanceMatrix(c);
    tmsForwardCpu(h, y, this.loss, this.W, this.b, imp, x, { B, I, F, H });
    const dW = new Float32Array(this.W.length);
    const db = new Float32Array(this.b.length);
    tmsBackwardCpu(dW, db, this.W, imp, x, h, y, { B, I, F, H });
    const { scale } = gradNormCpu([dW, db], this.hyper.clipNorm ?? 0);
    const lr = this.hyper.lr(t);
    adamwCpu(this.W, this.m[0]!, this.v[0]!, dW, this.W.length, t, lr, scale, this.hyper);
    adamwCpu(this.b, this.m[1]!, this.v[1]!, db, this.b.length, t, lr, scale, this.hyper);
    this.step = t;
  }
}
