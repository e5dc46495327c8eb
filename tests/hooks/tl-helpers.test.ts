/**
 * Cache helpers against TransformerLens' own (`tl/helpers.json` and `tl/helpers_extra.json`,
 * computed by TransformerLens on the clean prompt's cache of the processed model), on every
 * fixture TransformerLens ran on: per entry the same labels and shape, values max |error| <=
 * 1e-4 * max(1, max |reference|). Then direct logit attribution adding up to the logit
 * difference, on raw and processed weights of every family.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model, RunResult } from '../../src/hooks/model.ts';
import { getActName, logitAttrs, sumStack, type Stack } from '../../src/hooks/cache-helpers.ts';
import { parseMetricSyntax } from '../../src/experiments/metric-spec.ts';
import { expectClose } from '../helpers/compare.ts';
import { fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';
import { TL_FIXTURES, tlJson, type TlHelpers, type TlPatching, type TlStack } from '../helpers/tl.ts';

type Entry = TlStack | { shape: number[]; values: number[] } | { error: string };

function expectStack(what: string, got: { data: Float32Array; shape: readonly number[]; labels?: readonly string[] }, want: Entry): void {
  if ('error' in want) throw new Error(`${what}: TransformerLens raised ${want.error}`);
  expect(got.shape, `${what} shape`).toEqual(want.shape);
  if ('labels' in want) expect(got.labels, `${what} labels`).toEqual(want.labels);
  expectClose(what, got.data, want.values);
}

describe.each(TL_FIXTURES)("%s: cache helpers equal TransformerLens'", (name) => {
  let model: Model;
  let run: RunResult;
  const h = tlJson<TlHelpers>(name, 'helpers.json');
  const extra = tlJson<
    Record<string, Entry> & { tokens: { good: number; bad: number }; get_act_name: Array<{ args: (string | number)[]; name?: string; error?: string }>; b_U: number[]; clean_logit_diff: number }
  >(name, 'helpers_extra.json');
  const { good, bad } = h.tokens;
  const at = (key: string) => h[key] as TlStack;

  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource(name), { processing: 'transformer-lens' });
    run = await model.runWithCache([fixtureCases(name).prompts[0]]); // no hook_result: head results come from z and W_O
  });
  afterAll(() => {
    run?.release();
    model?.destroy();
  });

  it('helpers.json: accumulated_resid, decompose_resid, stack_head_results (apply_ln, pos_slice=-1), logit_attrs, clean_logit_diff', async () => {
    const c = run.cache;
    const inclMid = !model.config.parallel_attn_mlp;
    for (const applyLn of [true, false]) {
      const key = `accumulated_resid(incl_mid=${inclMid ? 'True' : 'False'}, apply_ln=${applyLn ? 'True' : 'False'}, pos_slice=-1)`;
      expectStack(key, await c.accumulatedResid({ inclMid, applyLn, posSlice: -1 }), at(key));
    }
    const dec = await c.decomposeResid({ applyLn: true, posSlice: -1 });
    expectStack('decompose_resid', dec, at('decompose_resid(apply_ln=True, pos_slice=-1)'));
    expect(c.has('blocks.0.attn.hook_result')).toBe(false);
    const heads = await c.stackHeadResults({ layer: -1, applyLn: true, posSlice: -1 });
    expectStack('stack_head_results', heads, at('stack_head_results(layer=-1, apply_ln=True, pos_slice=-1)'));
    // TransformerLens' logit_attrs scales by ln_final again; these entries pass it normalized stacks.
    expectStack('logit_attrs(decompose_resid(apply_ln=True))', await c.logitAttrs(dec, good, bad), at('logit_attrs(decompose_resid(apply_ln=True), good, bad)'));
    expectStack('logit_attrs(stack_head_results(apply_ln=True))', await logitAttrs(heads, good, bad), at('logit_attrs(stack_head_results(apply_ln=True), good, bad)'));
    // The logit difference at the metric's position (the last one but for tiny-gpt2-random).
    const logits = await run.logits.read();
    const V = model.config.d_vocab;
    const { pos } = metricOf(name);
    expect(Math.abs(logits[pos * V + good] - logits[pos * V + bad] - h.clean_logit_diff)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(h.clean_logit_diff)));
  });

  it('helpers_extra.json: logit_attrs of unnormalized stacks, apply_ln_to_stack into attention and MLP, accumulated_resid up to a layer, decompose modes, remainders, stack_activation, residual directions', async () => {
    const c = run.cache;
    const cases: Array<[string, () => Promise<{ data: Float32Array; shape: readonly number[]; labels?: readonly string[] }>]> = [
      ['logit_attrs(decompose_resid(), good, bad, pos_slice=-1)', async () => c.logitAttrs(await c.decomposeResid({ posSlice: -1 }), good, bad)],
      ['logit_attrs(stack_head_results(), good, bad, pos_slice=-1)', async () => c.logitAttrs(await c.stackHeadResults({ posSlice: -1 }), good, bad)],
      ['logit_attrs(accumulated_resid(), good, bad, pos_slice=-1)', async () => c.logitAttrs(await c.accumulatedResid({ posSlice: -1 }), good, bad)],
      ['apply_ln_to_stack(decompose_resid(layer=1), layer=1, pos_slice=-1)', async () => c.applyLnToStack(await c.decomposeResid({ layer: 1, posSlice: -1 }), { layer: 1 })],
      [
        'apply_ln_to_stack(decompose_resid(layer=1, mlp_input=True), layer=1, mlp_input=True, pos_slice=-1)',
        async () => c.applyLnToStack(await c.decomposeResid({ layer: 1, mlpInput: true, posSlice: -1 }), { layer: 1, mlpInput: true }),
      ],
      ['apply_ln_to_stack(decompose_resid(layer=1), layer=1)', async () => c.applyLnToStack(await c.decomposeResid({ layer: 1 }), { layer: 1 })],
      ['accumulated_resid(layer=1, incl_mid=False, apply_ln=True, pos_slice=-1)', () => c.accumulatedResid({ layer: 1, applyLn: true, posSlice: -1 })],
      ['accumulated_resid(layer=1, incl_mid=False, apply_ln=True, pos_slice=-1, mlp_input=True)', () => c.accumulatedResid({ layer: 1, applyLn: true, posSlice: -1, mlpInput: true })],
      ['accumulated_resid(layer=None, incl_mid=False, apply_ln=False, pos_slice=None)', () => c.accumulatedResid()],
      ["decompose_resid(mode='attn', incl_embeds=False, pos_slice=-1)", () => c.decomposeResid({ mode: 'attn', inclEmbeds: false, posSlice: -1 })],
      ["decompose_resid(layer=1, mode='mlp', pos_slice=-1)", () => c.decomposeResid({ layer: 1, mode: 'mlp', posSlice: -1 })],
      ['stack_head_results(layer=1, pos_slice=-1, incl_remainder=True)', () => c.stackHeadResults({ layer: 1, posSlice: -1, inclRemainder: true })],
      ["stack_activation('pattern')", async () => ({ ...(await c.stackActivation('pattern')), labels: undefined })],
      ["stack_activation('resid_post', layer=1)", async () => ({ ...(await c.stackActivation('resid_post', { layer: 1 })), labels: undefined })],
      ['tokens_to_residual_directions([good, bad])', () => model.tokensToResidualDirections([good, bad])],
    ];
    for (const [key, fn] of cases) {
      const want = extra[key];
      expect(want, key).toBeDefined();
      if ('error' in want) {
        // TransformerLens raised (resid_mid on parallel blocks): so does Patchbay, naming the hook.
        await expect(fn(), key).rejects.toThrow(/hook_resid_mid/);
        continue;
      }
      expectStack(key, await fn(), want);
    }
    // On processed weights ln_final has no bias, so the part of a logit no component writes is b_U.
    expect(Math.abs((await model.logitBias(good)) - extra.b_U[0])).toBeLessThan(1e-5);
    expect(Math.abs((await model.logitBias(bad)) - extra.b_U[1])).toBeLessThan(1e-5);
  });

  it("getActName and cache.get shorthands resolve as TransformerLens' get_act_name and cache[name, layer]", () => {
    for (const e of extra.get_act_name) {
      const [n, layer, type] = e.args as [string, number?, string?];
      if (typeof layer === 'number' && layer < 0) {
        expect(run.cache.get(n, layer, type)).toBe(run.cache.get(e.name!));
        continue;
      }
      expect(getActName(n, layer, type), JSON.stringify(e.args)).toBe(e.name);
    }
    expect(run.cache.get('pattern', 1)).toBe(run.cache.get('blocks.1.attn.hook_pattern'));
    expect(run.cache.get('scale', 0, 'ln2')).toBe(run.cache.get('blocks.0.ln2.hook_scale'));
    expect(run.cache.get('k1')).toBe(run.cache.get('blocks.1.attn.hook_k'));
    expect(() => run.cache.get('pattern')).toThrow(/"attn\.hook_pattern" \(from "pattern"\) is not in this cache/);
  });
});

/** The metric's two tokens and position, as the patching references used them. */
function metricOf(name: string): { pos: number; good: number; bad: number } {
  const spec = parseMetricSyntax(tlJson<TlPatching>(name, 'patching.json').metric);
  if (spec.kind !== 'logit-diff') throw new Error(`${name}: not a logit difference`);
  const { pos, good, bad } = spec;
  if (typeof pos !== 'number' || typeof good !== 'number' || typeof bad !== 'number') throw new Error(`${name}: a metric with absolute numbers expected`);
  return { pos, good, bad };
}

