import { describe, it, expect } from 'vitest';
import { ConfigError, UnsupportedArchitectureError, normalizeConfig } from '../../src/model/normalize-config.ts';
import { fixtureJson } from './fixtures.ts';

const base = () => fixtureJson('tiny-gpt2-random', 'config.json') as Record<string, unknown>;

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

describe('normalizeConfig', () => {
  it('tiny-gpt2-random', () => {
    expect(normalizeConfig(base())).toEqual({
      architecture: 'GPT2LMHeadModel',
      family: 'gpt2',
      d_model: 64,
      n_layers: 2,
      n_heads: 4,
      d_head: 16,
      n_key_value_heads: 4,
      d_mlp: 256,
      n_ctx: 64,
      d_vocab: 1000,
      act_fn: 'gelu_new',
      normalization: 'LN',
      eps: 1e-5,
      positional: 'learned',
      rotary_dim: 0,
      rotary_base: 10000,
      rope_scaling: null,
      parallel_attn_mlp: false,
      gated_mlp: false,
      tied_embeddings: true,
    });
  });

  it('induction-2l', () => {
    expect(normalizeConfig(fixtureJson('induction-2l', 'config.json'))).toEqual({
      architecture: 'GPT2LMHeadModel',
      family: 'gpt2',
      d_model: 128,
      n_layers: 2,
      n_heads: 4,
      d_head: 32,
      n_key_value_heads: 4,
      d_mlp: 512,
      n_ctx: 64,
      d_vocab: 512,
      act_fn: 'gelu_new',
      normalization: 'LN',
      eps: 1e-5,
      positional: 'learned',
      rotary_dim: 0,
      rotary_base: 10000,
      rope_scaling: null,
      parallel_attn_mlp: false,
      gated_mlp: false,
      tied_embeddings: true,
    });
  });

  it('uses n_inner, n_ctx and tie_word_embeddings when given', () => {
    const c = base();
    c.n_inner = 100;
    delete c.n_positions;
    c.n_ctx = 32;
    c.tie_word_embeddings = false;
    c.architectures = ['GPT2Model'];
    expect(normalizeConfig(c)).toMatchObject({ d_mlp: 100, n_ctx: 32, tied_embeddings: false, architecture: 'GPT2Model' });
  });

  it('rejects an unknown architecture, listing the supported ones', () => {
    const c = base();
    c.architectures = ['BertForMaskedLM'];
    const e = errorOf(() => normalizeConfig(c, 'llama/config.json'));
    expect(e).toBeInstanceOf(UnsupportedArchitectureError);
    expect(e.message).toContain('llama/config.json');
    expect(e.message).toContain('BertForMaskedLM');
    expect(e.message).toContain('GPT2LMHeadModel');
  });

  it('rejects a missing architectures field', () => {
    const c = base();
    delete c.architectures;
    const e = errorOf(() => normalizeConfig(c));
    expect(e).toBeInstanceOf(UnsupportedArchitectureError);
    expect(e.message).toMatch(/no "architectures" field.*GPT2LMHeadModel/);
  });

  it('rejects a head count that does not divide n_embd', () => {
    const c = base();
    c.n_head = 5;
    const e = errorOf(() => normalizeConfig(c));
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toBe('config.json: n_embd 64 is not divisible by n_head 5');
  });

  it('names bad fields', () => {
    const c = base();
    c.n_layer = 0;
    expect(() => normalizeConfig(c)).toThrow('config.json: "n_layer" must be a positive integer, got 0');
    const d = base();
    d.vocab_size = '1000';
    expect(() => normalizeConfig(d)).toThrow(/"vocab_size" must be a positive integer, got "1000"/);
    const e = base();
    e.activation_function = 'relu';
    expect(() => normalizeConfig(e)).toThrow(/activation_function "relu" is not supported/);
    const f = base();
    f.layer_norm_epsilon = -1;
    expect(() => normalizeConfig(f)).toThrow(/"layer_norm_epsilon" must be a positive number/);
    const g = base();
    g.scale_attn_by_inverse_layer_idx = 'yes'; // true is honoured (tests/forward/config-flags.test.ts)
    expect(() => normalizeConfig(g)).toThrow(/"scale_attn_by_inverse_layer_idx" must be true or false, got "yes"/);
    expect(() => normalizeConfig(null)).toThrow(/expected a JSON object/);
  });
});
