/**
 * SAEs and transcoders spliced into tiny-llama-random's forward, against PyTorch
 * (`tests/fixtures/make/sae_refs.py`: the Hugging Face model with the hook's tensor replaced by the
 * reconstruction): the logits of the spliced run, and the SAE's own hook points in the cache
 * (input, activations, reconstruction), per tensor to 1e-4 × max(1, max |reference|). With the
 * error term the spliced model's logits equal the plain model's (to fp32 noise: the same 1e-4
 * rule against the plain run, and within a few ulps of its largest logit).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { loadSae } from '../../src/features/sae-load.ts';
import type { Sae } from '../../src/features/sae.ts';
import { withErrorTerm } from '../../src/hooks/splice.ts';
import { saeHook } from '../../src/hooks/feature-interventions.ts';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { expectClose, maxAbs, maxAbsDiff } from '../helpers/compare.ts';
import { fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';
import { SAE_FIXTURES, saeFolder, saeReference } from './helpers.ts';

const FOLDERS = ['topk-resid-post-0', 'relu-mlp-out-1', 'skip-transcoder-0', 'gemma-scope-tiny-res/layer_0/width_96/average_l0_19', 'gemma-scope-tiny-res/layer_1/width_64/average_l0_13'];

describe('SAEs spliced into tiny-llama-random', () => {
  let model: Model;
  let prompts: number[][];
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource('tiny-llama-random'));
    prompts = fixtureCases('tiny-llama-random').prompts;
  });
  afterAll(() => model?.destroy());

  describe.each(FOLDERS)('%s', (folder) => {
    let sae: Sae;
    const dir = join(SAE_FIXTURES, 'tiny-llama-random', folder);
    beforeAll(async () => {
      sae = await loadSae(model.gpu, await saeFolder(dir));
    });
    afterAll(() => sae?.destroy());

    it('without the error term: logits and the SAE hooks match PyTorch', async () => {
      const ref = saeReference(dir);
      const names = ['hook_sae_input', 'hook_sae_acts_pre', 'hook_sae_acts_post', 'hook_sae_recons', 'hook_sae_output'] as const;
      const run = await model.run(prompts, { saes: [sae], cache: names.map((n) => saeHook(sae, n)) });
      try {
        const want: Record<(typeof names)[number], string> = {
          hook_sae_input: 'input',
          hook_sae_acts_pre: 'acts_pre',
          hook_sae_acts_post: 'feature_acts',
          hook_sae_recons: 'reconstruction',
          hook_sae_output: 'reconstruction',
        };
        const d: string[] = [];
        for (const n of names) {
          const t = run.cache.get(saeHook(sae, n));
          expect(t.shape).toEqual(ref.info(want[n]).shape);
          d.push(`${n} ${expectClose(n, await t.read(), ref.float32(want[n])).toExponential(2)}`);
        }
        d.push(`logits ${expectClose('logits_spliced_no_error', await run.logits.read(), ref.float32('logits_spliced_no_error')).toExponential(2)}`);
        console.log(`${folder}: ${d.join(', ')}`);
      } finally {
        run.release();
      }
    });

    it("with the error term the logits are the plain model's, and the error is input - reconstruction", async () => {
      const plain = await model.run(prompts);
      const run = await model.run(prompts, { saes: [withErrorTerm(sae)], cache: [saeHook(sae, 'hook_sae_error'), saeHook(sae, 'hook_sae_recons'), sae.hookNameOut] });
      try {
        const a = await run.logits.read();
        const b = await plain.logits.read();
        expectClose('logits with the error term', a, b);
        // fp32 noise: (recons + (x - recons)) differs from x by an ulp or two of x.
        expect(maxAbsDiff(a, b)).toBeLessThan(64 * 2 ** -24 * maxAbs(b));
        const x = await run.cache.read(sae.hookNameOut); // the model's own value, before the splice
        const r = await run.cache.read(saeHook(sae, 'hook_sae_recons'));
        expectClose(
          'error',
          await run.cache.read(saeHook(sae, 'hook_sae_error')),
          x.map((v, i) => v - r[i]),
        );
      } finally {
        run.release();
        plain.release();
      }
    });
  });

  it('refuses an SAE whose width does not match its hook, or two SAEs on one hook', async () => {
    const sae = await loadSae(model.gpu, await saeFolder(join(SAE_FIXTURES, 'tiny-llama-random', 'topk-resid-post-0')));
    try {
      await expect(model.run(prompts, { saes: [sae, sae] })).rejects.toThrow(/two SAEs read blocks\.0\.hook_resid_post/);
      const wrong = { ...sae.config, hook_name: 'blocks.0.mlp.hook_post', hook_name_out: 'blocks.0.mlp.hook_post' };
      Object.defineProperty(sae, 'config', { value: wrong });
      await expect(model.run(prompts, { saes: [sae] })).rejects.toThrow(/d_in = 64 but blocks\.0\.mlp\.hook_post has 176 values per position/);
    } finally {
      sae.destroy();
    }
  });
});