describe.each(TL_FIXTURES)('%s: direct logit attribution adds up to the logit difference', (name) => {
  it('per-layer logit-difference attributions are the same on raw and processed weights', async () => {
    const { pos, good, bad } = metricOf(name);
    const prompts = fixtureCases(name).prompts;
    const layerDla = async (processing: 'none' | 'transformer-lens') => {
      const model = await loadModel(await testGpu(), await fixtureSource(name), { processing });
      const run = await model.runWithCache(prompts);
      try {
        return (await run.cache.logitAttrs(await run.cache.decomposeResid({ posSlice: pos }), good, bad)).data;
      } finally {
        run.release();
        model.destroy();
      }
    };
    expectClose(`${name}: layer DLA, processed vs raw`, await layerDla('transformer-lens'), await layerDla('none'));
  });

  it.each(['none', 'transformer-lens'] as const)('processing %s: layers, heads + remainder, and the residual stream itself', async (processing) => {
    const model = await loadModel(await testGpu(), await fixtureSource(name), { processing });
    const { pos, good, bad } = metricOf(name);
    const prompts = fixtureCases(name).prompts;
    const run = await model.runWithCache(prompts);
    try {
      const logits = await run.logits.read();
      const [B, T, V] = run.logits.shape;
      const bias = (await model.logitBias(good)) - (await model.logitBias(bad));
      const sumOf = async (s: Stack) => sumStack(await logitAttrs(s, good, bad)); // [batch]
      const layers = await sumOf(await run.cache.decomposeResid({ posSlice: pos }));
      const heads = await sumOf(await run.cache.stackHeadResults({ posSlice: pos, inclRemainder: true }));
      const want = Float32Array.from({ length: B }, (_, b) => logits[(b * T + pos) * V + good] - logits[(b * T + pos) * V + bad] - bias);
      expectClose(`${name} ${processing}: DLA of the layers`, layers, want);
      expectClose(`${name} ${processing}: DLA of the heads and the remainder`, heads, want);
      // The same through ln_final's normalized input and the logit-difference direction.
      const dir = await model.logitDiffDirection(good, bad);
      const normalized = await run.cache.read('ln_final.hook_normalized');
      const C = model.config.d_model;
      const dots = Float32Array.from({ length: B }, (_, b) => dir.reduce((s, d, c) => s + d * normalized[(b * T + pos) * C + c], 0));
      expectClose(`${name} ${processing}: direction . ln_final.hook_normalized`, dots, want);
      if (model.config.normalization === 'RMS' && processing === 'none') expect(bias).toBe(0); // no bias to leave out: the sum is the logit difference
    } finally {
      run.release();
      model.destroy();
    }
  });
});
