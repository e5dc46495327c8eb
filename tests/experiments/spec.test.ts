/**
 * Experiment specs: the TypeScript reader (`parseSpec`) and the published JSON Schemas
 * (schema/experiment-v2.schema.json and, for the version 1 specs it still reads,
 * experiment-v1.schema.json; checked with Python's jsonschema, an independent validator) accept
 * and refuse the same documents; version 1 specs read as the version 2 spec they mean; metrics
 * with prompt-relative positions resolve as the prompt changes.
 */
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { PATCH_SITES } from '../../src/experiments/patching.ts';
import { MetricSpecError, checkMetricSpec, parseMetricSyntax, resolveMetricSpec } from '../../src/experiments/metric-spec.ts';
import { SpecError, figureInterventions, parseSpec } from '../../src/experiments/spec.ts';
import { snapshotEncoder } from '../../src/experiments/snapshot.ts';
import { ROOT } from '../helpers/browser.ts';
import { runPython } from '../helpers/python.ts';

const schemaPath = join(ROOT, 'schema/experiment-v2.schema.json');
const schema = JSON.parse(readFileSync(schemaPath, 'utf8'));
const v1SchemaPath = join(ROOT, 'schema/experiment-v1.schema.json');

const VALID: unknown[] = [
  {
    patchbay: 1,
    model: { preset: 'induction-2l' },
    prompts: { clean: [0, 1, 2], corrupt: [0, 3, 2] },
    experiment: { kind: 'patch', site: 'resid_pre', metric: 'logit-diff:-1:247:72', normalize: true },
  },
  {
    patchbay: 1,
    model: { hub: 'openai-community/gpt2', revision: 'main' },
    processing: 'transformer-lens',
    prompts: { clean: 'When Mary and John' },
    experiment: { kind: 'sweep-ablate', metric: 'logit-diff:-1:" Mary":" John"', mode: 'mean' },
  },
  {
    patchbay: 1,
    model: { url: '../models/x/' },
    prompts: { clean: 'a b' },
    interventions: [{ op: 'zero', hook: 'blocks.0.attn.hook_z', head: 2 }],
    experiment: { kind: 'ablate' },
    view: { heads: ['0.2'] },
  },
  { patchbay: 1, model: { preset: 'gpt2' }, prompts: { clean: 'x', corrupt: 'y' }, experiment: { kind: 'attribute', site: 'z', metric: 'loss:0:-1', method: 'atp*' } },
];

const V2_VALID: unknown[] = [
  {
    patchbay: 2,
    model: { preset: 'gpt2' },
    sae: { url: 'hf://google/gemma-scope-2-270m-pt/resid_post_all/layer_12_width_16k_l0_small', error_term: false },
    prompts: { clean: ['a b', 'c d'], corrupt: 'e f', reference: ['g h', [1, 2]] },
    interventions: [
      { op: 'zero', hook: 'blocks.0.attn.hook_z', heads: [2], pos: -1, batch: 0 },
      { op: 'mean', hook: 'blocks.1.hook_resid_pre', pooled: true, from: 'reference' },
      { op: 'patch', hook: 'blocks.0.attn.hook_pattern', pos: [3, -1], key_pos: 0, source_batch: 0 },
      { op: 'scale', hook: 'blocks.0.mlp.hook_post', factor: 0.5 },
      { op: 'set', hook: 'blocks.12.hook_resid_post.hook_sae_acts_post', heads: [7, 9], value: 3 },
      { op: 'add', hook: 'blocks.12.hook_resid_post', feature: 7, coeff: 20 },
      { op: 'add', hook: 'hook_embed', vector: [0.5, -1], pos: 0 },
    ],
    experiment: { kind: 'ablate', metric: 'logit-diff:-1:" Mary":" John"' },
    view: { heads: ['0.2'], feature: 7 },
  },
  {
    patchbay: 2,
    model: { url: 'x/' },
    prompts: {
      clean: [
        [1, 2],
        [3, 4],
      ],
    },
    experiment: { kind: 'ablate' },
  },
  {
    patchbay: 2,
    model: { preset: 'gpt2' },
    prompts: { clean: 'x y', corrupt: 'x z' },
    experiment: { kind: 'attribute', site: 'q_by_pos', metric: 'loss:0:-1', method: 'atp*', verify: 5, normalize: true },
  },
  {
    patchbay: 2,
    model: { url: 'm/' },
    sae: { url: 's/' },
    prompts: { clean: [1, 2], corrupt: [1, 3] },
    experiment: { kind: 'attribute', site: 'features', metric: 'logit-diff:-1:5:6', method: 'atp', k: 3, verify: 2 },
  },
];

