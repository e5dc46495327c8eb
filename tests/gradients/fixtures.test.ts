/**
 * runWithGrad against the float64 PyTorch gradients of every fixture family (GPT-2 x3, GPT-NeoX,
 * Llama, Qwen3, Gemma 3; GRAD_FIXTURES lists them): every hook point's gradient of the summed logit difference (grads.safetensors) and
 * every weight's gradient of the summed next-token loss (weight_grads.safetensors, under the
 * checkpoint's names and layouts), each within 1e-4 of the reference tensor's largest magnitude,
 * with the backward keeping every layer and recomputing each layer from its resid_pre.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { lossMetric } from '../../src/model/metric.ts';
import { parseMetricSpec } from '../../src/experiments/metric-spec.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { FIXTURES, fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { GRAD_FIXTURES, expectGradClose, fixtureAtp, fixtureGrads, fixtureWeightGrads } from '../helpers/grad-fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';

describe.each(GRAD_FIXTURES)('%s gradients match PyTorch (float64)', (name) => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource(name));
  });
  afterAll(() => model?.destroy());

  it.each(['keep', 'recompute'] as const)('every hook gradient of the logit difference (memory: %s)', async (memory) => {
    const ref = fixtureGrads(name);
    const { prompts } = fixtureCases(name);
    const atp = fixtureAtp(name);
    const r = await model.runWithGrad(prompts, parseMetricSpec(atp.metric_spec, prompts[0]), { memory, grads: ref.names });
    expect(r.memory.mode).toBe(memory);
    // The metric itself: each row's logit difference.
    expect(Math.abs(r.metric[0] - atp.clean_metric)).toBeLessThan(1e-3);
    expect(Math.abs(r.metric[1] - atp.corrupt_metric)).toBeLessThan(1e-3);
    let worst = 0;
    const lines: string[] = [];
    for (const n of ref.names) {
      const t = r.grads.get(n);
      expect(t.shape, n).toEqual(ref.info(n).shape);
      const ratio = expectGradClose(n, await t.read(), ref.float32(n));
      worst = Math.max(worst, ratio);
      lines.push(`${n}: ${ratio.toFixed(3)}`);
    }
    console.log(`${name} (${memory}): ${ref.names.length} hook gradients, worst diff / tolerance ${worst.toFixed(3)}`);
    r.release();
  });

  it('every weight gradient of the summed next-token loss, under checkpoint names', async () => {
    const ref = fixtureWeightGrads(name);
    const { prompts } = fixtureCases(name);
    const T = prompts[0].length;
    const r = await model.runWithGrad(
      prompts,
      prompts.map((p) => lossMetric(p, 0, T - 1)),
      { weights: true, grads: [] },
    );
    expect(Math.abs(r.metric[0] + r.metric[1] - fixtureAtp(name).loss_sum)).toBeLessThan(1e-3);
    const got = await r.weightGrads!.toCheckpoint(ref.names);
    expect([...got.keys()].sort()).toEqual([...ref.names].sort());
    let worst = 0;
    for (const n of ref.names) {
      expect(got.get(n)!.shape, n).toEqual(ref.info(n).shape);
      worst = Math.max(worst, expectGradClose(n, got.get(n)!.data, ref.float32(n)));
    }
    console.log(`${name}: ${ref.names.length} weight gradients, worst diff / tolerance ${worst.toFixed(3)}`);
    r.release();
  });
});

describe.each(['tiny-gpt2-random', 'tiny-llama-random', 'tiny-qwen3-random', 'gemma3-softcap-random'])('%s: weight gradients of a logit difference (two unembedded columns)', (name) => {
  it('match PyTorch (grad_more.py wdiff), tied and untied, through a logit soft-cap', async () => {
    const model = await loadModel(await testGpu(), await fixtureSource(name));
    try {
      const ref = new SafetensorsFile(new Uint8Array(readFileSync(join(FIXTURES, name, 'weight_grads_diff.safetensors'))), 'weight_grads_diff.safetensors');
      const { prompts } = fixtureCases(name);
      const r = await model.runWithGrad(prompts, parseMetricSpec(fixtureAtp(name).metric_spec, prompts[0]), { weights: true, grads: [] });
      const got = await r.weightGrads!.toCheckpoint(ref.names);
      for (const n of ref.names) expectGradClose(n, got.get(n)!.data, ref.float32(n));
      r.release();
    } finally {
      model.destroy();
    }
  });
});
