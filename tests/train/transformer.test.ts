/**
 * Training transformers on the engine's forward and backward (`TransformerTraining`):
 *
 * - train_steps: from the checkpoint, 3 AdamW updates (lr 1e-3, betas 0.9 / 0.999, eps 1e-8,
 *   weight decay 0.01 on every tensor) on the sum over the two prompts of cases.json of each
 *   prompt's mean next-token cross-entropy, against PyTorch's float64 run
 *   (tests/fixtures/<name>/train_steps.safetensors, make/grad_ref.py --train): the loss before each
 *   update to 1e-5 relative, every weight after the last to 1e-4 of the tensor's largest magnitude.
 *   Except where float32 itself cannot: Adam divides each gradient by its own running scale, so a
 *   weight whose gradient is ~0 in exact arithmetic takes a step of up to lr from rounding noise
 *   alone. PyTorch's own float32 run of the same three updates (train_steps_fp32.json,
 *   make/train_steps_fp32.py) misses 1e-4 on induction-2l's layer-1 c_fc.weight (1.46e-4) and
 *   tiny-llama-random's layer-1 gate_proj.weight (4.17e-4); there the bound is 1.5 times PyTorch's
 *   float32 distance. (GPT-2's key bias, whose gradient is exactly 0 without rotary embeddings, is
 *   written as 0 rather than noise, so it lands within 1e-4 where PyTorch's float32 run does not.)
 * - a checkpoint without biases (tiny-llama-random) trains no bias (the zero bias buffers the
 *   forward reads stay zero);
 * - the trained model saves as the folder it was loaded from (names, order, shapes and dtypes),
 *   and that folder loads back to the same logits;
 * - the same seed gives the same bits.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/model/checkpoint.ts';
import { hostWeightsFor } from '../../src/model/host-weights-for.ts';
import { modelFromWeights } from '../../src/hooks/load.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { blobModelSource } from '../../src/model/source.ts';
import { readBuffer } from '../../src/gpu/tensor.ts';
import { TrainClock } from '../../src/train/clock.ts';
import { headScores, modelFromFiles, recipeConfig, recipeInit, recipeTraining } from '../../src/train/induction-recipe.ts';
import { Optimizer } from '../../src/train/optimizer.ts';
import { checkpointFiles } from '../../src/train/save-checkpoint.ts';
import { Trainer } from '../../src/train/trainer.ts';
import { TransformerTraining, lossTargets } from '../../src/train/transformer.ts';
import { FIXTURES, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';
import { maxAbs, maxAbsDiff } from '../helpers/compare.ts';

async function trainFixture(name: string, steps: number) {
  const gpu = await testGpu();
  const source = await fixtureSource(name);
  const ck = await loadCheckpoint(source);
  const model = await modelFromWeights(gpu, ck.config, await hostWeightsFor(ck.tensors, ck.config, ck.hfConfig), { f16: false });
  const ids: number[][] = JSON.parse(readFileSync(join(FIXTURES, name, 'cases.json'), 'utf8')).prompts;
  const T = ids[0]!.length;
  const clock = new TrainClock(gpu);
  const training = new TransformerTraining(gpu, model, { batch: ids.length, pos: T, data: () => lossTargets(ids, 0, T - 1), checkpointNames: ck.tensors.names });
  const opt = new Optimizer(gpu, clock, training.entries, { kind: 'adamw', lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 });
  const trainer = new Trainer(gpu, clock, training.task, opt);
  const losses: number[] = [];
  await trainer.train({ until: steps, every: 1, onReport: (r) => void losses.push(TransformerTraining.objectiveValue(r.metrics.objective!)) }).done;
  const shapes = new Map(training.grads.tensors().map((t) => [t.name, t.shape]));
  const files = await checkpointFiles(gpu, model.config, model.gpuWeights, shapes, ck.tensors, ck.hfConfig);
  return {
    gpu,
    ck,
    model,
    ids,
    losses,
    files,
    training,
    destroy() {
      trainer.destroy();
      opt.destroy();
      clock.destroy();
      training.destroy();
      model.destroy();
    },
  };
}

describe.each(['induction-2l', 'tiny-llama-random'])('%s', (name) => {
  it('3 AdamW updates reproduce train_steps.safetensors', async () => {
    const t = await trainFixture(name, 3);
    try {
      const want = JSON.parse(readFileSync(join(FIXTURES, name, 'train_steps.json'), 'utf8')).loss_before_each_step as number[];
      t.losses.forEach((l, k) => expect(Math.abs(l - want[k]!) / want[k]!, `loss before update ${k + 1}`).toBeLessThan(1e-5));
      const ref = new SafetensorsFile(new Uint8Array(readFileSync(join(FIXTURES, name, 'train_steps.safetensors'))), 'train_steps.safetensors');
      const floor = JSON.parse(readFileSync(join(FIXTURES, name, 'train_steps_fp32.json'), 'utf8')) as { format: string; version: string; max_rel_error: Record<string, number> };
      expect([floor.format, floor.version], 're-run tests/fixtures/make/train_steps_fp32.py').toEqual(['patchbay-train-steps-fp32', '1']);
      const got = new SafetensorsFile(t.files['model.safetensors'], 'trained');
      const report: string[] = [];
      for (const n of ref.names) {
        const r = ref.float32(n);
        const rel = maxAbsDiff(got.float32(n), r) / maxAbs(r);
        const torch32 = floor.max_rel_error[n]!;
        const bound = torch32 > 1e-4 ? 1.5 * torch32 : 1e-4;
        if (rel > 5e-5) report.push(`${n}: ${rel.toExponential(2)} (PyTorch fp32 ${torch32.toExponential(2)})`);
        expect(rel, `${n} (PyTorch's own float32 run: ${torch32.toExponential(2)})`).toBeLessThanOrEqual(bound);
      }
      if (report.length) console.log(`${name}, weights after 3 updates, relative to each tensor's scale: ${report.join('; ')}`);
    } finally {
      t.destroy();
    }
  });
});

it('a checkpoint without biases trains none, and the trained model saves as the folder it came from', async () => {
  const t = await trainFixture('tiny-llama-random', 2);
  try {
    // Llama's q/k/v/o and MLP projections have no bias: the zero buffers the forward adds stay zero.
    for (const layer of t.model.gpuWeights.layers) {
      for (const b of [layer.b_Q, layer.b_K, layer.b_V, layer.b_O, layer.b_in, layer.b_out]) {
        const v = await readBuffer(t.gpu, b, 0, 16);
        expect(Array.from(v)).toEqual([0, 0, 0, 0]);
      }
    }
    expect(t.training.entries.some((e) => /\.b_[QKVO]$/.test(e.name))).toBe(false);
    const src = new SafetensorsFile(new Uint8Array(readFileSync(join(FIXTURES, 'tiny-llama-random', 'model.safetensors'))), 'source');
    const out = new SafetensorsFile(t.files['model.safetensors'], 'trained');
    expect(out.names).toEqual(src.names);
    for (const n of src.names) expect([out.info(n).dtype, out.info(n).shape]).toEqual([src.info(n).dtype, src.info(n).shape]);
    expect(JSON.parse(t.files['config.json'])).toEqual(t.ck.hfConfig);
    // Reloaded, it gives the trained model's logits.
    const again = await modelFromWeights(
      t.gpu,
      t.ck.config,
      await (async () => {
        const ck = await loadCheckpoint(blobModelSource({ 'config.json': new TextEncoder().encode(t.files['config.json']), 'model.safetensors': t.files['model.safetensors'] }));
        return hostWeightsFor(ck.tensors, ck.config, ck.hfConfig);
      })(),
      { f16: false },
    );
    const [a, b] = [await t.model.run(t.ids), await again.run(t.ids)];
    expect(maxAbsDiff(await a.logits.read(), await b.logits.read())).toBe(0);
    a.release();
    b.release();
    again.destroy();
  } finally {
    t.destroy();
  }
});

it('headScores measures induction-attn-2l as its fixture script did (cases.json induction_eval)', async () => {
  // The script's 64 sequences BOS + 20 distinct tokens + the same 20 came from numpy's generator;
  // these are 64 others from the same distribution, so each head's mean attention agrees to
  // sampling error (under 0.005 on three seeds tried), not to float precision. The repeat loss
  // is heavy-tailed (one confident miss dominates: 0.006 to 0.05 on those seeds, the script's
  // 0.0025), so it is only held far below chance (5.5 nats) and the ablated 11.6.
  const gpu = await testGpu();
  const dir = join(FIXTURES, 'induction-attn-2l');
  const ref: { repeat_loss: number; heads: { layer: number; head: number; prev_token_score: number; induction_score: number }[] } = JSON.parse(
    readFileSync(join(dir, 'cases.json'), 'utf8'),
  ).induction_eval;
  const { model } = await modelFromFiles(gpu, { 'config.json': readFileSync(join(dir, 'config.json'), 'utf8'), 'model.safetensors': new Uint8Array(readFileSync(join(dir, 'model.safetensors'))) });
  try {
    const s = await headScores(model, 7, 64, 20);
    for (const h of ref.heads) {
      if (h.layer === 0) expect(Math.abs(s.prevToken[h.head]! - h.prev_token_score), `prev-token 0.${h.head}`).toBeLessThan(0.01);
      else expect(Math.abs(s.induction[h.head]! - h.induction_score), `induction 1.${h.head}`).toBeLessThan(0.01);
    }
    expect(s.repeatLoss).toBeLessThan(0.1);
  } finally {
    model.destroy();
  }
});

it.each(['attn-only', 'general'] as const)('the induction recipe (%s engine): the same seed gives the same bits', async (engine) => {
  const gpu = await testGpu();
  const weights: Float32Array[] = [];
  for (let k = 0; k < 2; k++) {
    const { model, checkpoint } = await modelFromFiles(gpu, { 'config.json': JSON.stringify(recipeConfig()), 'model.safetensors': recipeInit(3) });
    const r = await recipeTraining(gpu, model, checkpoint, 'recall', 3, 4, engine);
    await r.trainer.train({ until: 4 }).done;
    weights.push(await readBuffer(gpu, model.gpuWeights.layers[1]!.W_Q, 0, 64 * 64 * 4));
    r.destroy();
    model.destroy();
  }
  expect(Array.from(weights[0]!)).toEqual(Array.from(weights[1]!));
});
