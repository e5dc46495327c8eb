/**
 * Raw-weight parity with TransformerLens: Patchbay's default `runWithCache` holds exactly the
 * hook points of TransformerLens' own `run_with_cache` (weights loaded with every processing flag
 * off, `tl/raw.safetensors`), and every tensor matches, max |error| <= 1e-4 * max(1, max |ref|),
 * on the seven fixtures TransformerLens ran on. TransformerLens' conventions, as its data shows
 * them: `hook_attn_scores` is scaled by 1/sqrt(d_head) and -inf above the diagonal (compared as a
 * mask, then the finite scores); with grouped-query attention `hook_k` / `hook_v` (and
 * `hook_rot_k`) have the key/value head count; `hook_rot_q` / `hook_rot_k` are q and k after the
 * rotary embedding; `unembed.hook_in` is ln_final's output after its gain and bias.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, expect, afterAll } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { expectClose, tolerance } from '../helpers/compare.ts';
import { FIXTURES, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';
import { TL_FIXTURES } from '../helpers/tl.ts'; // the five shared fixtures and two more (tests/fixtures/make/tl_refs.py)

function tlFile(name: string, file: string): SafetensorsFile {
  return new SafetensorsFile(new Uint8Array(readFileSync(join(FIXTURES, name, 'tl', file))), `${name}/tl/${file}`);
}
const tlPrompts = (name: string): number[][] => (JSON.parse(readFileSync(join(FIXTURES, name, 'tl', 'versions.json'), 'utf8')) as { prompts: number[][] }).prompts;

describe.each(TL_FIXTURES)("%s: the raw cache equals TransformerLens' run_with_cache", (name) => {
  let model: Model | undefined;
  afterAll(() => model?.destroy());

  it('same hook points, every tensor within 1e-4 of its scale', async () => {
    model = await loadModel(await testGpu(), await fixtureSource(name));
    const ref = tlFile(name, 'raw.safetensors');
    const run = await model.runWithCache(tlPrompts(name));
    expect(new Set([...run.cache.names, 'logits'])).toEqual(new Set(ref.names));
    const report: string[] = [];
    let worst = 0;
    for (const n of ref.names) {
      const t = n === 'logits' ? run.logits : run.cache.get(n);
      expect(t.shape, n).toEqual(ref.info(n).shape);
      let got = await t.read();
      let want = ref.float32(n);
      if (n.endsWith('hook_attn_scores')) {
        // Masked scores are -inf in both: compare the mask, then the finite scores.
        expect(
          got.map((x) => +(x === -Infinity)),
          `${n} mask`,
        ).toEqual(want.map((x) => +(x === -Infinity)));
        got = got.map((x) => (x === -Infinity ? 0 : x));
        want = want.map((x) => (x === -Infinity ? 0 : x));
      }
      const diff = expectClose(n, got, want);
      worst = Math.max(worst, diff / tolerance(want));
      report.push(`${n}: ${diff.toExponential(2)}`);
    }
    console.log(`${name}: ${ref.names.length} TransformerLens tensors, worst diff/tolerance ${worst.toFixed(3)}\n  ${report.join('\n  ')}`);
    run.release();
  });
});