const INVALID: [unknown, RegExp][] = [
  [{ patchbay: 3, model: { preset: 'a' }, prompts: { clean: 'x' }, experiment: { kind: 'ablate' } }, /version 3.*update Patchbay/],
  [{ patchbay: 1, model: { preset: 'a', url: 'b' }, prompts: { clean: 'x' }, experiment: { kind: 'ablate' } }, /spec\.model: unknown field "url"/],
  [{ patchbay: 1, model: { hub: 'gpt2' }, prompts: { clean: 'x' }, experiment: { kind: 'ablate' } }, /spec\.model\.hub: "gpt2" is not a Hub repository id/],
  [{ patchbay: 1, model: { preset: 'a' }, prompts: { clean: [] }, experiment: { kind: 'ablate' } }, /spec\.prompts\.clean/],
  [
    { patchbay: 1, model: { preset: 'a' }, prompts: { clean: 'x', corrupt: 'y' }, experiment: { kind: 'patch', site: 'resid_pr', metric: 'loss:0:1' } },
    /spec\.experiment\.site: "resid_pr" is not a patching site/,
  ],
  [
    { patchbay: 1, model: { preset: 'a' }, prompts: { clean: 'x', corrupt: 'y' }, experiment: { kind: 'patch', site: 'z', metric: 'logit-diff:1:2' } },
    /spec\.experiment\.metric: metric "logit-diff:1:2"/,
  ],
  [{ patchbay: 1, model: { preset: 'a' }, prompts: { clean: 'x' }, experiment: { kind: 'sweep-ablate', metric: 'loss:0:1', mode: 'half' } }, /spec\.experiment\.mode: expected "zero" or "mean"/],
  [
    { patchbay: 1, model: { preset: 'a' }, prompts: { clean: 'x' }, interventions: [{ op: 'zero', hook: 'blocks.0.hook_mlp_out', head: 1 }], experiment: { kind: 'ablate' } },
    /version 1 specs ablate heads/,
  ],
  [{ patchbay: 1, model: { preset: 'a' }, prompts: { clean: 'x' }, experiment: { kind: 'ablate' }, extra: 1 }, /spec: unknown field "extra"/],
  [
    { patchbay: 2, model: { preset: 'a' }, prompts: { clean: 'x' }, interventions: [{ op: 'scale', hook: 'blocks.0.hook_resid_pre' }], experiment: { kind: 'ablate' } },
    /interventions\[0\]\.factor: expected a number \(missing\)/,
  ],
  [
    { patchbay: 2, model: { preset: 'a' }, prompts: { clean: 'x' }, interventions: [{ op: 'zero', hook: 'blocks.0.hook_resid_pre', factor: 2 }], experiment: { kind: 'ablate' } },
    /interventions\[0\]: unknown field "factor"/,
  ],
  [
    { patchbay: 2, model: { preset: 'a' }, prompts: { clean: 'x' }, interventions: [{ op: 'zero', hook: 'blocks.0.hook_resid_pre', key_pos: 1 }], experiment: { kind: 'ablate' } },
    /only hook_pattern and hook_attn_scores have key positions/,
  ],
  [{ patchbay: 2, model: { preset: 'a' }, prompts: { clean: 'x' }, interventions: [{ op: 'add', hook: 'hook_embed' }], experiment: { kind: 'ablate' } }, /"add" takes a "vector" or a "feature"/],
  [{ patchbay: 2, model: { preset: 'a' }, prompts: { clean: 'x' }, interventions: [{ op: 'zero', hook: 'resid_pre' }], experiment: { kind: 'ablate' } }, /"resid_pre" is not a hook point name/],
  [
    { patchbay: 2, model: { preset: 'a' }, prompts: { clean: 'x' }, interventions: [{ op: 'zero', hook: 'blocks.0.hook_z', heads: -1 }], experiment: { kind: 'ablate' } },
    /heads: expected an index or a non-empty list of non-negative integers/,
  ],
  [
    { patchbay: 2, model: { preset: 'a' }, prompts: { clean: ['x', 'y'], corrupt: 'z' }, experiment: { kind: 'patch', site: 'z', metric: 'loss:0:1' } },
    /a batch of prompts is for "ablate" experiments/,
  ],
  [
    { patchbay: 2, model: { preset: 'a' }, prompts: { clean: 'x' }, interventions: [{ op: 'patch', hook: 'blocks.0.hook_z', from: 'elsewhere' }], experiment: { kind: 'ablate' } },
    /from: expected "clean" or "corrupt" or "reference"/,
  ],
  [
    { patchbay: 2, model: { preset: 'a' }, sae: { url: 's/' }, prompts: { clean: 'x', corrupt: 'y' }, experiment: { kind: 'attribute', site: 'features', metric: 'loss:0:1', method: 'atp*' } },
    /AtP\* corrects query and key cells; features take "atp"/,
  ],
  [
    { patchbay: 2, model: { preset: 'a' }, prompts: { clean: 'x', corrupt: 'y' }, experiment: { kind: 'attribute', site: 'z', metric: 'loss:0:1', k: 3 } },
    /experiment\.k: features per position is for site "features"/,
  ],
  [
    { patchbay: 2, model: { preset: 'a' }, prompts: { clean: 'x', corrupt: 'y' }, experiment: { kind: 'attribute', site: 'z', metric: 'loss:0:1', verify: 0 } },
    /experiment\.verify: expected the number of cells to re-run exactly/,
  ],
  [
    { patchbay: 2, model: { preset: 'a' }, prompts: { clean: 'x', corrupt: 'y' }, experiment: { kind: 'attribute', site: 'feature', metric: 'loss:0:1' } },
    /"feature" is not a patching site .*or "features" for an SAE's features/,
  ],
  [
    { patchbay: 1, model: { preset: 'a' }, prompts: { clean: 'x', corrupt: 'y' }, experiment: { kind: 'attribute', site: 'z', metric: 'loss:0:1', verify: 2 } },
    /spec\.experiment: unknown field "verify"/,
  ],
];

