/**
 * The cells of each patching grid as interventions on a full forward, written from
 * TransformerLens' `patching.py` (its index axes and patch setters), independently of
 * src/experiments/patching.ts: tests run these one row each and compare with the sweep.
 */
import type { ModelConfig } from '../../src/model/config.ts';
import type { ActivationCache } from '../../src/hooks/activation-cache.ts';
import { patchFrom, type Intervention } from '../../src/hooks/interventions.ts';
import type { PatchSite } from '../../src/experiments/patching.ts';

/** One cell: its interventions, or a constant (TransformerLens' zero padding of k / v rows in the `_every` grids). */
export type RefCell = Intervention[] | number;

const range = (n: number) => [...Array(n).keys()];

/** Cells of `site` in row-major order of TransformerLens' grid, patching from `clean` (batch row `sourceBatch`). */
export function referenceCells(cfg: ModelConfig, site: PatchSite, T: number, clean: ActivationCache, sourceBatch = 0): RefCell[] {
  const { n_layers: L, n_heads: H, n_key_value_heads: Hkv } = cfg;
  const src = { sourceBatch };
  const resid = (hook: string): RefCell[] => range(L).flatMap((l) => range(T).map((p) => [patchFrom(`blocks.${l}.${hook}`, clean, { ...src, pos: p })]));
  const heads = (x: string) => (x === 'k' || x === 'v' ? Hkv : H);
  const hookOf = (x: string, l: number) => `blocks.${l}.attn.hook_${x}`;
  // [layer, head]: every position (layer_head_vector_patch_setter / layer_head_pattern_patch_setter).
  const allPos = (x: string, width = heads(x)): RefCell[] => range(L).flatMap((l) => range(width).map((h) => (h < heads(x) ? [patchFrom(hookOf(x, l), clean, { ...src, heads: [h] })] : 0)));
  // [layer, pos, head] (layer_pos_head_vector_patch_setter; for the pattern, query position p).
  const byPos = (x: string, width = heads(x)): RefCell[] =>
    range(L).flatMap((l) => range(T).flatMap((p) => range(width).map((h) => (h < heads(x) ? [patchFrom(hookOf(x, l), clean, { ...src, heads: [h], pos: p })] : 0))));
  switch (site) {
    case 'resid_pre':
    case 'resid_mid':
    case 'resid_post':
    case 'attn_out':
    case 'mlp_out':
      return resid(`hook_${site}`);
    case 'block_every':
      return ['hook_resid_pre', 'hook_attn_out', 'hook_mlp_out'].flatMap(resid);
    case 'z':
    case 'q':
    case 'k':
    case 'v':
    case 'pattern':
      return allPos(site);
    case 'z_by_pos':
    case 'q_by_pos':
    case 'k_by_pos':
    case 'v_by_pos':
      return byPos(site.replace('_by_pos', ''));
    case 'pattern_by_pos': // [layer, head, dest_pos] (layer_head_pos_pattern_patch_setter)
      return range(L).flatMap((l) => range(H).flatMap((h) => range(T).map((p) => [patchFrom(hookOf('pattern', l), clean, { ...src, heads: [h], pos: p })])));
    case 'pattern_dest_src': // [layer, head, dest_pos, src_pos] (layer_head_dest_src_pos_pattern_patch_setter)
      return range(L).flatMap((l) => range(H).flatMap((h) => range(T).flatMap((d) => range(T).map((s) => [patchFrom(hookOf('pattern', l), clean, { ...src, heads: [h], pos: d, keyPos: s })]))));
    case 'head_all_pos_every':
      return ['z', 'q', 'k', 'v', 'pattern'].flatMap((x) => allPos(x, H));
    case 'head_by_pos_every':
      return ['z', 'q', 'k', 'v', 'pattern'].flatMap((x) => byPos(x, H));
  }
}

/** TransformerLens' function name (as in tl/patching.json) for each site it has. */
export const TL_FUNCTION: Partial<Record<PatchSite, string>> = {
  resid_pre: 'get_act_patch_resid_pre',
  resid_mid: 'get_act_patch_resid_mid',
  attn_out: 'get_act_patch_attn_out',
  mlp_out: 'get_act_patch_mlp_out',
  block_every: 'get_act_patch_block_every',
  z: 'get_act_patch_attn_head_out_all_pos',
  q: 'get_act_patch_attn_head_q_all_pos',
  k: 'get_act_patch_attn_head_k_all_pos',
  v: 'get_act_patch_attn_head_v_all_pos',
  pattern: 'get_act_patch_attn_head_pattern_all_pos',
  z_by_pos: 'get_act_patch_attn_head_out_by_pos',
  q_by_pos: 'get_act_patch_attn_head_q_by_pos',
  k_by_pos: 'get_act_patch_attn_head_k_by_pos',
  v_by_pos: 'get_act_patch_attn_head_v_by_pos',
  pattern_by_pos: 'get_act_patch_attn_head_pattern_by_pos',
  pattern_dest_src: 'get_act_patch_attn_head_pattern_dest_src_pos',
  head_all_pos_every: 'get_act_patch_attn_head_all_pos_every',
  head_by_pos_every: 'get_act_patch_attn_head_by_pos_every',
};
