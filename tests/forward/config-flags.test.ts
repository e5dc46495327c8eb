/**
 * Config flags are honoured or refused, never ignored.
 * Honoured, against transformers' own logits on tiny checkpoints
 * (tests/fixtures/config-flags/make_config_flags.py): GPT-2's scale_attn_weights = false and
 * scale_attn_by_inverse_layer_idx = true, GPT-NeoX's use_parallel_residual = false and
 * attention_bias = false. Refused with the field named: booleans written as strings,
 * rope_scaling as a string, a model_type that contradicts architectures, and bias tensors
 * that the config's attention_bias / mlp_bias leave out.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import { ConfigError, normalizeConfig } from '../../src/model/normalize-config.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { blobModelSource } from '../../src/model/source.ts';
import { expectClose } from '../helpers/compare.ts';
import { checkpointSource, llamaCheckpoint, neoxCheckpoint } from '../helpers/checkpoints.ts';
import { FIXTURES, fixtureActivations } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';

const DIR = join(FIXTURES, 'config-flags');
const RERUN = 'rerun /work/venv/bin/python tests/fixtures/config-flags/make_config_flags.py';

function folder(name: string) {
  const read = (f: string) => new Uint8Array(readFileSync(join(DIR, name, f)));
  const ref = new SafetensorsFile(read('reference.safetensors'), `${name}/reference.safetensors`);
  return {
    source: blobModelSource({ 'config.json': read('config.json'), 'model.safetensors': read('model.safetensors') }, name),
    ref,
    config: JSON.parse(new TextDecoder().decode(read('config.json'))) as Record<string, unknown>,
  };
}

describe('flags honoured, matching transformers', () => {
  it.each([
    ['gpt2-unscaled', { scale_attn_weights: false }],
    ['gpt2-inverse-layer', { scale_attn_by_inverse_layer_idx: true }],
    ['neox-sequential', { use_parallel_residual: false }],
    ['neox-no-bias', { attention_bias: false }],
  ])('%s (%j): logits within 1e-4 of transformers', async (name, flags) => {
    const { source, ref, config } = folder(name);
    expect(ref.metadata, RERUN).toEqual({ format: 'patchbay-config-flags', version: '1' });
    expect(config).toMatchObject(flags);
    const tokens = Array.from(new BigInt64Array(ref.bytes('tokens').slice().buffer), Number);
    const T = ref.info('tokens').shape[1]!;
    const rows = [tokens.slice(0, T), tokens.slice(T)];
    const model = await loadModel(await testGpu(), source);
    const r = await model.run(rows);
    const err = expectClose('logits', await r.logits.read(), ref.float32('logits'));
    console.log(`${name}: max |logit - transformers| ${err.toExponential(2)}`);
    r.release();
    model.destroy();
  });
});

describe('flags refused, naming the field', () => {
  const gpt2 = () => JSON.parse(readFileSync(join(FIXTURES, 'tiny-gpt2-random', 'config.json'), 'utf8')) as Record<string, unknown>;
  const neox = () => neoxCheckpoint().config;
  const llama = () => llamaCheckpoint().config;

  it.each([
    ['gpt2', 'scale_attn_weights', 'false'],
    ['gpt2', 'scale_attn_by_inverse_layer_idx', 'true'],
    ['gpt2', 'tie_word_embeddings', 'true'],
    ['gpt2', 'add_cross_attention', 0],
    ['neox', 'use_parallel_residual', 'false'],
    ['neox', 'attention_bias', 'false'],
    ['neox', 'tie_word_embeddings', 'false'],
    ['llama', 'attention_bias', 'true'],
    ['llama', 'mlp_bias', 'false'],
    ['llama', 'tie_word_embeddings', 'true'],
  ] as const)('%s: "%s" given as %j', (family, field, value) => {
    const c = { ...(family === 'gpt2' ? gpt2() : family === 'neox' ? neox() : llama()), [field]: value };
    expect(() => normalizeConfig(c)).toThrow(ConfigError);
    expect(() => normalizeConfig(c)).toThrow(`"${field}" must be true or false, got ${JSON.stringify(value)}`);
  });

  it('rope_scaling given as a string', () => {
    for (const c of [
      { ...llama(), rope_scaling: 'linear' },
      { ...neox(), rope_parameters: 'default' },
    ]) {
      expect(() => normalizeConfig(c)).toThrow(/"rope_(scaling|parameters)" must be an object such as \{"rope_type": "linear", "factor": 2\}, got "(linear|default)"/);
    }
  });

  it('a model_type that contradicts architectures', () => {
    expect(() => normalizeConfig({ ...gpt2(), model_type: 'llama' })).toThrow(
      /model_type "llama" does not match architectures \["GPT2LMHeadModel"\] \(a GPT2LMHeadModel config has model_type "gpt2"\)/,
    );
    expect(() => normalizeConfig({ ...llama(), model_type: 'qwen2' })).toThrow(/model_type "qwen2" does not match/);
    expect(normalizeConfig({ ...llama(), model_type: 'llama' }).architecture).toBe('LlamaForCausalLM');
    expect(normalizeConfig({ ...gpt2(), model_type: undefined }).architecture).toBe('GPT2LMHeadModel');
  });

  it('bias tensors that attention_bias / mlp_bias = false leave out', async () => {
    const gpu = await testGpu();
    // A Llama checkpoint with q/k/v biases (written for attention_bias true) under attention_bias false.
    const withBias = llamaCheckpoint({ attention_bias: true });
    await expect(loadModel(gpu, checkpointSource({ ...withBias, config: { ...withBias.config, attention_bias: false } }))).rejects.toThrow(
      /the checkpoint has biases the config leaves out \("model\.layers\.0\.self_attn\.q_proj\.bias", .*config\.json: attention_bias = false\)/,
    );
    // A NeoX checkpoint (which has them) under attention_bias false.
    const n = neoxCheckpoint();
    await expect(loadModel(gpu, checkpointSource({ ...n, config: { ...n.config, attention_bias: false } }))).rejects.toThrow(
      /biases the config leaves out \("gpt_neox\.layers\.0\.attention\.query_key_value\.bias"/,
    );
  });

  it('the flags at their defaults change nothing (the GPT-2 fixture still matches)', async () => {
    const model = await loadModel(
      await testGpu(),
      blobModelSource({
        'config.json': new TextEncoder().encode(JSON.stringify({ ...gpt2(), scale_attn_weights: true, scale_attn_by_inverse_layer_idx: false, reorder_and_upcast_attn: true })),
        'model.safetensors': new Uint8Array(readFileSync(join(FIXTURES, 'tiny-gpt2-random', 'model.safetensors'))),
      }),
    );
    const cases = JSON.parse(readFileSync(join(FIXTURES, 'tiny-gpt2-random', 'cases.json'), 'utf8')) as { prompts: number[][] };
    const r = await model.run(cases.prompts);
    expectClose('logits', await r.logits.read(), fixtureActivations('tiny-gpt2-random').float32('logits'));
    r.release();
    model.destroy();
  });
});