/** Cross-field rules the reader enforces beyond the schema (a patch needs the prompts it reads, a feature needs an SAE). */
const READER_ONLY: [unknown, RegExp][] = [
  [
    { patchbay: 2, model: { preset: 'a' }, prompts: { clean: 'x' }, interventions: [{ op: 'patch', hook: 'blocks.0.hook_resid_pre' }], experiment: { kind: 'ablate' } },
    /patching from the corrupted run needs spec\.prompts\.corrupt/,
  ],
  [
    { patchbay: 2, model: { preset: 'a' }, prompts: { clean: 'x' }, interventions: [{ op: 'add', hook: 'blocks.0.hook_resid_pre', feature: 3 }], experiment: { kind: 'ablate' } },
    /needs an SAE \(spec\.sae\)/,
  ],
  [
    { patchbay: 2, model: { preset: 'a' }, prompts: { clean: 'x' }, interventions: [{ op: 'zero', hook: 'blocks.0.hook_resid_pre' }], experiment: { kind: 'sweep-ablate', metric: 'loss:0:1' } },
    /only "ablate" experiments take interventions/,
  ],
  [
    { patchbay: 2, model: { preset: 'a' }, prompts: { clean: 'x', corrupt: 'y' }, experiment: { kind: 'attribute', site: 'features', metric: 'loss:0:1' } },
    /"features" attributes to an SAE's features, and the spec splices no SAE/,
  ],
];

