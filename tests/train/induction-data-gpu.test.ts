/**
 * The induction recipe's batches drawn on the GPU (`shaders/induction-data.wgsl.ts`, the
 * attention-only trainer's `generate` option) against their CPU twin (`gpuBatch`), bit for bit,
 * at odd sizes: the ids, the scored slots (sorted by row, each sequence's first slot, the count)
 * and the rows sorted by token; and the twin against the recipe's distributions.
 */
import { describe, expect, it } from 'vitest';
import { submitSteps } from '../../src/gpu/recorder.ts';
import { readBuffer } from '../../src/gpu/tensor.ts';
import { writeSafetensors } from '../../src/model/safetensors.ts';
import { AttnOnlyTraining } from '../../src/train/attn-only.ts';
import { TrainClock } from '../../src/train/clock.ts';
import { gpuBatch } from '../../src/train/induction-data-gpu.cpu.ts';
import type { InductionTask } from '../../src/train/induction-data.ts';
import { modelFromFiles, recipeConfig } from '../../src/train/induction-recipe.ts';
import { SeededRandom } from '../../src/util/random.ts';
import { testGpu } from '../helpers/gpu.ts';

/** An attention-only GPT-2 of the given sizes, random weights (the data does not depend on them). */
function files(T: number, V: number) {
  const D = 8;
  const rng = new SeededRandom(5);
  const t: Record<string, { shape: number[]; data: Float32Array }> = {
    'transformer.wte.weight': { shape: [V, D], data: rng.normal(V * D, 0.02) },
    'transformer.wpe.weight': { shape: [T, D], data: rng.normal(T * D, 0.02) },
  };
  for (const [n, shape] of [
    ['ln_1.weight', [D]],
    ['ln_1.bias', [D]],
    ['attn.c_attn.weight', [D, 3 * D]],
    ['attn.c_attn.bias', [3 * D]],
    ['attn.c_proj.weight', [D, D]],
    ['attn.c_proj.bias', [D]],
    ['ln_2.weight', [D]],
    ['ln_2.bias', [D]],
    ['mlp.c_fc.weight', [D, 4]],
    ['mlp.c_fc.bias', [4]],
    ['mlp.c_proj.weight', [4, D]],
    ['mlp.c_proj.bias', [D]],
  ] as const)
    t[`transformer.h.0.${n}`] = {
      shape: [...shape],
      data: n.startsWith('mlp')
        ? new Float32Array(shape.reduce((a, b) => a * b, 1))
        : rng.normal(
            shape.reduce((a, b) => a * b, 1),
            0.1,
          ),
    };
  t['transformer.ln_f.weight'] = { shape: [D], data: new Float32Array(D).fill(1) };
  t['transformer.ln_f.bias'] = { shape: [D], data: new Float32Array(D) };
  const config = { ...recipeConfig(), n_embd: D, n_head: 2, n_layer: 1, n_positions: T, vocab_size: V };
  return { 'config.json': JSON.stringify(config), 'model.safetensors': writeSafetensors(t) };
}

describe.each([
  { task: 'recall' as InductionTask, B: 5, T: 13, V: 36, K: 3, seed: 11 },
  { task: 'repeated' as InductionTask, B: 3, T: 45, V: 28, K: 4, seed: 12 },
])('$task, B $B, T $T, V $V', ({ task, B, T, V, K, seed }) => {
  it('the GPU draws the CPU twin bit for bit, with its slots and token index', async () => {
    const gpu = await testGpu();
    const { model } = await modelFromFiles(gpu, files(T, V));
    const clock = new TrainClock(gpu, 4);
    const training = await AttnOnlyTraining.create(gpu, model, {
      batch: B,
      pos: T,
      data: () => ({ ids: [], targets: [] }),
      trainable: (n) => !n.includes('.mlp.'),
      generate: { task, seed, K, clock: clock.buffer },
    });
    try {
      for (const t of [1, 7]) {
        clock.write(t - 1, [[0, 0, 0]]);
        submitSteps(gpu, training.generation, 'draw');
        const { buffer, layout } = training.batch;
        const words = await readBuffer(gpu, buffer, 0, layout.words * 4);
        const u = new Uint32Array(words.buffer, words.byteOffset, layout.words);
        const want = gpuBatch(task, seed, t, B, { T, V, K });
        expect(Array.from(u.subarray(layout.ids, layout.ids + B * T))).toEqual(want.ids.flat());
        const n = want.targets.length;
        expect(u[layout.count]).toBe(n);
        expect(Array.from(u.subarray(layout.tRow, layout.tRow + n))).toEqual(want.targets.map((x) => x.row * T + x.pos));
        expect(Array.from(u.subarray(layout.tTok, layout.tTok + n))).toEqual(want.targets.map((x) => x.target));
        const seqOff = Array.from({ length: B + 1 }, (_, b) => want.targets.filter((x) => x.row < b).length);
        expect(Array.from(u.subarray(layout.seqOff, layout.seqOff + B + 1))).toEqual(seqOff);
        // The token index: rows of each token in ascending order.
        const flat = want.ids.flat();
        const offsets = [0];
        const order: number[] = [];
        for (let v = 0; v < V; v++) {
          flat.forEach((id, r) => id === v && order.push(r));
          offsets.push(order.length);
        }
        expect(Array.from(u.subarray(layout.offsets, layout.offsets + V + 1))).toEqual(offsets);
        expect(Array.from(u.subarray(layout.order, layout.order + B * T))).toEqual(order);
      }
    } finally {
      training.destroy();
      clock.destroy();
      model.destroy();
    }
  });
});

it('the twin draws the recipe: recall pairs over distinct tokens, a copied segment', () => {
  for (let t = 1; t <= 20; t++) {
    const r = gpuBatch('recall', 3, t, 8, { T: 48, V: 256, K: 4 });
    r.ids.forEach((row, b) => {
      expect(row[0]).toBe(0);
      const targets = r.targets.filter((x) => x.row === b);
      expect(targets.length).toBeGreaterThan(0);
      expect(targets.length).toBeLessThanOrEqual(4);
      // Every token is distinct except each pair's recurrence, which predicts the token after the first.
      for (const { pos, target } of targets) {
        const i = row.indexOf(row[pos]!);
        expect(i).toBeLessThan(pos - 2);
        expect(target).toBe(row[i + 1]);
      }
      expect(new Set(row.slice(1)).size).toBe(47 - targets.length);
      expect(targets.map((x) => x.pos)).toEqual([...targets.map((x) => x.pos)].sort((a, c) => a - c));
    });
    const p = gpuBatch('repeated', 3, t, 4, { T: 48, V: 256, K: 4 });
    for (const row of p.ids) {
      expect(row[0]).toBe(0);
      expect(row.slice(1).every((x) => x >= 1 && x < 256)).toBe(true);
      // Some segment of at least 6 tokens recurs at a later position.
      let found = false;
      for (let d = 6; d < 48 && !found; d++) for (let s = 1; s + d + 6 <= 48 && !found; s++) found = row.slice(s, s + 6).every((x, k) => row[s + d + k] === x);
      expect(found).toBe(true);
    }
    expect(p.targets).toHaveLength(4 * 47);
  }
  // Different updates draw different batches.
  expect(gpuBatch('recall', 3, 1, 2, { T: 48, V: 256, K: 4 }).ids).not.toEqual(gpuBatch('recall', 3, 2, 2, { T: 48, V: 256, K: 4 }).ids);
});
