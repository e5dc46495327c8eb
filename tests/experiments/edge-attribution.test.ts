/**
 * Edge attribution (EAP, and EAP-IG with 5 steps) against a float64 PyTorch forward in which
 * every receiver reads its own copy of the residual stream (grad_more.py eap: each head's q/k/v
 * input and each MLP's input a tensor of its own, as TransformerLens' split inputs): every edge
 * score of the GPT-2 models and the Llama-style ones (RMSNorm, grouped-query attention, SwiGLU,
 * Qwen2 biases, Qwen3 q/k norms), within 1e-4 of the largest |score|; the same senders, receivers
 * and edges. Gemma 3 is refused (its post-attention norm leaves no per-head output).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { edgeAttribution } from '../../src/experiments/edge-attribution.ts';
import { parseMetricSpec } from '../../src/experiments/metric-spec.ts';
import { FIXTURES, fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';

interface EapRef {
  metric_spec: string;
  senders: string[];
  receivers: string[];
  eap: (number | null)[][];
  eap_ig5: (number | null)[][];
}

describe.each(['induction-attn-2l', 'tiny-gpt2-random', 'tiny-llama-random', 'qwen2-bias-random', 'tiny-qwen3-random'])('%s: edge attribution matches PyTorch', (name) => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource(name));
  });
  afterAll(() => model?.destroy());

  it.each([1, 5])('igSteps %i', async (igSteps) => {
    const ref = JSON.parse(readFileSync(join(FIXTURES, name, 'eap.json'), 'utf8')) as EapRef;
    const { prompts } = fixtureCases(name);
    const got = await edgeAttribution(model, prompts[0], prompts[1], parseMetricSpec(ref.metric_spec, prompts[0]), { igSteps });
    expect(got.senders).toEqual(ref.senders);
    expect(got.receivers).toEqual(ref.receivers);
    const want = (igSteps === 1 ? ref.eap : ref.eap_ig5).flat();
    const max = Math.max(...want.map((x) => Math.abs(x ?? 0)));
    let worst = 0;
    want.forEach((x, i) => {
      if (x === null) expect(Number.isNaN(got.scores[i]), `${i} is not an edge`).toBe(true);
      else worst = Math.max(worst, Math.abs(got.scores[i] - x));
    });
    expect(worst, `max |diff| ${worst.toExponential(2)} of max |score| ${max.toExponential(2)}`).toBeLessThanOrEqual(1e-4 * max);
    expect(got.edges).toHaveLength(want.filter((x) => x !== null).length);
    expect(Math.abs(got.edges[0].score)).toBeCloseTo(max, 4);
  });
});

describe('edge attribution on Gemma 3', () => {
  it('is refused by name: ln1_post normalizes the sum of the heads, so no head writes to the residual stream alone', async () => {
    const model = await loadModel(await testGpu(), await fixtureSource('tiny-gemma3-random'));
    try {
      const { prompts } = fixtureCases('tiny-gemma3-random');
      await expect(edgeAttribution(model, prompts[0], prompts[1], parseMetricSpec('logit-diff:-1:5:6', prompts[0]))).rejects.toThrow(/post-attention norm \(ln1_post\)/);
    } finally {
      model.destroy();
    }
  });
});
