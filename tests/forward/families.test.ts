/**
 * GPT-NeoX (Pythia) and Llama-style models against Hugging Face: resid_pre of every layer, the
 * attention patterns, the final norm's output and the logits, per tensor, max |error| <=
 * 1e-4 * max(1, max |reference|); and every hook point against the CPU reference forward.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { loadCheckpoint } from '../../src/model/checkpoint.ts';
import { hostWeightsFor } from '../../src/model/host-weights-for.ts';
import { forwardCpu } from '../../src/model/forward.cpu.ts';
import { expectClose } from '../helpers/compare.ts';
import { fixtureActivations, fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';

const FAMILIES = ['tiny-llama-random', 'tiny-neox-random'] as const;

describe.each(FAMILIES)('%s', (name) => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource(name));
  });
  afterAll(() => model?.destroy());

  it('matches Hugging Face', async () => {
    const ref = fixtureActivations(name);
    const { prompts } = fixtureCases(name);
    const result = await model.run(prompts, { cache: ref.names.filter((n) => n !== 'logits') });
    const report: string[] = [];
    for (const n of ref.names) {
      const t = n === 'logits' ? result.logits : result.cache.get(n);
      expect(t.shape, n).toEqual(ref.info(n).shape);
      report.push(`${n}: ${expectClose(n, await t.read(), ref.float32(n)).toExponential(2)}`);
    }
    console.log(`${name}: ${report.join(', ')}`);
    result.release();
  });

  it('every hook point matches the CPU reference forward', async () => {
    const ckpt = await loadCheckpoint(await fixtureSource(name));
    const host = await hostWeightsFor(ckpt.tensors, ckpt.config, ckpt.hfConfig);
    const { prompts } = fixtureCases(name);
    const cpu = forwardCpu(model.config, host, prompts);
    const gpu = await model.run(prompts, { cache: () => true });
    expect(new Set(gpu.cache.names)).toEqual(new Set([...cpu.keys()].filter((n) => n !== 'logits').concat(gpu.cache.names.filter((n) => n.endsWith('hook_result')))));
    for (const n of gpu.cache.names) {
      if (n.endsWith('hook_result')) continue;
      let got = await gpu.cache.read(n);
      let want = cpu.get(n)!;
      if (n.endsWith('hook_attn_scores')) {
        // Masked scores are -inf in both; compare the mask, then the finite scores.
        expect(got.map((x) => +(x === -Infinity))).toEqual(want.map((x) => +(x === -Infinity)));
        got = got.map((x) => (x === -Infinity ? 0 : x));
        want = want.map((x) => (x === -Infinity ? 0 : x));
      }
      expectClose(n, got, want);
    }
    expectClose('logits', await gpu.logits.read(), cpu.get('logits')!);
    gpu.release();
  });
});
