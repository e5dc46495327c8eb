/**
 * SAEs on a real model's activations (induction-attn-2l, tests/fixtures): the activation store
 * holds exactly the cached hook activations; an SAE written in SAELens' format and loaded by
 * src/features (as a trained one is) gives, spliced in, the losses of `evaluateSae` (SAELens'
 * ce_loss_with_sae / with_ablation / without_sae) that the CPU forward gives with the hook
 * replaced by the CPU reference's reconstruction, or zeroed (to 1e-3, the fixtures' tolerance for
 * experiment metrics); and a short TopK training run on the store reconstructs most of the
 * variance.
 */
import { describe, expect, it } from 'vitest';
import { forwardCpu } from '../../src/model/forward.cpu.ts';
import { loadCheckpoint } from '../../src/model/checkpoint.ts';
import { hostWeightsFor } from '../../src/model/host-weights-for.ts';
import { loadModel } from '../../src/hooks/load.ts';
import { readBuffer } from '../../src/gpu/tensor.ts';
import { collectActivations } from '../../src/train/activations.ts';
import { TrainClock } from '../../src/train/clock.ts';
import { recallBatch } from '../../src/train/induction-data.ts';
import { Optimizer, entriesOf } from '../../src/train/optimizer.ts';
import { SeededRandom } from '../../src/util/random.ts';
import { SaeTraining, saeInit, saeLensFiles } from '../../src/train/sae.ts';
import { loadSae } from '../../src/features/sae-load.ts';
import { blobModelSource } from '../../src/model/source.ts';
import { evaluateSae, meanLoss, nextTokenTargets, saeDecode, saeEncode, type SaeWeights } from '../../src/train/sae-eval.ts';
import { Trainer } from '../../src/train/trainer.ts';
import { fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';

const HOOK = 'blocks.0.hook_resid_post';

async function setup() {
  const gpu = await testGpu();
  const model = await loadModel(gpu, await fixtureSource('induction-attn-2l'));
  return { gpu, model };
}

describe('induction-attn-2l, blocks.0.hook_resid_post', () => {
  it('the store holds the cached activations, every position, in order', async () => {
    const { model } = await setup();
    const seqs = recallBatch(new SeededRandom(3), 5, { T: 48, V: 256 }).ids;
    const store = await collectActivations(model, seqs, HOOK, { batch: 2 });
    try {
      expect([store.rows, store.width]).toEqual([5 * 48, 64]);
      const run = await model.run(seqs, { cache: [HOOK] });
      const want = await run.cache.read(HOOK);
      run.release();
      expect(Array.from(await readBuffer(model.gpu, store.buffer, 0, store.rows * 64 * 4))).toEqual(Array.from(want));
    } finally {
      store.destroy();
      model.destroy();
    }
  });

  it('spliced losses equal the CPU forward with the reconstruction (and with zeros) at the hook', async () => {
    const { model } = await setup();
    try {
      const data = recallBatch(new SeededRandom(4), 6, { T: 48, V: 256 });
      const specs = saeInit(64, { architecture: 'topk', dSae: 96, decoderInitNorm: 1, seed: 5 });
      const get = (n: string) => specs.find((s) => s.name === n)!.init;
      const sae: SaeWeights = { architecture: 'topk', k: 6, dIn: 64, dSae: 96, W_enc: get('W_enc'), b_enc: get('b_enc'), W_dec: get('W_dec'), b_dec: get('b_dec') };
      // Through SAELens' files and src/features' loader, as a trained SAE goes.
      const files = saeLensFiles(sae, { hookName: HOOK });
      const loaded = await loadSae(model.gpu, blobModelSource({ 'cfg.json': new TextEncoder().encode(files['cfg.json']), 'sae_weights.safetensors': files['sae_weights.safetensors'] }));
      const ck = await loadCheckpoint(await fixtureSource('induction-attn-2l'));
      const w = await hostWeightsFor(ck.tensors, ck.config, ck.hfConfig);
      const cpuLoss = (edit: (act: Float32Array) => void, targets = data.targets) => {
        const logits = forwardCpu(ck.config, w, data.ids, (name, act) => {
          if (name === HOOK) edit(act);
        }).get('logits')!;
        return meanLoss(logits, 48, 256, targets);
      };
      for (const targets of [data.targets, nextTokenTargets(data.ids)]) {
        const ev = await evaluateSae(model, loaded, data.ids, targets);
        const clean = cpuLoss(() => undefined, targets);
        const spliced = cpuLoss((act) => act.set(saeDecode(sae, saeEncode(sae, act))), targets);
        const zeroed = cpuLoss((act) => act.fill(0), targets);
        expect(Math.abs(ev.ce_loss_without_sae - clean)).toBeLessThan(1e-3);
        expect(Math.abs(ev.ce_loss_with_sae - spliced)).toBeLessThan(1e-3);
        expect(Math.abs(ev.ce_loss_with_ablation - zeroed)).toBeLessThan(1e-3);
        expect(Math.abs(spliced - clean), 'the splice changes the loss').toBeGreaterThan(1e-2);
        expect(ev.ce_loss_score).toBeCloseTo((zeroed - spliced) / (zeroed - clean), 2);
        expect(ev.l0).toBeLessThanOrEqual(6);
      }
    } finally {
      model.destroy();
    }
  });

  it('a TopK SAE trained for 150 steps on the store explains most of the variance', async () => {
    const { gpu, model } = await setup();
    const seqs = recallBatch(new SeededRandom(6), 96, { T: 48, V: 256 }).ids;
    const store = await collectActivations(model, seqs, HOOK);
    const clock = new TrainClock(gpu);
    const sae = new SaeTraining(gpu, clock, store, { architecture: 'topk', dSae: 128, k: 8, batch: 256, seed: 7, deadWindow: 50 });
    const opt = new Optimizer(gpu, clock, entriesOf(sae.params.list), { kind: 'adamw', lr: 3e-3, weightDecay: 0, clipNorm: 1 });
    const trainer = new Trainer(gpu, clock, sae.task, opt);
    try {
      const fvu: number[] = [];
      await trainer.train({ until: 150, every: 10, onReport: (r) => void fvu.push(r.metrics.sae![4]!) }).done;
      const held = recallBatch(new SeededRandom(8), 16, { T: 48, V: 256 });
      const loaded = await sae.toSae();
      const ev = await evaluateSae(model, loaded, held.ids, held.targets);
      loaded.destroy();
      console.log(
        `TopK SAE, 150 steps: batch FVU ${fvu[0]!.toFixed(3)} -> ${fvu[fvu.length - 1]!.toFixed(3)}; held-out FVU ${ev.fvu.toFixed(3)}, L0 ${ev.l0}, recall loss ${ev.ce_loss_without_sae.toFixed(3)} -> ${ev.ce_loss_with_sae.toFixed(3)} with the SAE (${ev.ce_loss_with_ablation.toFixed(3)} ablated)`,
      );
      expect(fvu[fvu.length - 1]!).toBeLessThan(0.5 * fvu[0]!);
      expect(ev.fvu).toBeLessThan(0.3);
      expect(ev.l0).toBe(8);
    } finally {
      trainer.destroy();
      opt.destroy();
      sae.destroy();
      clock.destroy();
      store.destroy();
      model.destroy();
    }
  });
});
