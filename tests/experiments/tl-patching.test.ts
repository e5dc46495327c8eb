/**
 * Every `get_act_patch_*` grid TransformerLens computed (`tl/patching.json`: its 18 functions on
 * the processed model, clean -> corrupted, the metric `atp.json`'s metric_spec, row 0), through
 * TransformerLens' own names (`getActPatch*`), in TransformerLens' shape, per grid max |error| <=
 * 1e-4 * max(1, max |reference|), on the five fixtures it was made for.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { ACT_PATCH, patching } from '../../src/experiments/act-patch.ts';
import { parseMetricSyntax, specToMetric } from '../../src/experiments/metric-spec.ts';
import { expectClose, tolerance } from '../helpers/compare.ts';
import { fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';
import { TL_FIXTURES, tlJson, type TlGrid, type TlPatching } from '../helpers/tl.ts';

describe.each(TL_FIXTURES)("%s: TransformerLens' patching grids", (name) => {
  let model: Model;
  const ref = tlJson<TlPatching>(name, 'patching.json');
  const functions = Object.keys(ref).filter((k) => k.startsWith('get_act_patch_'));
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource(name), { processing: 'transformer-lens' });
  });
  afterAll(() => model?.destroy());

  it('names all 18 functions', () => {
    expect(functions.sort()).toEqual(Object.keys(ACT_PATCH).sort());
  });

  it.each(functions)('%s', async (fn) => {
    const [clean, corrupt] = fixtureCases(name).prompts;
    const metric = specToMetric(parseMetricSyntax(ref.metric), clean);
    const want = ref[fn] as TlGrid | { error: string };
    // get_act_patch_attn_head_out_all_pos -> patching.getActPatchAttnHeadOutAllPos
    const camel = fn.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()) as keyof typeof patching;
    expect(patching[camel], `patching.${camel}`).toBeTypeOf('function');
    const run = () => patching[camel](model, corrupt, clean, metric);
    if ('error' in want) {
      // TransformerLens raised (NeoX's parallel blocks have no resid_mid): so does Patchbay, naming the hook.
      expect(want.error).toMatch(/hook_resid_mid/);
      await expect(run()).rejects.toThrow(/hook_resid_mid, which this model \(GPTNeoXForCausalLM\) does not have/);
      return;
    }
    const grid = await run();
    expect(grid.shape, fn).toEqual(want.shape);
    const diff = expectClose(`${name} ${fn}`, grid.values, want.values);
    console.log(`${name} ${fn} [${grid.shape.join(', ')}]: max |diff| ${diff.toExponential(2)} (tolerance ${tolerance(want.values).toExponential(1)})`);
  });

  it('the unprocessed model gives the same grids: processing changes no logit difference', async () => {
    const raw = await loadModel(await testGpu(), await fixtureSource(name));
    try {
      const [clean, corrupt] = fixtureCases(name).prompts;
      const metric = specToMetric(parseMetricSyntax(ref.metric), clean);
      for (const fn of ['get_act_patch_resid_pre', 'get_act_patch_attn_head_out_all_pos', 'get_act_patch_attn_head_v_by_pos'] as const) {
        const camel = fn.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()) as keyof typeof patching;
        expectClose(`${name} ${fn} on raw weights`, (await patching[camel](raw, corrupt, clean, metric)).values, (ref[fn] as TlGrid).values);
      }
    } finally {
      raw.destroy();
    }
  });
});
