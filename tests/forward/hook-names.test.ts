/**
 * Hook names are typed from the one list in src/model/hook-points.ts: `HookName` / `SiteName`
 * accept exactly the names a model can have (checked here by the type checker, `npm test` runs
 * tsc over tests), the API's `SiteNameLike` still takes any string, and the runtime guards and
 * the "did you mean" message agree with the list.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import { hookNames, isHookName, isSiteName, unknownHookMessage, type HookName, type SaeHookName, type SiteName, type SiteNameLike } from '../../src/model/hook-points.ts';
import type { ActName } from '../../src/hooks/cache-helpers.ts';
import type { ModelConfig } from '../../src/model/config.ts';

describe('hook name types', () => {
  it('accept TransformerLens names and refuse typos', () => {
    expectTypeOf<'blocks.3.attn.hook_z'>().toExtend<HookName>();
    expectTypeOf<'blocks.0.ln1.hook_scale'>().toExtend<HookName>();
    expectTypeOf<'hook_embed'>().toExtend<HookName>();
    expectTypeOf<'unembed.hook_out'>().toExtend<HookName>();
    expectTypeOf<'blocks.0.attn.hook_zz'>().not.toExtend<HookName>();
    expectTypeOf<'blocks.x.attn.hook_z'>().not.toExtend<HookName>();
    expectTypeOf<'ln_final.hook_resid_pre'>().not.toExtend<HookName>();
    // An SAE's sites hang under a model hook point.
    expectTypeOf<'blocks.3.hook_resid_post.hook_sae_acts_post'>().toExtend<SaeHookName>();
    expectTypeOf<'blocks.3.hook_resid_post.hook_sae_acts_post'>().toExtend<SiteName>();
    expectTypeOf<'blocks.3.hook_resid_post.hook_sae_actz'>().not.toExtend<SiteName>();
    // TransformerLens' shorthands for cache lookups.
    expectTypeOf<'pattern'>().toExtend<ActName>();
    expectTypeOf<'k6'>().toExtend<ActName>();
    expectTypeOf<'scale4ln1'>().toExtend<ActName>();
    expectTypeOf<'patern'>().not.toExtend<ActName>();
  });

  it('the API still takes any string (checked when the run is planned)', () => {
    expectTypeOf<string>().toExtend<SiteNameLike>();
    // ...without collapsing to `string`, so an editor still completes the known names.
    expectTypeOf<SiteNameLike>().not.toEqualTypeOf<string>();
  });
});

describe('hook name guards', () => {
  const cfg = { n_layers: 2, d_model: 8, n_heads: 2, n_key_value_heads: 2, d_head: 4, d_mlp: 16, d_vocab: 10, positional: 'rotary', qk_norm: true, post_norms: true, gated_mlp: true } as ModelConfig;

  it('every name a model has passes isHookName and isSiteName', () => {
    const names = hookNames(cfg);
    expect(names.length).toBeGreaterThan(40);
    for (const n of names) {
      expect(isHookName(n), n).toBe(true);
      expect(isSiteName(`${n}.hook_sae_acts_post`), n).toBe(true);
    }
  });

  it('refuse what no model has', () => {
    for (const n of ['blocks.0.attn.hook_zz', 'blocks.01.attn.hook_z', 'blocks.-1.hook_resid_pre', 'blocks..hook_resid_pre', 'hook_resid_pre', 'ln_final.hook_foo', '']) {
      expect(isHookName(n), n).toBe(false);
    }
    expect(isSiteName('blocks.0.hook_resid_post.hook_sae_foo')).toBe(false);
    expect(isSiteName('blocks.0.hook_foo.hook_sae_acts_post')).toBe(false);
  });

  it('an unknown name gets the nearest names', () => {
    expect(unknownHookMessage('blocks.1.attn.hook_zz', hookNames(cfg))).toMatch(/^unknown hook point "blocks.1.attn.hook_zz"; did you mean blocks.1.attn.hook_z\b/);
  });
});
