/**
 * The recipe that trained induction-attn-2l (make/train_induction_pairs.py), on the engine: a
 * 2-layer attention-only GPT-2 (d_model 64, 4 heads, vocabulary 256, 48 positions; MLPs held at
 * zero, n_inner 4) from the script's initialization, AdamW (lr 2e-3 after a 200-update linear
 * warm-up, betas 0.9 / 0.98, weight decay 0.01) after clipping to norm 1, batches of 64, on
 * associative recall (`recallBatch`) or, as a switch, on the repeated-segment data that gave
 * induction-2l its positional shortcut (`repeatedBatch`, every next token scored). And the
 * script's measurements: each head's previous-token score (layer 0) and induction score
 * (layer 1), and the loss on the repeat, on 20 sequences BOS + x + x.
 */
import type { Gpu } from '../gpu/device.ts';
import { loadCheckpoint, type Checkpoint } from '../model/checkpoint.ts';
import { hostWeightsFor } from '../model/host-weights-for.ts';
import { modelFromWeights } from '../hooks/load.ts';
import type { Model } from '../hooks/model.ts';
import { writeSafetensors } from '../model/safetensors.ts';
import { blobModelSource } from '../model/source.ts';
import { TrainClock } from './clock.ts';
import { repeatSequences, type InductionTask } from './induction-data.ts';
import { Optimizer } from './optimizer.ts';
import { SeededRandom } from '../util/random.ts';
import { linearWarmup } from './schedule.ts';
import { Trainer } from './trainer.ts';
import { TransformerTraining } from './transformer.ts';
import { gpuBatch } from './induction-data-gpu.cpu.ts';
import { AttnOnlyTraining } from './attn-only.ts';

export const RECIPE = { T: 48, V: 256, D: 64, H: 4, layers: 2, batch: 64, lr: 2e-3, warmup: 200, betas: [0.9, 0.98] as [number, number], weightDecay: 0.01, clip: 1 };

/** The script's config.json. */
export function recipeConfig(): Record<string, unknown> {
  const { T, V, D, H, layers } = RECIPE;
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    n_embd: D,
    n_head: H,
    n_layer: layers,
    n_positions: T,
    n_inner: 4,
    vocab_size: V,
    layer_norm_epsilon: 1e-5,
    activation_function: 'gelu_new',
    tie_word_embeddings: true,
    bos_token_id: 0,
    eos_token_id: 0,
  };
}

/** The script's initial weights (normal draws from `seed`), as model.safetensors with its names. */
export function recipeInit(seed: number): Uint8Array {
  const { T, V, D, layers } = RECIPE;
  const rng = new SeededRandom(seed);
  const n = (count: number, std: number) => rng.normal(count, std);
  const t: Record<string, { shape: number[]; data: Float32Array }> = {
    'transformer.wte.weight': { shape: [V, D], data: n(V * D, 0.02) },
    'transformer.wpe.weight': { shape: [T, D], data: n(T * D, 0.02) },
  };
  for (let l = 0; l < layers; l++) {
    const p = `transformer.h.${l}.`;
    Object.assign(t, {
      [`${p}ln_1.weight`]: { shape: [D], data: new Float32Array(D).fill(1) },
      [`${p}ln_1.bias`]: { shape: [D], data: new Float32Array(D) },
      [`${p}attn.c_attn.weight`]: { shape: [D, 3 * D], data: n(D * 3 * D, 0.02) },
      [`${p}attn.c_attn.bias`]: { shape: [3 * D], data: new Float32Array(3 * D) },
      [`${p}attn.c_proj.weight`]: { shape: [D, D], data: n(D * D, 0.02 / Math.sqrt(4)) },
      [`${p}attn.c_proj.bias`]: { shape: [D], data: new Float32Array(D) },
      [`${p}ln_2.weight`]: { shape: [D], data: new Float32Array(D).fill(1) },
      [`${p}ln_2.bias`]: { shape: [D], data: new Float32Array(D) },
      [`${p}mlp.c_fc.weight`]: { shape: [D, 4], data: new Float32Array(D * 4) },
      [`${p}mlp.c_fc.bias`]: { shape: [4], data: new Float32Array(4) },
      [`${p}mlp.c_proj.weight`]: { shape: [4, D], data: new Float32Array(4 * D) },
      [`${p}mlp.c_proj.bias`]: { shape: [D], data: new Float32Array(D) },
    });
  }
  t['transformer.ln_f.weight'] = { shape: [D], data: new Float32Array(D).fill(1) };
  t['transformer.ln_f.bias'] = { shape: [D], data: new Float32Array(D) };
  return writeSafetensors(t);
}

/** A model and its checkpoint from config.json and model.safetensors bytes (fp32, as loaded for training). */
export async function modelFromFiles(gpu: Gpu, files: { 'config.json': string; 'model.safetensors': Uint8Array }): Promise<{ model: Model; checkpoint: Checkpoint }> {
  const source = blobModelSource({ 'config.json': new TextEncoder().encode(files['config.json']), 'model.safetensors': files['model.safetensors'] }, 'in memory');
  const checkpoint = await loadCheckpoint(source);
  const host = await hostWeightsFor(checkpoint.tensors, checkpoint.config, checkpoint.hfConfig);
  return { model: await modelFromWeights(gpu, checkpoint.config, host, { f16: false }), checkpoint };
}

