/**
 * TransformerLens' patching functions under their own names, so a ported notebook reads the
 * same: `patching.get_act_patch_resid_pre(model, corrupted_tokens, clean_cache, metric)` becomes
 *
 *   const { cache: cleanCache } = await model.runWithCache(cleanTokens);
 *   const grid = await patching.getActPatchResidPre(model, corruptedTokens, cleanCache, metric);
 *
 * Each is `patchingSweep` on one site (see `patching.ts`), with TransformerLens' argument order
 * and grid shape. Differences from TransformerLens: `metric` is a Patchbay metric (a logit
 * difference, log-prob, prob or loss, computed on the GPU per prompt), one for every pair or one
 * per pair, reduced over a batch by `options.reduce` (mean by default) and normalized with
 * `options.normalize`, where TransformerLens takes a function of the logits; the clean argument
 * may also be the clean token ids; and the result is a `Grid` ({ shape, axes, values, clean,
 * corrupt }) rather than a tensor.
 */
import type { ActivationCache } from '../hooks/activation-cache.ts';
import type { Model } from '../hooks/model.ts';
import type { Metrics } from '../model/metric.ts';
import { patchingSweep, type Grid, type PatchSite, type PatchingOptions, type Prompts } from './patching.ts';

/** TransformerLens' function name -> Patchbay's site. */
export const ACT_PATCH = {
  get_act_patch_resid_pre: 'resid_pre',
  get_act_patch_resid_mid: 'resid_mid',
  get_act_patch_attn_out: 'attn_out',
  get_act_patch_mlp_out: 'mlp_out',
  get_act_patch_block_every: 'block_every',
  get_act_patch_attn_head_out_all_pos: 'z',
  get_act_patch_attn_head_q_all_pos: 'q',
  get_act_patch_attn_head_k_all_pos: 'k',
  get_act_patch_attn_head_v_all_pos: 'v',
  get_act_patch_attn_head_pattern_all_pos: 'pattern',
  get_act_patch_attn_head_out_by_pos: 'z_by_pos',
  get_act_patch_attn_head_q_by_pos: 'q_by_pos',
  get_act_patch_attn_head_k_by_pos: 'k_by_pos',
  get_act_patch_attn_head_v_by_pos: 'v_by_pos',
  get_act_patch_attn_head_pattern_by_pos: 'pattern_by_pos',
  get_act_patch_attn_head_pattern_dest_src_pos: 'pattern_dest_src',
  get_act_patch_attn_head_all_pos_every: 'head_all_pos_every',
  get_act_patch_attn_head_by_pos_every: 'head_by_pos_every',
} as const satisfies Record<string, PatchSite>;

export type ActPatchName = keyof typeof ACT_PATCH;

/** A TransformerLens patching function: (model, corrupted tokens, clean cache or tokens, metric). */
export type ActPatchFn = (model: Model, corruptedTokens: Prompts, clean: ActivationCache | Prompts, metric: Metrics, options?: PatchingOptions) => Promise<Grid>;

/** The function TransformerLens calls `name` (e.g. 'get_act_patch_resid_pre'). */
export function actPatch(name: ActPatchName): ActPatchFn {
  const site = ACT_PATCH[name];
  if (!site) throw new Error(`unknown patching function "${String(name)}"; TransformerLens has ${Object.keys(ACT_PATCH).join(', ')}`);
  return (model, corruptedTokens, clean, metric, options) => patchingSweep(model, clean, corruptedTokens, site, metric, options);
}

/** [layer, pos] */
export const getActPatchResidPre = actPatch('get_act_patch_resid_pre');
/** [layer, pos]; not on parallel blocks (GPT-NeoX), which have no resid_mid */
export const getActPatchResidMid = actPatch('get_act_patch_resid_mid');
/** [layer, pos] */
export const getActPatchAttnOut = actPatch('get_act_patch_attn_out');
/** [layer, pos] */
export const getActPatchMlpOut = actPatch('get_act_patch_mlp_out');
/** [3, layer, pos]: resid_pre, attn_out, mlp_out */
export const getActPatchBlockEvery = actPatch('get_act_patch_block_every');
/** [layer, head]: hook_z, every position */
export const getActPatchAttnHeadOutAllPos = actPatch('get_act_patch_attn_head_out_all_pos');
/** [layer, head] */
export const getActPatchAttnHeadQAllPos = actPatch('get_act_patch_attn_head_q_all_pos');
/** [layer, key/value head] */
export const getActPatchAttnHeadKAllPos = actPatch('get_act_patch_attn_head_k_all_pos');
/** [layer, key/value head] */
export const getActPatchAttnHeadVAllPos = actPatch('get_act_patch_attn_head_v_all_pos');
/** [layer, head] */
export const getActPatchAttnHeadPatternAllPos = actPatch('get_act_patch_attn_head_pattern_all_pos');
/** [layer, pos, head] */
export const getActPatchAttnHeadOutByPos = actPatch('get_act_patch_attn_head_out_by_pos');
/** [layer, pos, head] */
export const getActPatchAttnHeadQByPos = actPatch('get_act_patch_attn_head_q_by_pos');
/** [layer, pos, key/value head] */
export const getActPatchAttnHeadKByPos = actPatch('get_act_patch_attn_head_k_by_pos');
/** [layer, pos, key/value head] */
export const getActPatchAttnHeadVByPos = actPatch('get_act_patch_attn_head_v_by_pos');
/** [layer, head, dest_pos] */
export const getActPatchAttnHeadPatternByPos = actPatch('get_act_patch_attn_head_pattern_by_pos');
/** [layer, head, dest_pos, src_pos] */
export const getActPatchAttnHeadPatternDestSrcPos = actPatch('get_act_patch_attn_head_pattern_dest_src_pos');
/** [5, layer, head]: z, q, k, v, pattern (k and v padded to n_heads with 0) */
export const getActPatchAttnHeadAllPosEvery = actPatch('get_act_patch_attn_head_all_pos_every');
/** [5, layer, pos, head]: z, q, k, v, pattern (k and v padded to n_heads with 0) */
export const getActPatchAttnHeadByPosEvery = actPatch('get_act_patch_attn_head_by_pos_every');

/** The 18 functions as one object, for `patching.getActPatchResidPre(...)` as in TransformerLens. */
export const patching = {
  getActPatchResidPre,
  getActPatchResidMid,
  getActPatchAttnOut,
  getActPatchMlpOut,
  getActPatchBlockEvery,
  getActPatchAttnHeadOutAllPos,
  getActPatchAttnHeadQAllPos,
  getActPatchAttnHeadKAllPos,
  getActPatchAttnHeadVAllPos,
  getActPatchAttnHeadPatternAllPos,
  getActPatchAttnHeadOutByPos,
  getActPatchAttnHeadQByPos,
  getActPatchAttnHeadKByPos,
  getActPatchAttnHeadVByPos,
  getActPatchAttnHeadPatternByPos,
  getActPatchAttnHeadPatternDestSrcPos,
  getActPatchAttnHeadAllPosEvery,
  getActPatchAttnHeadByPosEvery,
} as const;