describe('experiment spec', () => {
  test('the TypeScript reader and the JSON Schemas accept the same specs, and refuse the same ones', async () => {
    for (const v of [...VALID, ...V2_VALID]) expect(() => parseSpec(v)).not.toThrow();
    for (const [v, message] of [...INVALID, ...READER_ONLY]) expect(() => parseSpec(v)).toThrow(message);
    const dir = mkdtempSync(join(tmpdir(), 'patchbay-schema-'));
    const docs = join(dir, 'docs.json');
    // Each document against the schema of its version.
    const all = [...VALID, ...V2_VALID, ...INVALID.map(([v]) => v)];
    writeFileSync(docs, JSON.stringify(all));
    const check = join(dir, 'check.py');
    writeFileSync(
      check,
      `import json, sys
from jsonschema import Draft202012Validator
schemas = {}
for path in sys.argv[1:3]:
    s = json.load(open(path))
    Draft202012Validator.check_schema(s)
    schemas[s["properties"]["patchbay"]["const"]] = Draft202012Validator(s)
v = lambda d: schemas.get(d.get("patchbay"), schemas[2])
print(json.dumps([v(d).is_valid(d) for d in json.load(open(sys.argv[3]))]))
`,
    );
    const verdicts = JSON.parse(await runPython([check, v1SchemaPath, schemaPath, docs])) as boolean[];
    expect(verdicts).toEqual([...VALID.map(() => true), ...V2_VALID.map(() => true), ...INVALID.map(() => false)]);
  }, 60_000);

  test('a version 1 spec reads as the version 2 spec it means', () => {
    const v1 = parseSpec({
      patchbay: 1,
      model: { preset: 'a' },
      prompts: { clean: 'x' },
      interventions: [
        { op: 'mean', hook: 'blocks.0.attn.hook_z', head: 2 },
        { op: 'mean', hook: 'blocks.1.attn.hook_z', head: 0 },
      ],
      experiment: { kind: 'ablate' },
    });
    expect(v1.patchbay).toBe(2);
    // Version 1's mean was the head's mean over the clean prompt's positions.
    expect(v1.interventions).toEqual([
      { op: 'mean', hook: 'blocks.0.attn.hook_z', heads: [2], pooled: true, from: 'clean' },
      { op: 'mean', hook: 'blocks.1.attn.hook_z', heads: [0], pooled: true, from: 'clean' },
    ]);
    expect(figureInterventions(v1)).toEqual({ heads: ['0.2', '1.0'], mode: 'mean', features: [], steer: null });
    // A version 1 spec keeps its limits: fields of version 2 are unknown there.
    expect(() => parseSpec({ patchbay: 1, model: { preset: 'a' }, prompts: { clean: 'x', reference: ['y'] }, experiment: { kind: 'ablate' } })).toThrow(/spec\.prompts: unknown field "reference"/);
  });

  test('what figures can show of the interventions, and what they cannot', () => {
    const spec = parseSpec(V2_VALID[0]);
    expect(figureInterventions(spec)).toBeNull(); // positions, patches and scales: more than a figure shows
    const fig = parseSpec({
      patchbay: 2,
      model: { preset: 'a' },
      sae: { url: 's/' },
      prompts: { clean: 'x' },
      interventions: [
        { op: 'zero', hook: 'blocks.0.attn.hook_z', heads: [1, 3] },
        { op: 'zero', hook: 'blocks.3.hook_resid_post.hook_sae_acts_post', heads: [9, 4] },
        { op: 'add', hook: 'blocks.3.hook_resid_post', feature: 4, coeff: -2.5 },
      ],
      experiment: { kind: 'ablate' },
    });
    expect(figureInterventions(fig)).toEqual({ heads: ['0.1', '0.3'], mode: 'zero', features: [4, 9], steer: { feature: 4, coeff: -2.5 } });
  });

  test("the schema's sites are Patchbay's", () => {
    expect(schema.$defs.site.enum).toEqual([...PATCH_SITES]);
  });

  test('a spec that is not a spec says which field is wrong', () => {
    expect(() => parseSpec([])).toThrow(SpecError);
    expect(() => parseSpec({ patchbay: 1, model: { preset: 'a' }, prompts: { clean: 'x' }, experiment: { kind: 'patch', site: 'z', metric: 'loss:0:1' } })).toThrow(
      /spec\.prompts\.corrupt: patching needs a corrupted prompt/,
    );
  });
});