export interface HeadScoreReport {
  /** Layer 0's previous-token scores, one per head. */
  prevToken: number[];
  /** Layer 1's induction scores, one per head. */
  induction: number[];
  /** Loss on the repeat (predicting its 2nd token on). */
  repeatLoss: number;
}

/**
 * The script's `scores()`: `count` sequences BOS + x + x (x: `half` distinct tokens; the script's
 * 20 sequences of 23, the longest repeat that fits 48 positions), drawn from `seed`. The fixture's
 * `induction_eval` is the same measurement at 64 sequences of 20.
 */
export async function headScores(model: Model, seed: number, count = 20, half = Math.floor((RECIPE.T - 1) / 2)): Promise<HeadScoreReport> {
  const { V } = RECIPE;
  const seqs = repeatSequences(new SeededRandom(seed), count, half, V);
  const L = seqs[0]!.length;
  const run = await model.run(seqs, { cache: ['blocks.0.attn.hook_pattern', 'blocks.1.attn.hook_pattern'] });
  try {
    const [p0, p1, logits] = await Promise.all([run.cache.read('blocks.0.attn.hook_pattern'), run.cache.read('blocks.1.attn.hook_pattern'), run.logits.read()]);
    const H = model.config.n_heads;
    const at = (p: Float32Array, b: number, h: number, q: number, k: number) => p[((b * H + h) * L + q) * L + k]!;
    const prevToken = Array.from({ length: H }, (_, h) => {
      let s = 0;
      for (let b = 0; b < count; b++) for (let q = 2; q < L; q++) s += at(p0, b, h, q, q - 1);
      return s / (count * (L - 2));
    });
    const induction = Array.from({ length: H }, (_, h) => {
      let s = 0;
      for (let b = 0; b < count; b++) for (let q = half + 1; q < L; q++) s += at(p1, b, h, q, q - half + 1);
      return s / (count * (L - half - 1));
    });
    let loss = 0;
    let n = 0;
    for (let b = 0; b < count; b++)
      for (let t = half + 1; t < L - 1; t++) {
        const row = logits.subarray((b * L + t) * V, (b * L + t + 1) * V);
        let mx = -Infinity;
        for (const v of row) mx = Math.max(mx, v);
        let z = 0;
        for (const v of row) z += Math.exp(v - mx);
        loss += mx + Math.log(z) - row[seqs[b]![t + 1]!]!;
        n++;
      }
    return { prevToken, induction, repeatLoss: loss / n };
  } finally {
    run.release();
  }
}

/**
 * The recipe's training run on `model` (from `recipeInit` or a checkpoint of it). `engine`:
 * 'attn-only' (default) trains on the attention-only kernels (`attn-only.ts`, ~6x faster on
 * lavapipe), drawing its batches on the GPU; 'general' on the engine's forward and backward plans
 * (`transformer.ts`), the same batches from their CPU twin (`gpuBatch`). Both give the same
 * numbers to float rounding (tests/train/attn-only.test.ts).
 */
export async function recipeTraining(gpu: Gpu, model: Model, checkpoint: Checkpoint, task: InductionTask, seed: number, batch = RECIPE.batch, engine: 'attn-only' | 'general' = 'attn-only') {
  const clock = new TrainClock(gpu);
  // The batches the attention-only trainer draws on the GPU; the general path takes the same
  // batches from their CPU twin.
  const data = (t: number) => gpuBatch(task, seed, t, batch, { T: RECIPE.T, V: RECIPE.V, K: 4 });
  const options = { batch, pos: RECIPE.T, data, checkpointNames: checkpoint.tensors.names, trainable: (n: string) => !n.includes('.mlp.') };
  let training: AttnOnlyTraining | TransformerTraining;
  try {
    // Recall scores at most 4 pairs a sequence; repeated segments every next token.
    const maxTargets = task === 'recall' ? 4 * batch : batch * (RECIPE.T - 1);
    training =
      engine === 'attn-only'
        ? await AttnOnlyTraining.create(gpu, model, { ...options, maxTargets, generate: { task, seed, K: 4, clock: clock.buffer } })
        : new TransformerTraining(gpu, model, options);
  } catch (e) {
    clock.destroy();
    throw e;
  }
  const optimizer = new Optimizer(gpu, clock, training.entries, {
    kind: 'adamw',
    lr: linearWarmup(RECIPE.lr, RECIPE.warmup),
    betas: RECIPE.betas,
    eps: 1e-8,
    weightDecay: RECIPE.weightDecay,
    clipNorm: RECIPE.clip,
  });
  const trainer = new Trainer(gpu, clock, training.task, optimizer);
  return {
    clock,
    training,
    optimizer,
    trainer,
    /** Each forward-layout weight's shape (for saving the trained model as a checkpoint). */
    shapes: training instanceof TransformerTraining ? new Map(training.grads.tensors().map((t) => [t.name, [...t.shape]])) : training.shapes(),
    destroy() {
      trainer.destroy();
      optimizer.destroy();
      training.destroy();
      clock.destroy();
    },
  };
}
