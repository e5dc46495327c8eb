/**
 * Experiment specs: the TypeScript reader (`parseSpec`) and the published JSON Schema
 * (schema/experiment-v1.schema.json, checked with Python's jsonschema, an independent validator)
 * accept and refuse the same documents; metrics with prompt-relative positions resolve as the
 * prompt changes.
 */
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { PATCH_SITES } from '../../src/experiments/patching.ts';
import { MetricSpecError, checkMetricSpec, parseMetricSyntax, resolveMetricSpec } from '../../src/experiments/metric-spec.ts';
import { SpecError, parseSpec } from '../../src/experiments/spec.ts';
import { ROOT } from '../helpers/browser.ts';
import { runPython } from '../helpers/python.ts';

const schemaPath = join(ROOT, 'schema/experiment-v1.schema.json');
const schema = JSON.parse(readFileSync(schemaPath, 'utf8'));

const VALID: unknown[] = [
  { patchbay: 1, model: { preset: 'induction-2l' }, prompts: { clean: [0, 1, 2], corrupt: [0, 3, 2] }, experiment: { kind: 'patch', site: 'resid_pre', metric: 'logit-diff:-1:247:72', normalize: true } },
  { patchbay: 1, model: { hub: 'openai-community/gpt2', revision: 'main' }, processing: 'transformer-lens', prompts: { clean: 'When Mary and John' }, experiment: { kind: 'sweep-ablate', metric: 'logit-diff:-1:" Mary":" John"', mode: 'mean' } },
  { patchbay: 1, model: { url: '../models/x/' }, prompts: { clean: 'a b' }, interventions: [{ op: 'zero', hook: 'blocks.0.attn.hook_z', head: 2 }], experiment: { kind: 'ablate' }, view: { heads: ['0.2'] } },
  { patchbay: 1, model: { preset: 'gpt2' }, prompts: { clean: 'x', corrupt: 'y' }, experiment: { kind: 'attribute', site: 'z', metric: 'loss:0:-1', method: 'atp*' } },
];

const INVALID: [unknown, RegExp][] = [
  [{ patchbay: 2, model: { preset: 'a' }, prompts: { clean: 'x' }, experiment: { kind: 'ablate' } }, /version 2.*update Patchbay/],
  [{ patchbay: 1, model: { preset: 'a', url: 'b' }, prompts: { clean: 'x' }, experiment: { kind: 'ablate' } }, /spec\.model: unknown field "url"/],
  [{ patchbay: 1, model: { hub: 'gpt2' }, prompts: { clean: 'x' }, experiment: { kind: 'ablate' } }, /spec\.model\.hub: "gpt2" is not a Hub repository id/],
  [{ patchbay: 1, model: { preset: 'a' }, prompts: { clean: [] }, experiment: { kind: 'ablate' } }, /spec\.prompts\.clean/],
  [{ patchbay: 1, model: { preset: 'a' }, prompts: { clean: 'x', corrupt: 'y' }, experiment: { kind: 'patch', site: 'resid_pr', metric: 'loss:0:1' } }, /spec\.experiment\.site: "resid_pr" is not a patching site/],
  [{ patchbay: 1, model: { preset: 'a' }, prompts: { clean: 'x', corrupt: 'y' }, experiment: { kind: 'patch', site: 'z', metric: 'logit-diff:1:2' } }, /spec\.experiment\.metric: metric "logit-diff:1:2"/],
  [{ patchbay: 1, model: { preset: 'a' }, prompts: { clean: 'x' }, experiment: { kind: 'sweep-ablate', metric: 'loss:0:1', mode: 'half' } }, /spec\.experiment\.mode: expected "zero" or "mean"/],
  [{ patchbay: 1, model: { preset: 'a' }, prompts: { clean: 'x' }, interventions: [{ op: 'zero', hook: 'blocks.0.hook_mlp_out', head: 1 }], experiment: { kind: 'ablate' } }, /version 1 specs ablate heads/],
  [{ patchbay: 1, model: { preset: 'a' }, prompts: { clean: 'x' }, experiment: { kind: 'ablate' }, extra: 1 }, /spec: unknown field "extra"/],
];

describe('experiment spec', () => {
  test('the TypeScript reader and the JSON Schema accept the same specs, and refuse the same ones', async () => {
    for (const v of VALID) expect(() => parseSpec(v)).not.toThrow();
    for (const [v, message] of INVALID) expect(() => parseSpec(v)).toThrow(message);
    const dir = mkdtempSync(join(tmpdir(), 'patchbay-schema-'));
    const docs = join(dir, 'docs.json');
    writeFileSync(docs, JSON.stringify([...VALID, ...INVALID.map(([v]) => v)]));
    const check = join(dir, 'check.py');
    writeFileSync(
      check,
      `import json, sys
from jsonschema import Draft202012Validator
schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
v = Draft202012Validator(schema)
print(json.dumps([v.is_valid(d) for d in json.load(open(sys.argv[2]))]))
`,
    );
    const verdicts = JSON.parse(await runPython([check, schemaPath, docs])) as boolean[];
    expect(verdicts).toEqual([...VALID.map(() => true), ...INVALID.map(() => false)]);
  }, 60_000);

  test("the schema's sites are Patchbay's", () => {
    expect(schema.$defs.site.enum).toEqual([...PATCH_SITES]);
  });

  test('a spec that is not a spec says which field is wrong', () => {
    expect(() => parseSpec([])).toThrow(SpecError);
    expect(() => parseSpec({ patchbay: 1, model: { preset: 'a' }, prompts: { clean: 'x' }, experiment: { kind: 'patch', site: 'z', metric: 'loss:0:1' } })).toThrow(/spec\.prompts\.corrupt: patching needs a corrupted prompt/);
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

  test('syntax errors name the field; checks without the tokens skip quoted text', () => {
    expect(() => parseMetricSyntax('logit-diff:x:5:7')).toThrow(/POS "x" is not an integer or a quoted token/);
    expect(() => parseMetricSyntax('prob:-1:-4')).toThrow(/TOKEN "-4" is not a non-negative integer/);
    expect(() => checkMetricSpec(parseMetricSyntax('logit-diff:" John":5:7'), 3, 10)).not.toThrow();
    expect(() => checkMetricSpec(parseMetricSyntax('logit-diff:-1:5:70'), 3, 10)).toThrow(/BAD token 70 is not in the vocabulary/);
  });
});
