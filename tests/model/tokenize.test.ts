/**
 * Model-level tokenization with TransformerLens' semantics (to_tokens, to_str_tokens,
 * to_single_token, to_string), on the committed GPT-2 tokenizer (known ids in the fixtures
 * README) beside a tiny model's weights, and on the same tokenizer with a post-processor that
 * adds BOS itself (as Llama's does), which takes TransformerLens' other branch.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { blobModelSource } from '../../src/model/source.ts';
import { FIXTURES, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';

const IOI = 'When Mary and John went to the store, John gave a drink to';
const IOI_IDS = [2215, 5335, 290, 1757, 1816, 284, 262, 3650, 11, 1757, 2921, 257, 4144, 284];
const BOS = 50256; // <|endoftext|>, GPT-2's bos_token

const file = (dir: string, f: string) => new Blob([readFileSync(join(FIXTURES, dir, f))]);

/** tiny-gpt2-random's weights with GPT-2's tokenizer (ids past its vocabulary are never run here). */
async function withTokenizer(tokenizerJson?: (j: Record<string, unknown>) => void): Promise<Model> {
  const json = JSON.parse(readFileSync(join(FIXTURES, 'gpt2-tokenizer', 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
  tokenizerJson?.(json);
  return loadModel(
    await testGpu(),
    blobModelSource({
      'config.json': file('tiny-gpt2-random', 'config.json'),
      'model.safetensors': file('tiny-gpt2-random', 'model.safetensors'),
      'tokenizer.json': new Blob([JSON.stringify(json)]),
      'tokenizer_config.json': file('gpt2-tokenizer', 'tokenizer_config.json'),
    }),
  );
}

describe('GPT-2 tokenizer (its post-processor adds no BOS: Patchbay puts <|endoftext|> first, as TransformerLens)', () => {
  let model: Model;
  beforeAll(async () => {
    model = await withTokenizer();
  });
  afterAll(() => model?.destroy());

  it('toTokens: BOS by default, prependBos: false without it', () => {
    expect(model.tokenizer?.prependsBos).toBe(false);
    expect(model.toTokens(IOI)).toEqual([[BOS, ...IOI_IDS]]);
    expect(model.toTokens(IOI, { prependBos: false })).toEqual([IOI_IDS]);
    expect(model.toTokens(' Mary', { prependBos: false })).toEqual([[5335]]);
  });

  it('a batch of texts is padded on the right with the EOS token (GPT-2 has no pad token), or on the left', () => {
    expect(model.toTokens(['When Mary', ' John'])).toEqual([
      [BOS, 2215, 5335],
      [BOS, 1757, BOS],
    ]);
    expect(model.toTokens(['When Mary', ' John'], { paddingSide: 'left', prependBos: false })).toEqual([
      [2215, 5335],
      [BOS, 1757],
    ]);
  });

  it('truncates to the context (n_ctx 64) unless truncate: false', () => {
    const long = ' John'.repeat(100);
    expect(model.toTokens(long)[0]).toHaveLength(64);
    expect(model.toTokens(long)[0][0]).toBe(BOS);
    expect(model.toTokens(long, { truncate: false })[0]).toHaveLength(101);
  });

  it('toStrTokens, toSingleToken, toString', () => {
    expect(model.toStrTokens('When Mary and John')).toEqual(['<|endoftext|>', 'When', ' Mary', ' and', ' John']);
    expect(model.toStrTokens('When Mary', { prependBos: false })).toEqual(['When', ' Mary']);
    expect(model.toStrTokens([2215, 5335])).toEqual(['When', ' Mary']);
    expect(model.toStrTokens(['When', ' Mary'])).toEqual([
      ['<|endoftext|>', 'When'],
      ['<|endoftext|>', ' Mary'],
    ]);
    expect(model.toStrTokens([[2215], [5335, 290]])).toEqual([['When'], [' Mary', ' and']]);
    expect(model.toSingleToken(' Mary')).toBe(5335);
    expect(model.toSingleToken(' John')).toBe(1757);
    expect(() => model.toSingleToken('Mary and')).toThrow(/"Mary and" is 2 tokens \(\[24119, 290\]\), not one/);
    expect(model.toString(IOI_IDS)).toBe(IOI);
    expect(
      model.toString([
        [BOS, 2215],
        [5335, 290],
      ]),
    ).toEqual(['<|endoftext|>When', ' Mary and']);
    expect(model.toString(model.toTokens(IOI)[0])).toBe('<|endoftext|>' + IOI);
    expect(String(model)).toMatch(/^Model\(GPT2LMHeadModel, 2 layers/);
  });
});

describe('a tokenizer whose post-processor adds BOS (Llama-style template)', () => {
  it("uses the tokenizer's own BOS and drops it for prependBos: false", async () => {
    const model = await withTokenizer((j) => {
      const special = { SpecialToken: { id: '<|endoftext|>', type_id: 0 } };
      j.post_processor = {
        type: 'TemplateProcessing',
        single: [special, { Sequence: { id: 'A', type_id: 0 } }],
        pair: [special, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
        special_tokens: { '<|endoftext|>': { id: '<|endoftext|>', ids: [BOS], tokens: ['<|endoftext|>'] } },
      };
    });
    try {
      expect(model.tokenizer?.prependsBos).toBe(true);
      expect(model.toTokens(IOI)).toEqual([[BOS, ...IOI_IDS]]);
      expect(model.toTokens(IOI, { prependBos: false })).toEqual([IOI_IDS]);
    } finally {
      model.destroy();
    }
  });
});

describe('a model without a tokenizer', () => {
  it('says so', async () => {
    const model = await loadModel(await testGpu(), await fixtureSource('tiny-gpt2-random'));
    try {
      expect(model.tokenizer).toBeNull();
      expect(() => model.toTokens('hi')).toThrow(/toTokens needs a tokenizer and this model has none \(its folder has no tokenizer.json/);
      expect(() => model.toString([1, 2])).toThrow(/toString needs a tokenizer/);
    } finally {
      model.destroy();
    }
  });

  it('loadModel(..., { tokenizer: false }) does not ask the source for one', async () => {
    const asked: string[] = [];
    const src = await withTokenizerSource();
    const spy = { ...src, file: (name: string, p?: Parameters<typeof src.file>[1]) => (asked.push(name), src.file(name, p)) };
    const model = await loadModel(await testGpu(), spy, { tokenizer: false });
    expect(model.tokenizer).toBeNull();
    expect(asked.filter((n) => n.startsWith('tokenizer'))).toEqual([]);
    model.destroy();
  });
});

async function withTokenizerSource() {
  return blobModelSource({
    'config.json': file('tiny-gpt2-random', 'config.json'),
    'model.safetensors': file('tiny-gpt2-random', 'model.safetensors'),
    'tokenizer.json': file('gpt2-tokenizer', 'tokenizer.json'),
    'tokenizer_config.json': file('gpt2-tokenizer', 'tokenizer_config.json'),
  });
}
