/**
 * Gradients through spliced SAEs and transcoders (`runWithGrad(..., { saes })`) against float64
 * PyTorch autograd (tests/fixtures/make/sae_grad_ref.py, the SAE written from SAELens' and Gemma
 * Scope 2's definitions): every SAE hook point's gradient (input, pre- and post-activations,
 * reconstruction, error, output) and the model's hooks around it, within 1e-4 of each tensor's
 * largest magnitude, on a JumpReLU SAE with and without the error term and with features zeroed,
 * a TopK SAE with its pre-activations scaled (the error's clean pass fires other units), a skip
 * transcoder with and without the error term, and Gemma Scope 2's affine transcoder reading a
 * norm's output times its gain; both memory modes; and weight gradients of what reads an SAE's
 * output (the backward reads the spliced value there) and of the MLP a transcoder replaces (zero). With the error term and nothing touching the
 * SAE, the model's hooks get the unspliced model's gradients (the reference asserts it too).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { loadSae } from '../../src/features/sae-load.ts';
import type { Sae } from '../../src/features/sae.ts';
import { withErrorTerm } from '../../src/hooks/splice.ts';
import { zeroFeature } from '../../src/hooks/feature-interventions.ts';
import { scaleBy, type Intervention } from '../../src/hooks/interventions.ts';
import { parseMetricSpec } from '../../src/experiments/metric-spec.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { FIXTURES, fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { expectGradClose } from '../helpers/grad-fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';
import { saeFolder } from './helpers.ts';

interface Case {
  model: string;
  sae: string;
  error_term: boolean;
  interventions: Array<{ op: 'zero' | 'scale'; hook: string; features?: number[]; pos?: number[]; factor?: number }>;
  metric_spec: string;
  metric: number[];
  names: string[];
  /** Checkpoint names of weight gradients the reference holds (`CASE/weights/NAME`). */
  weights: string[];
}

const META = JSON.parse(readFileSync(join(FIXTURES, 'saes', 'sae_grads.json'), 'utf8')) as { cases: Record<string, Case> };
const REF = new SafetensorsFile(new Uint8Array(readFileSync(join(FIXTURES, 'saes', 'sae_grads.safetensors'))), 'sae_grads.safetensors');

function interventions(c: Case, sae: Sae): Intervention[] {
  return c.interventions.map((iv) => (iv.op === 'zero' ? zeroFeature(sae, iv.features!) : scaleBy(iv.hook, iv.factor!, { pos: iv.pos })));
}

describe.each(['tiny-gemma3-random', 'tiny-llama-random'])('%s: gradients through spliced SAEs match PyTorch (float64)', (modelName) => {
  let model: Model;
  const saes = new Map<string, Sae>();
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource(modelName));
  });
  afterAll(() => {
    for (const s of saes.values()) s.destroy();
    model?.destroy();
  });
  const sae = async (folder: string) => {
    if (!saes.has(folder)) saes.set(folder, await loadSae(model.gpu, await saeFolder(join(FIXTURES, folder))));
    return saes.get(folder)!;
  };
  const cases = Object.entries(META.cases).filter(([, c]) => c.model === modelName);

  it.each(cases.flatMap(([name]) => (['keep', 'recompute'] as const).map((memory) => [name, memory] as const)))('%s (memory: %s)', async (name, memory) => {
    const c = META.cases[name];
    const s = await sae(c.sae);
    const { prompts } = fixtureCases(modelName);
    const r = await model.runWithGrad(prompts, parseMetricSpec(c.metric_spec, prompts[0]), {
      saes: [c.error_term ? withErrorTerm(s) : s],
      hooks: interventions(c, s),
      grads: c.names,
      memory,
      weights: c.weights.length > 0,
    });
    c.metric.forEach((m, b) => expect(Math.abs(r.metric[b] - m), `metric row ${b}`).toBeLessThan(1e-3));
    let worst = 0;
    for (const n of c.names) {
      const t = r.grads.get(n);
      expect(t.shape, n).toEqual(REF.info(`${name}/${n}`).shape);
      worst = Math.max(worst, expectGradClose(`${name}/${n}`, await t.read(), REF.float32(`${name}/${n}`)));
    }
    if (c.weights.length) {
      const got = await r.weightGrads!.toCheckpoint(c.weights);
      for (const n of c.weights) worst = Math.max(worst, expectGradClose(`${name}/weights/${n}`, got.get(n)!.data, REF.float32(`${name}/weights/${n}`)));
    }
    console.log(`${name} (${memory}): ${c.names.length} gradients${c.weights.length ? ` and ${c.weights.length} weight gradients` : ''}, worst diff / tolerance ${worst.toFixed(3)}`);
    r.release();
  });
});

describe('gradients through an SAE: what runWithGrad refuses', () => {
  it('an SAE writing a norm hook point, by name, before allocating', async () => {
    const gpu = await testGpu();
    const model = await loadModel(gpu, await fixtureSource('tiny-llama-random'));
    // Gemma Scope's npz names no hook: put it on ln2.hook_normalized.
    const src = await saeFolder(join(FIXTURES, 'saes', 'tiny-llama-random', 'gemma-scope-tiny-res', 'layer_0', 'width_96', 'average_l0_19'));
    const s = await loadSae(gpu, { ...src, describe: 'my-sae' }, { hookName: 'blocks.0.ln2.hook_normalized' });
    try {
      const { prompts } = fixtureCases('tiny-llama-random');
      const before = gpu.pool.inUseBytes;
      await expect(model.runWithGrad(prompts, parseMetricSpec('logit-diff:-1:3:4', prompts[0]), { saes: [s] })).rejects.toThrow(/writes blocks\.0\.ln2\.hook_normalized \(a norm's hook point\)/);
      expect(gpu.pool.inUseBytes).toBe(before);
    } finally {
      s.destroy();
      model.destroy();
    }
  });
});
