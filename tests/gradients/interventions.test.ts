/**
 * Gradients PyTorch's autograd gives where the plain fixtures are silent (references by
 * tests/fixtures/make/grad_more.py extra, float64), each within 1e-4 of the reference's largest
 * magnitude, on GPT-2, Llama, sequential GPT-NeoX and Qwen2:
 * - every norm's hook_scale gradient (TransformerLens' scale as a node of the graph);
 * - detached hook_pattern and hook_scale (the linearized backward: the hooks still get their
 *   gradient; nothing flows through them);
 * - through seven interventions at once: a zeroed head, a patched residual position, a scaled
 *   MLP output, an added vector, a mean-ablated MLP position, a zeroed pattern row, a patched
 *   norm scale.
 * Also: what runWithGrad refuses (hook functions, scaling a pattern), with a message naming it.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { parseMetricSpec } from '../../src/experiments/metric-spec.ts';
import { addVector, hookFn, meanAblate, patchFrom, scaleBy, zeroAblate, type Intervention } from '../../src/hooks/interventions.ts';
import type { ActivationCache } from '../../src/hooks/activation-cache.ts';
import { fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { GRAD_EXTRA_FIXTURES, expectGradClose, fixtureGradExtra, type GradExtra } from '../helpers/grad-fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';

/** The reference's intervention list as Patchbay interventions (patch and mean sources from a plain run). */
function interventions(spec: GradExtra, plain: ActivationCache, vector: Float32Array): Intervention[] {
  return spec.interventions.map((iv) => {
    const sel = { ...(iv.batch ? { batch: iv.batch } : {}), ...(iv.pos ? { pos: iv.pos } : {}), ...(iv.heads ? { heads: iv.heads } : {}) };
    switch (iv.op) {
      case 'zero':
        return zeroAblate(iv.hook, sel);
      case 'replace':
        return patchFrom(iv.hook, plain, { ...sel, sourceBatch: iv.sourceBatch });
      case 'scale':
        return scaleBy(iv.hook, iv.factor!, sel);
      case 'add':
        return addVector(iv.hook, vector, 1, sel);
      case 'mean':
        return meanAblate(iv.hook, plain, sel);
      default:
        throw new Error(`unknown op ${iv.op}`);
    }
  });
}

describe.each(GRAD_EXTRA_FIXTURES)('%s: scale, detached and intervened gradients match PyTorch', (name) => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource(name));
  });
  afterAll(() => model?.destroy());

  const compare = async (prefix: string, got: ActivationCache, ref: ReturnType<typeof fixtureGradExtra>['tensors']) => {
    const names = ref.names.filter((n) => n.startsWith(prefix)).map((n) => n.slice(prefix.length));
    expect(names.length).toBeGreaterThan(20);
    let worst = 0;
    for (const n of names) worst = Math.max(worst, expectGradClose(`${prefix}${n}`, await got.get(n).read(), ref.float32(prefix + n)));
    return { worst, count: names.length };
  };

  it('hook_scale gradients (every norm) and every other hook gradient', async () => {
    const { spec, tensors } = fixtureGradExtra(name);
    const { prompts } = fixtureCases(name);
    const r = await model.runWithGrad(prompts, parseMetricSpec(spec.metric_spec, prompts[0]));
    const { worst, count } = await compare('scale/', r.grads, tensors);
    expect(tensors.names.filter((n) => n.startsWith('scale/') && n.endsWith('hook_scale')).length).toBeGreaterThanOrEqual(3);
    console.log(`${name}: ${count} gradients with hook_scale, worst diff / tolerance ${worst.toFixed(3)}`);
    r.release();
  });

  it.each(['keep', 'recompute'] as const)('detached hook_pattern and hook_scale (memory: %s)', async (memory) => {
    const { spec, tensors } = fixtureGradExtra(name);
    const { prompts } = fixtureCases(name);
    const r = await model.runWithGrad(prompts, parseMetricSpec(spec.metric_spec, prompts[0]), { detach: { pattern: true, scale: true }, memory });
    const { worst, count } = await compare('detach/', r.grads, tensors);
    // Detaching changes the gradient, not the forward.
    spec.metric_detached.forEach((m, b) => expect(Math.abs(r.metric[b] - m)).toBeLessThan(1e-3));
    console.log(`${name}: ${count} detached gradients, worst diff / tolerance ${worst.toFixed(3)}`);
    r.release();
  });

  it.each(['keep', 'recompute'] as const)('through seven interventions (memory: %s)', async (memory) => {
    const { spec, tensors } = fixtureGradExtra(name);
    const { prompts } = fixtureCases(name);
    const plain = await model.runWithCache(prompts);
    const hooks = interventions(spec, plain.cache, tensors.float32('vector'));
    const r = await model.runWithGrad(prompts, parseMetricSpec(spec.metric_spec, prompts[0]), { hooks, memory });
    spec.metric_intervened.forEach((m, b) => expect(Math.abs(r.metric[b] - m)).toBeLessThan(1e-3));
    const { worst, count } = await compare('interv/', r.grads, tensors);
    console.log(`${name}: ${count} gradients through interventions, worst diff / tolerance ${worst.toFixed(3)}`);
    r.release();
    plain.release();
  });
});

describe('what runWithGrad refuses', () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource('tiny-gpt2-random'));
  });
  afterAll(() => model?.destroy());
  const { prompts } = fixtureCases('tiny-gpt2-random');
  const metric = parseMetricSpec('logit-diff:10:631:751', prompts[0]);

  it('a hook function, which cannot be differentiated', async () => {
    await expect(model.runWithGrad(prompts, metric, { hooks: [hookFn('blocks.0.hook_resid_pre', () => undefined)] })).rejects.toThrow(
      /hook function at blocks\.0\.hook_resid_pre cannot be differentiated/,
    );
  });

  it('scaling a pattern (its backward reads the softmax output)', async () => {
    await expect(model.runWithGrad(prompts, metric, { hooks: [scaleBy('blocks.0.attn.hook_pattern', 2)] })).rejects.toThrow(/scale intervention on blocks\.0\.attn\.hook_pattern/);
  });

  it('an unknown gradient name, with a suggestion', async () => {
    await expect(model.runWithGrad(prompts, metric, { grads: ['blocks.0.hook_resid_pr'] })).rejects.toThrow(/did you mean blocks\.0\.hook_resid_pre/);
  });

  it('a metric list that does not match the batch', async () => {
    await expect(model.runWithGrad(prompts, [metric], {})).rejects.toThrow(/1 metrics for 2 token rows/);
  });

  it('the model stays usable after a refusal', async () => {
    const r = await model.runWithGrad(prompts, metric, { grads: ['blocks.0.hook_resid_pre'] });
    expect(r.grads.names).toEqual(['blocks.0.hook_resid_pre']);
    r.release();
  });
});