describe('prompt-relative metrics', () => {
  const tokenizer = { encode: (t: string) => ({ ' John': [7], ' Mary': [5], ' two tokens': [1, 2] })[t] ?? [] };
  const ids = [3, 5, 9, 7, 4, 7, 8];

  test('positions count from the end, or name the last occurrence of a token', () => {
    expect(resolveMetricSpec(parseMetricSyntax('logit-diff:-1:5:7'), ids, 10)).toMatchObject({ pos: 6, good: 5, bad: 7 });
    expect(resolveMetricSpec(parseMetricSyntax('logit-diff:" John":" Mary":" John"'), ids, 10, tokenizer)).toMatchObject({ pos: 5, good: 5, bad: 7 });
    expect(resolveMetricSpec(parseMetricSyntax('loss:-4:-1'), ids, 10)).toMatchObject({ start: 3, end: 6 });
    // The same metric on a longer prompt still reads its last position.
    expect(resolveMetricSpec(parseMetricSyntax('prob:-1:4'), [...ids, 1, 2], 10)).toMatchObject({ pos: 8 });
  });

  test('a metric that no longer fits the prompt says so, as not applicable', () => {
    const na = (text: string, prompt: number[]) => {
      try {
        resolveMetricSpec(parseMetricSyntax(text), prompt, 10, tokenizer);
      } catch (e) {
        expect(e).toBeInstanceOf(MetricSpecError);
        return e as MetricSpecError;
      }
      throw new Error(`${text} resolved`);
    };
    expect(na('logit-diff:-9:5:7', ids).notApplicable).toBe(true);
    expect(na('logit-diff:-9:5:7', ids).message).toMatch(/does not apply to this 7-token prompt: position -9 counts back past the first token/);
    expect(na('prob:" Mary":4', [3, 7]).message).toMatch(/the token " Mary" \(id 5\) is not in the prompt/);
    expect(na('loss:20:40', ids).message).toMatch(/END 40 is out of range/);
    expect(na('prob:-1:" two tokens"', ids).notApplicable).toBe(false);
    expect(na('prob:-1:" two tokens"', ids).message).toMatch(/is 2 tokens for this tokenizer/);
    expect(() => resolveMetricSpec(parseMetricSyntax('prob:-1:" Mary"'), ids, 10, null)).toThrow(/this model has no tokenizer/);
  });

  test("a snapshot's vocabulary resolves quoted text as the tokenizer did, without it (a page without WebGPU)", () => {
    // What makeSnapshot lists: the prompt's tokens and the metric's, each with its text.
    const snap = { vocab: { 3: 'When', 5: ' Mary', 9: ' and', 7: ' John', 4: ' gave', 8: ' to', 6: 'x', 2: 'x' } };
    const text = 'logit-diff:" John":" Mary":" John"';
    expect(resolveMetricSpec(parseMetricSyntax(text), ids, 10, snapshotEncoder(snap))).toEqual(resolveMetricSpec(parseMetricSyntax(text), ids, 10, tokenizer));
    // Text the snapshot does not list, or lists twice, is not one token.
    expect(() => resolveMetricSpec(parseMetricSyntax('prob:-1:" Bob"'), ids, 10, snapshotEncoder(snap))).toThrow(/" Bob" is 0 tokens/);
    expect(() => resolveMetricSpec(parseMetricSyntax('prob:-1:"x"'), ids, 10, snapshotEncoder(snap))).toThrow(/"x" is 0 tokens/);
  });

  test('syntax errors name the field; checks without the tokens skip quoted text', () => {
    expect(() => parseMetricSyntax('logit-diff:x:5:7')).toThrow(/POS "x" is not an integer or a quoted token/);
    expect(() => parseMetricSyntax('prob:-1:-4')).toThrow(/TOKEN "-4" is not a non-negative integer/);
    expect(() => checkMetricSpec(parseMetricSyntax('logit-diff:" John":5:7'), 3, 10)).not.toThrow();
    expect(() => checkMetricSpec(parseMetricSyntax('logit-diff:-1:5:70'), 3, 10)).toThrow(/BAD token 70 is not in the vocabulary/);
  });
});
