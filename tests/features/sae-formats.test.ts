/**
 * Every SAE format and architecture against PyTorch (`tests/fixtures/make/sae_refs.py`), outside
 * any model: SAELens TopK (b_dec subtracted from the input), SAELens' pre-6 flat cfg.json (ReLU),
 * a SAELens skip transcoder, Gemma Scope params.npz (stored and deflated; the hook read from the
 * folder path), and Gemma Scope 2 config.json + params.safetensors (a BF16 affine transcoder, an
 * SAE on the attention output's input). Pre-activations, feature activations and reconstructions
 * match per tensor to 1e-4 × max(1, max |reference|); the fixtures' gates and TopK gaps are
 * well-conditioned (see the script), so the same features must fire.
 */
import { describe, it, expect } from 'vitest';
import { join } from 'node:path';
import { loadSae } from '../../src/features/sae-load.ts';
import type { SaeConfig } from '../../src/features/sae-config.ts';
import { expectClose } from '../helpers/compare.ts';
import { testGpu } from '../helpers/gpu.ts';
import { SAE_FIXTURES, saeFolder, saeReference } from './helpers.ts';

const CASES: Array<[string, Partial<SaeConfig>]> = [
  ['tiny-llama-random/topk-resid-post-0', { format: 'saelens', architecture: 'topk', k: 6, d_sae: 96, hook_name: 'blocks.0.hook_resid_post', apply_b_dec_to_input: true, transcoder: false }],
  ['tiny-llama-random/relu-mlp-out-1', { format: 'saelens', architecture: 'relu', d_sae: 80, hook_name: 'blocks.1.hook_mlp_out', apply_b_dec_to_input: true }],
  ['tiny-llama-random/skip-transcoder-0', { format: 'saelens', architecture: 'relu', transcoder: true, skip: true, hook_name: 'blocks.0.hook_resid_mid', hook_name_out: 'blocks.0.hook_mlp_out' }],
  ['tiny-llama-random/gemma-scope-tiny-res/layer_0/width_96/average_l0_19', { format: 'gemma-scope', architecture: 'jumprelu', d_sae: 96, hook_name: 'blocks.0.hook_resid_post' }],
  ['tiny-llama-random/gemma-scope-tiny-res/layer_1/width_64/average_l0_13', { format: 'gemma-scope', architecture: 'jumprelu', d_sae: 64, hook_name: 'blocks.1.hook_resid_post' }],
  [
    'tiny-gemma3-random/transcoder_all/layer_2_width_96_l0_small_affine',
    {
      format: 'gemma-scope-2',
      architecture: 'jumprelu',
      transcoder: true,
      skip: true,
      hook_name: 'blocks.2.ln2.hook_normalized',
      hook_name_out: 'blocks.2.hook_mlp_out',
      input_gain: 'blocks.2.ln2.w',
    },
  ],
  ['tiny-gemma3-random/attn_out_all/layer_1_width_80_l0_small', { format: 'gemma-scope-2', architecture: 'jumprelu', transcoder: false, d_in: 64, hook_name: 'blocks.1.attn.hook_z' }],
];

describe.each(CASES)('%s', (folder, expected) => {
  it('config, pre-activations, feature activations and reconstruction match PyTorch', async () => {
    const dir = join(SAE_FIXTURES, folder);
    const sae = await loadSae(await testGpu(), await saeFolder(dir));
    try {
      expect(sae.config).toMatchObject(expected);
      const ref = saeReference(dir);
      const out = await sae.run(ref.float32('input'));
      const acts = ref.float32('feature_acts');
      const d = [expectClose('acts_pre', out.pre, ref.float32('acts_pre')), expectClose('feature_acts', out.acts, acts), expectClose('reconstruction', out.recons, ref.float32('reconstruction'))];
      expect(Array.from(out.acts, (v) => +(v > 0))).toEqual(Array.from(acts, (v) => +(v > 0)));
      console.log(`${folder}: ${d.map((x) => x.toExponential(2)).join(', ')}`);
    } finally {
      sae.destroy();
    }
  });
});

describe('loading errors name the problem', () => {
  it('a folder without an SAE', async () => {
    await expect(loadSae(await testGpu(), await saeFolder(join(SAE_FIXTURES, 'tiny-llama-random')))).rejects.toThrow(/no SAE in .*cfg\.json \+ sae_weights\.safetensors/);
  });
  it('a params.npz with no hook in its path and none given', async () => {
    const src = await saeFolder(join(SAE_FIXTURES, 'tiny-llama-random/gemma-scope-tiny-res/layer_0/width_96/average_l0_19'));
    await expect(loadSae(await testGpu(), { ...src, describe: 'my-sae' })).rejects.toThrow(/names no hook point; pass hookName/);
    const sae = await loadSae(await testGpu(), { ...src, describe: 'my-sae' }, { hookName: 'blocks.0.hook_resid_post' });
    expect(sae.hookName).toBe('blocks.0.hook_resid_post');
    sae.destroy();
  });
});
