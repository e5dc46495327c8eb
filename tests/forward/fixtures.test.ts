/**
 * The forward against Hugging Face: every TransformerLens-named activation and the logits of
 * the GPT-2 fixtures (two from Hugging Face, the attention-only induction model from its float64
 * reference forward), per tensor, max |error| <= 1e-4 * max(1, max |reference|).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { expectClose, tolerance, maxAbsDiff } from '../helpers/compare.ts';
import { GPT2_EXPERIMENT_FIXTURES, fixtureActivations, fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';

describe.each(GPT2_EXPERIMENT_FIXTURES)('%s forward matches Hugging Face', (name) => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource(name));
  });
  afterAll(() => model?.destroy());

  it('every hook activation and the logits', async () => {
    const ref = fixtureActivations(name);
    const { prompts } = fixtureCases(name);
    const result = await model.run(prompts, { cache: ref.names.filter((n) => n !== 'logits') });
    const report: string[] = [];
    let worst = 0;
    for (const n of ref.names) {
      const t = n === 'logits' ? result.logits : result.cache.get(n);
      expect(t.shape, n).toEqual(ref.info(n).shape);
      const want = ref.float32(n);
      const got = await t.read();
      const diff = expectClose(n, got, want);
      worst = Math.max(worst, diff / tolerance(want));
      report.push(`${n}: ${diff.toExponential(2)} OK`);
    }
    console.log(`${name}: ${ref.names.length} tensors, worst diff/tolerance ${worst.toFixed(3)}\n  ${report.join('\n  ')}`);
    result.release();
  });

  it('batch rows are independent: each prompt alone gives its row of the batched logits', async () => {
    const { prompts } = fixtureCases(name);
    const both = await model.run(prompts);
    const all = await both.logits.read();
    const perRow = all.length / prompts.length;
    for (let b = 0; b < prompts.length; b++) {
      const one = await model.run([prompts[b]]);
      expect(maxAbsDiff(await one.logits.read(), all.subarray(b * perRow, (b + 1) * perRow))).toBeLessThanOrEqual(1e-5);
      one.release();
    }
    both.release();
  });
});
