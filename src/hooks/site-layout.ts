/** How each hook point's tensor is laid out, for the intervention kernel (see `shaders/intervene.wgsl.ts`). */
import type { SiteLayout } from '../gpu/kernels/intervene.ts';
import { isFeatureSite } from '../model/hook-points.ts';

/** Patterns and scores are [batch, head, query_pos, key_pos]; the rest are batch, pos first. */
export function isPatternLike(hook: string): boolean {
  return hook.endsWith('.hook_pattern') || hook.endsWith('.hook_attn_scores');
}

export function siteLayout(hook: string, shape: readonly number[]): SiteLayout {
  if (isFeatureSite(hook)) {
    // [B, T, d_sae] with every feature its own "head" of one element, so an entry's head range
    // is a range of features: one feature can be zeroed, scaled, clamped or patched alone.
    const [B, T, D] = shape;
    return { sb: T * D, sp: D, sh: 1, F: 1, batch: B, pos: T, heads: D };
  }
  if (isPatternLike(hook)) {
    const [B, H, T, K] = shape;
    return { sb: H * T * K, sp: K, sh: T * K, F: K, batch: B, pos: T, heads: H };
  }
  if (shape.length === 4) {
    const [B, T, H, D] = shape;
    return { sb: T * H * D, sp: H * D, sh: D, F: D, batch: B, pos: T, heads: H };
  }
  const [B, T, D] = shape;
  return { sb: T * D, sp: D, sh: 0, F: D, batch: B, pos: T, heads: 1 };
}

/** True when the hook has a head axis a selection may pick from. */
export function hasHeads(hook: string, shape: readonly number[]): boolean {
  return shape.length === 4 || isFeatureSite(hook);
}
