/**
 * The SAELens-format JumpReLU SAE of tiny-gemma3-random (`sae-resid-post-3/`) outside any model:
 * feature activations and reconstruction of the reference input match what PyTorch computed
 * (`reference.safetensors`), per tensor to 1e-4 × max(1, max |reference|).
 *
 * JumpReLU's gate (pre > threshold) is a discontinuity. This SAE's thresholds are quantiles of
 * the pre-activations over the fixture's 42 rows, two of which (position 0 of each prompt, the
 * same BOS token) are identical, so a few thresholds equal a pre-activation exactly: there the
 * gate is decided by fp32 rounding, which no other summation order reproduces. Such gates are
 * found from first principles (|pre - threshold| within the fp32 error bound of pre, computed in
 * float64) and either outcome is accepted there; every other feature must match, and rows with
 * such a gate compare their reconstruction against the decoder applied to the GPU's own
 * activations instead. `features.test.ts` pins those gates to the reference's decisions with
 * feature interventions to compare the spliced model's logits.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { openAsBlob, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadSae } from '../../src/features/sae-load.ts';
import type { Sae } from '../../src/features/sae.ts';
import { saeDecodeCpu } from '../../src/gpu/kernels/sae.cpu.ts';
import { blobModelSource } from '../../src/model/source.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { expectClose } from '../helpers/compare.ts';
import { FIXTURES } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';
import { ambiguousGates } from './gates.ts';

const DIR = join(FIXTURES, 'tiny-gemma3-random', 'sae-resid-post-3');
const st = (f: string) => new SafetensorsFile(new Uint8Array(readFileSync(join(DIR, f))), f);

describe('SAELens JumpReLU SAE (tiny-gemma3-random sae-resid-post-3)', () => {
  let sae: Sae;
  const ref = st('reference.safetensors');
  const w = st('sae_weights.safetensors');
  beforeAll(async () => {
    sae = await loadSae(
      await testGpu(),
      blobModelSource({ 'cfg.json': await openAsBlob(join(DIR, 'cfg.json')), 'sae_weights.safetensors': await openAsBlob(join(DIR, 'sae_weights.safetensors')) }, DIR),
    );
  });
  afterAll(() => sae?.destroy());

  it('reads the config', () => {
    expect(sae.config).toMatchObject({
      format: 'saelens',
      architecture: 'jumprelu',
      d_in: 64,
      d_sae: 256,
      d_out: 64,
      hook_name: 'blocks.3.hook_resid_post',
      transcoder: false,
      apply_b_dec_to_input: false,
    });
  });

  it('feature activations and reconstruction match reference.safetensors', async () => {
    const x = ref.float32('input');
    const out = await sae.run(x);
    const acts = ref.float32('feature_acts');
    const D = 256;
    const ambiguous = ambiguousGates(x, w.float32('W_enc'), w.float32('b_enc'), w.float32('threshold'), 64, D);
    // A small fraction of the 10,752 gates; the BOS rows' exact ties among them.
    expect(ambiguous.size).toBeLessThan(64);
    const pinned = Float32Array.from(out.acts, (v, i) => (ambiguous.has(i) ? acts[i] : v));
    const dActs = expectClose('feature_acts', pinned, acts);
    expect(Array.from(pinned, (v) => +(v > 0))).toEqual(Array.from(acts, (v) => +(v > 0)));

    const badRows = new Set([...ambiguous].map((i) => Math.floor(i / D)));
    const recons = ref.float32('reconstruction');
    const clean = (a: Float32Array) => a.filter((_, i) => !badRows.has(Math.floor(i / 64)));
    const dRecons = expectClose('reconstruction (rows without an ambiguous gate)', clean(out.recons), clean(recons));
    const own = new Float32Array(out.recons.length);
    saeDecodeCpu(own, out.acts, w.float32('W_dec'), w.float32('b_dec'), null, out.recons.length / 64, D, 64);
    expectClose('reconstruction of the GPU activations', out.recons, own);
    console.log(`sae fixture: ${ambiguous.size} ambiguous gates in rows ${[...badRows].join(', ')}; acts ${dActs.toExponential(2)}, recons ${dRecons.toExponential(2)}`);
  });
});
