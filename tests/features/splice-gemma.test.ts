/**
 * SAEs on tiny-gemma3-random, spliced into the forward, against PyTorch:
 *   - `sae-resid-post-3` (SAELens JumpReLU on blocks.3.hook_resid_post, `reference.safetensors`
 *     from the fixture's make/hf_more.py): the hook's input, the feature activations, the
 *     reconstruction and the logits of the model with the residual replaced by the
 *     reconstruction, per tensor to 1e-4 × max(1, max |reference|);
 *   - Gemma Scope 2's layout (`make/sae_refs.py`): a BF16 affine transcoder from
 *     pre_feedforward_layernorm's output (ln2.hook_normalized times ln2's gain) to
 *     post_feedforward_layernorm's output (hook_mlp_out), and an SAE on o_proj's input (hook_z);
 *   - with the error term, the logits of the plain model.
 *
 * `sae-resid-post-3`'s thresholds are quantiles of the fixture's own pre-activations, so a few
 * pre-activations sit exactly on their threshold in the reference (see sae-fixture.test.ts) and
 * the model's own fp32 rounding of the input decides those gates. The test finds every gate
 * where this run's decision differs from the reference's, requires each to lie within the
 * rounding bound of its threshold (input difference times sum |W_enc| plus the fp32 sum bound),
 * and pins exactly those to the reference's decision with feature interventions, then compares.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { loadSae } from '../../src/features/sae-load.ts';
import type { Sae } from '../../src/features/sae.ts';
import { withErrorTerm } from '../../src/hooks/splice.ts';
import { clampFeature, saeHook, zeroFeature } from '../../src/hooks/feature-interventions.ts';
import type { Intervention } from '../../src/hooks/interventions.ts';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { expectClose, maxAbsDiff } from '../helpers/compare.ts';
import { fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';
import { gamma } from '../kernels/check.ts';
import { GEMMA_SAE, SAE_FIXTURES, saeFolder, saeReference } from './helpers.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { readFileSync } from 'node:fs';

describe('SAEs spliced into tiny-gemma3-random', () => {
  let model: Model;
  let prompts: number[][];
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource('tiny-gemma3-random'));
    prompts = fixtureCases('tiny-gemma3-random').prompts;
  });
  afterAll(() => model?.destroy());

  describe('sae-resid-post-3 (SAELens JumpReLU)', () => {
    let sae: Sae;
    beforeAll(async () => {
      sae = await loadSae(model.gpu, await saeFolder(GEMMA_SAE));
    });
    afterAll(() => sae?.destroy());

    it('feature activations, reconstruction and spliced logits match reference.safetensors', async () => {
      const ref = saeReference(GEMMA_SAE);
      const w = new SafetensorsFile(new Uint8Array(readFileSync(join(GEMMA_SAE, 'sae_weights.safetensors'))), 'sae_weights');
      const names = [saeHook(sae, 'hook_sae_input'), saeHook(sae, 'hook_sae_acts_pre'), saeHook(sae, 'hook_sae_acts_post')];
      const first = await model.run(prompts, { saes: [sae], cache: names });
      const x = await first.cache.read(names[0]);
      const pre = await first.cache.read(names[1]);
      const acts = await first.cache.read(names[2]);
      first.release();
      const xRef = ref.float32('input');
      const dx = expectClose('hook_sae_input', x, xRef);

      // Gates decided differently from the reference must be within rounding of their threshold.
      const D = 64;
      const F = 256;
      const T = prompts[0].length;
      const W = w.float32('W_enc');
      const thr = w.float32('threshold');
      const refActs = ref.float32('feature_acts');
      const pins: Intervention[] = [];
      for (let r = 0; r < x.length / D; r++) {
        for (let f = 0; f < F; f++) {
          const i = r * F + f;
          if (acts[i] > 0 === refActs[i] > 0) continue;
          let absW = 0;
          let mag = Math.abs(w.float32('b_enc')[f]);
          for (let k = 0; k < D; k++) {
            absW += Math.abs(W[k * F + f]);
            mag += Math.abs(x[r * D + k] * W[k * F + f]);
          }
          const bound = dx * absW + 2 * gamma(D + 1) * mag;
          expect(Math.abs(pre[i] - thr[f]), `gate (row ${r}, feature ${f}) differs from the reference by more than rounding`).toBeLessThanOrEqual(bound);
          const sel = { batch: Math.floor(r / T), pos: r % T };
          pins.push(refActs[i] > 0 ? clampFeature(sae, f, refActs[i], sel) : zeroFeature(sae, f, sel));
        }
      }
      expect(pins.length).toBeLessThan(16);

      const run = await model.run(prompts, { saes: [sae], hooks: pins, cache: [saeHook(sae, 'hook_sae_acts_post'), saeHook(sae, 'hook_sae_recons')] });
      try {
        const d = [
          expectClose('feature_acts', await run.cache.read(saeHook(sae, 'hook_sae_acts_post')), refActs),
          expectClose('reconstruction', await run.cache.read(saeHook(sae, 'hook_sae_recons')), ref.float32('reconstruction')),
          expectClose('logits_spliced_no_error', await run.logits.read(), ref.float32('logits_spliced_no_error')),
        ];
        console.log(
          `sae-resid-post-3 spliced: ${pins.length} gates pinned; input ${dx.toExponential(2)}, acts ${d[0].toExponential(2)}, recons ${d[1].toExponential(2)}, logits ${d[2].toExponential(2)}`,
        );
      } finally {
        run.release();
      }
    });

    it("with the error term the logits are the plain model's", async () => {
      const plain = await model.run(prompts);
      const run = await model.run(prompts, { saes: [withErrorTerm(sae)] });
      const a = await run.logits.read();
      const b = await plain.logits.read();
      expectClose('logits with the error term', a, b);
      console.log(`sae-resid-post-3 with the error term: max |logit change| ${maxAbsDiff(a, b).toExponential(2)}`);
      run.release();
      plain.release();
    });
  });

  describe.each(['transcoder_all/layer_2_width_96_l0_small_affine', 'attn_out_all/layer_1_width_80_l0_small'])('Gemma Scope 2: %s', (folder) => {
    const dir = join(SAE_FIXTURES, 'tiny-gemma3-random', folder);
    let sae: Sae;
    beforeAll(async () => {
      sae = await loadSae(model.gpu, await saeFolder(dir));
    });
    afterAll(() => sae?.destroy());

    it('spliced: the SAE hooks and the logits match PyTorch; with the error term the plain logits', async () => {
      const ref = saeReference(dir);
      const run = await model.run(prompts, { saes: [sae], cache: [saeHook(sae, 'hook_sae_input'), saeHook(sae, 'hook_sae_acts_post'), saeHook(sae, 'hook_sae_recons')] });
      const plain = await model.run(prompts);
      const withError = await model.run(prompts, { saes: [withErrorTerm(sae)] });
      try {
        const d = [
          expectClose('input', await run.cache.read(saeHook(sae, 'hook_sae_input')), ref.float32('input')),
          expectClose('feature_acts', await run.cache.read(saeHook(sae, 'hook_sae_acts_post')), ref.float32('feature_acts')),
          expectClose('reconstruction', await run.cache.read(saeHook(sae, 'hook_sae_recons')), ref.float32('reconstruction')),
          expectClose('logits_spliced_no_error', await run.logits.read(), ref.float32('logits_spliced_no_error')),
        ];
        expectClose('logits with the error term', await withError.logits.read(), await plain.logits.read());
        console.log(`${folder}: ${d.map((v) => v.toExponential(2)).join(', ')}`);
      } finally {
        for (const r of [run, plain, withError]) r.release();
      }
    });
  });
});
