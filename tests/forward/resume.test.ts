/**
 * Resumed passes (what sweeps run), against full forwards: a pass from layer L0 with ragged row
 * starts, a trimmed last layer and a few vocabulary columns must give the full forward's logits
 * at the positions and columns it computes. Covers GPT-2 (learned positions), Llama (rotary,
 * grouped-query keys) and NeoX (parallel block, partial rotary).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { executePlan } from '../../src/hooks/execute.ts';
import { readBuffer } from '../../src/gpu/tensor.ts';
import { BASE_CACHE, resumeSteps } from '../../src/experiments/sweep.ts';
import { fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';

const MODELS = ['induction-2l', 'tiny-llama-random', 'tiny-neox-random'] as const;

describe.each(MODELS)('%s resumed passes', (name) => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource(name));
  });
  afterAll(() => model?.destroy());

  it.each([
    { L0: 0, starts: [0, 3, 8], trim: true, columns: true },
    { L0: 1, starts: [2, 5, 9], trim: true, columns: true },
    { L0: 1, starts: [4, 4, 4], trim: false, columns: false }, // uniform start: no row table
    { L0: 1, starts: [1, 6, 10], trim: false, columns: false },
  ])("from layer $L0, starts $starts, trimmed last layer $trim, columns $columns: the full forward's logits", async ({ L0, starts, trim, columns }) => {
    const V = model.config.d_vocab;
    const T = 13;
    const tokens = Array.from({ length: T }, (_, i) => (i * 37 + 5) % V);
    const full = await model.run([tokens], { cache: BASE_CACHE });
    try {
      const want = await full.logits.read(); // [1, T, V]
      const positions = [T - 1, 10];
      const tokenCols = columns ? [3 % V, (V - 1) % V, 17 % V] : null;
      const plan = await model.buildPlan({
        batch: starts.length,
        pos: T,
        fromLayer: L0,
        fromPos: Math.min(...starts),
        starts,
        logitPositions: positions,
        logitTokens: tokenCols ?? undefined,
        trimLastLayer: trim,
      });
      try {
        await executePlan(model.gpu, plan, { before: resumeSteps(model, plan, { tokens: [tokens], cache: full.cache }, starts.length), label: 'resumed' });
        const NV = tokenCols?.length ?? V;
        expect(plan.logitsShape).toEqual([starts.length, positions.length, NV]);
        const got = await readBuffer(model.gpu, plan.logits!, 0, starts.length * positions.length * NV * 4);
        let worst = 0;
        for (let b = 0; b < starts.length; b++) {
          positions.forEach((pos, i) => {
            for (let c = 0; c < NV; c++) {
              const v = tokenCols ? tokenCols[c] : c;
              worst = Math.max(worst, Math.abs(got[(b * positions.length + i) * NV + c] - want[pos * V + v]));
            }
          });
        }
        // Same kernels, same summation order per row: agreement far inside the 1e-4 budget.
        expect(worst).toBeLessThan(1e-5);
      } finally {
        plan.destroy();
      }
    } finally {
      full.release();
    }
  });

  it('row starts outside the pass, or after the first logit position, are refused', async () => {
    const shape = { batch: 2, pos: 9, fromLayer: 0, fromPos: 2, logitPositions: [6] };
    await expect(model.buildPlan({ ...shape, starts: [1, 3] })).rejects.toThrow(/row start 1 must lie in 2 .. 6/);
    await expect(model.buildPlan({ ...shape, starts: [2, 7] })).rejects.toThrow(/row start 7 must lie in 2 .. 6/);
    await expect(model.buildPlan({ ...shape, starts: [2] })).rejects.toThrow(/starts has 1 entries for a batch of 2/);
  });
});
