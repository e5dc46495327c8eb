/**
 * Errors that named the wrong thing: `maxRows: 0` read "Infinity TiB is available"; a
 * replacement for a one-row run asked for "a source of 1 or 1 rows".
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { patchFrom } from '../../src/hooks/interventions.ts';
import { logitDiffMetric } from '../../src/model/metric.ts';
import { patchingSweep } from '../../src/experiments/patching.ts';
import { fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';

const NAME = 'tiny-gpt2-random';
const [clean, corrupt] = fixtureCases(NAME).prompts;
const metric = logitDiffMetric(clean.length - 1, 1, 2);

describe('messages', () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource(NAME));
  });
  afterAll(() => model.destroy());

  it.each([0, -1, 1.5, NaN])('maxRows: %s is refused as not a positive integer', async (maxRows) => {
    const err = await patchingSweep(model, clean, corrupt, 'resid_pre', metric, { maxRows }).catch((e: Error) => e);
    expect(String(err)).toMatch(new RegExp(`maxRows must be a positive integer \\(the most batch rows per pass\\), got ${maxRows}`));
    expect(String(err)).not.toMatch(/Infinity/);
  });

  it('a replacement of the wrong batch for a one-row run asks for "a source of 1 row"', async () => {
    const two = await model.run([clean, corrupt], { cache: ['blocks.0.hook_resid_pre'] });
    const err = await model.run([clean], { hooks: [patchFrom('blocks.0.hook_resid_pre', two.cache)] }).catch((e: Error) => e);
    two.release();
    expect(String(err)).toMatch(/has 2 batch rows and this run one; give sourceBatch, or a source of 1 row$/);
  });
});
