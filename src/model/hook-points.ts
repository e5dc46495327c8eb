/**
 * The hook points of a model: TransformerLens names and shapes, in forward order, as a pure function
 * of the config and the input shape, so memory can be planned before anything is allocated.
 * `forward.ts` places a site at each of these names (a test checks the two agree).
 *
 * The lists below are the one place hook names are written: the `HookName` type (what the
 * forward's sites, interventions and the cache take) and the runtime lists (`hookShapes`,
 * `isHookName`) are both derived from them, so the two cannot drift.
 */
import type { ModelConfig } from './config.ts';
import { similarNames } from '../util/similar-names.ts';

/** The sizes a hook point's shape is made of. */
interface Dims {
  B: number;
  T: number;
  C: number;
  H: number;
  Hkv: number;
  dh: number;
  M: number;
  V: number;
}

interface HookPointDef {
  name: string;
  shape: (d: Dims) => number[];
  /** Present only in models whose config passes this (all models when absent). */
  when?: (cfg: ModelConfig) => boolean;
}

const resid = (d: Dims) => [d.B, d.T, d.C];
const perPosition = (d: Dims) => [d.B, d.T, 1];
const learned = (c: ModelConfig) => c.positional === 'learned';
const rotary = (c: ModelConfig) => c.positional === 'rotary';
const qkNorm = (c: ModelConfig) => !!c.qk_norm;
const postNorms = (c: ModelConfig) => !!c.post_norms;

/** Before the first block. */
export const EMBED_HOOKS = [
  { name: 'hook_embed', shape: resid },
  { name: 'hook_pos_embed', shape: resid, when: learned },
] as const satisfies readonly HookPointDef[];

/** In every block, after `blocks.L.`, in forward order. */
export const BLOCK_HOOKS = [
  { name: 'hook_resid_pre', shape: resid },
  { name: 'ln1.hook_scale', shape: perPosition },
  { name: 'ln1.hook_normalized', shape: resid },
  { name: 'attn.hook_q', shape: (d) => [d.B, d.T, d.H, d.dh] },
  { name: 'attn.hook_k', shape: (d) => [d.B, d.T, d.Hkv, d.dh] },
  { name: 'attn.hook_v', shape: (d) => [d.B, d.T, d.Hkv, d.dh] },
  { name: 'attn.q_norm.hook_scale', shape: (d) => [d.B, d.T, d.H, 1], when: qkNorm },
  { name: 'attn.q_norm.hook_normalized', shape: (d) => [d.B, d.T, d.H, d.dh], when: qkNorm },
  { name: 'attn.k_norm.hook_scale', shape: (d) => [d.B, d.T, d.Hkv, 1], when: qkNorm },
  { name: 'attn.k_norm.hook_normalized', shape: (d) => [d.B, d.T, d.Hkv, d.dh], when: qkNorm },
  { name: 'attn.hook_rot_q', shape: (d) => [d.B, d.T, d.H, d.dh], when: rotary },
  { name: 'attn.hook_rot_k', shape: (d) => [d.B, d.T, d.Hkv, d.dh], when: rotary },
  { name: 'attn.hook_attn_scores', shape: (d) => [d.B, d.H, d.T, d.T] },
  { name: 'attn.hook_pattern', shape: (d) => [d.B, d.H, d.T, d.T] },
  { name: 'attn.hook_z', shape: (d) => [d.B, d.T, d.H, d.dh] },
  { name: 'attn.hook_result', shape: (d) => [d.B, d.T, d.H, d.C] }, // computed only when a run asks for it
  { name: 'ln1_post.hook_scale', shape: perPosition, when: postNorms },
  { name: 'ln1_post.hook_normalized', shape: resid, when: postNorms },
  { name: 'hook_attn_out', shape: resid },
  { name: 'hook_resid_mid', shape: resid, when: (c) => !c.parallel_attn_mlp },
  { name: 'ln2.hook_scale', shape: perPosition },
  { name: 'ln2.hook_normalized', shape: resid },
  { name: 'mlp.hook_pre', shape: (d) => [d.B, d.T, d.M] },
  { name: 'mlp.hook_pre_linear', shape: (d) => [d.B, d.T, d.M], when: (c) => !!c.gated_mlp },
  { name: 'mlp.hook_post', shape: (d) => [d.B, d.T, d.M] },
  { name: 'ln2_post.hook_scale', shape: perPosition, when: postNorms },
  { name: 'ln2_post.hook_normalized', shape: resid, when: postNorms },
  { name: 'hook_mlp_out', shape: resid },
  { name: 'hook_resid_post', shape: resid },
] as const satisfies readonly HookPointDef[];

/** After the last block. */
export const FINAL_HOOKS = [
  { name: 'ln_final.hook_scale', shape: perPosition },
  { name: 'ln_final.hook_normalized', shape: resid },
  { name: 'unembed.hook_in', shape: resid }, // ln_final's output, gain and bias applied
  { name: 'unembed.hook_out', shape: (d) => [d.B, d.T, d.V] }, // the logits
] as const satisfies readonly HookPointDef[];

/** The hook points an SAE or transcoder adds under its input hook (SAELens' names), in forward order. */
export const SAE_SITES = ['hook_sae_input', 'hook_sae_acts_pre', 'hook_sae_acts_post', 'hook_sae_recons', 'hook_sae_error', 'hook_sae_output'] as const;

export type BlockHookSuffix = (typeof BLOCK_HOOKS)[number]['name'];
/** A block's hook point, e.g. `blocks.3.attn.hook_z`. */
export type BlockHookName = `blocks.${number}.${BlockHookSuffix}`;
/** A hook point of the model itself (TransformerLens' name). */
export type HookName = (typeof EMBED_HOOKS)[number]['name'] | BlockHookName | (typeof FINAL_HOOKS)[number]['name'];
export type SaeSiteName = (typeof SAE_SITES)[number];
/** A hook point an SAE spliced at `H` adds, e.g. `blocks.3.hook_resid_post.hook_sae_acts_post`. */
export type SaeHookName<H extends HookName = HookName> = `${H}.${SaeSiteName}`;
/** Any point a run can cache or intervene on: the model's own, or a spliced SAE's. */
export type SiteName = HookName | SaeHookName;
/**
 * A hook point as the public API takes it (interventions, cache filters): an editor completes
 * and checks every `SiteName`, and any other string is still accepted and checked when the run
 * is planned ("unknown hook point …; did you mean …?"), as names read from input must be.
 * (`string & NonNullable<unknown>` keeps the literal members from collapsing into `string`.)
 */
export type SiteNameLike = SiteName | (string & NonNullable<unknown>);

/** A norm's hook-point prefix: `<prefix>.hook_scale` and `<prefix>.hook_normalized`. */
export type NormPrefix = `blocks.${number}.${'ln1' | 'ln2' | 'ln1_post' | 'ln2_post' | 'attn.q_norm' | 'attn.k_norm'}` | 'ln_final';

const TOP_NAMES = new Set<string>([...EMBED_HOOKS, ...FINAL_HOOKS].map((h) => h.name));
const BLOCK_SUFFIXES = new Set<string>(BLOCK_HOOKS.map((h) => h.name));
const SAE_SUFFIX = new RegExp(`\\.(${SAE_SITES.join('|')})$`);

/** True when `name` is the name of a hook point of some model (not only of this one): a type guard for `HookName`. */
export function isHookName(name: string): name is HookName {
  if (TOP_NAMES.has(name)) return true;
  const m = /^blocks\.(0|[1-9]\d*)\.(.+)$/.exec(name);
  return !!m && BLOCK_SUFFIXES.has(m[2]);
}

/** True for a model hook point or an SAE hook point under one: a type guard for `SiteName`. */
export function isSiteName(name: string): name is SiteName {
  return isHookName(name) || (SAE_SUFFIX.test(name) && isHookName(name.replace(SAE_SUFFIX, '')));
}

/**
 * True for an SAE's feature-activation hooks (SAELens' `….hook_sae_acts_pre` / `_post`,
 * [batch, pos, d_sae]), whose last axis is features: the intervention table addresses it as the
 * head axis, one feature per "head", so features can be selected like heads.
 */
export function isFeatureSite(hook: string): boolean {
  return hook.endsWith('.hook_sae_acts_pre') || hook.endsWith('.hook_sae_acts_post');
}

/** "unknown hook point X; did you mean Y, Z?" with the nearest names by edit distance. */
export function unknownHookMessage(name: string, known: string[]): string {
  return `unknown hook point "${name}"; did you mean ${similarNames(name, known).join(', ')}?`;
}

/**
 * The layers a run computes (TransformerLens' start_at_layer / stop_at_layer, resolved to
 * 0 .. n_layers): a run from a residual has no embedding hook points, a stopped one none after
 * its last layer.
 */
export interface LayerRange {
  /** The run starts from the residual stream entering this layer (no embedding). */
  startAtLayer?: number;
  /** The run stops before this layer (no ln_final, no unembedding). */
  stopAtLayer?: number;
}

/** Each hook point's shape by name, in forward order (keyed by string, for lookups of names read from input). */
export function hookShapes(cfg: ModelConfig, batch: number, pos: number, range: LayerRange = {}): Map<string, number[]> {
  const d: Dims = { B: batch, T: pos, C: cfg.d_model, H: cfg.n_heads, Hkv: cfg.n_key_value_heads, dh: cfg.d_head, M: cfg.d_mlp, V: cfg.d_vocab };
  const s = new Map<HookName, number[]>();
  const present = (h: HookPointDef) => !h.when || h.when(cfg);
  if (range.startAtLayer === undefined) for (const h of EMBED_HOOKS.filter(present)) s.set(h.name, h.shape(d));
  for (let l = range.startAtLayer ?? 0; l < (range.stopAtLayer ?? cfg.n_layers); l++) {
    for (const h of BLOCK_HOOKS.filter(present)) s.set(`blocks.${l}.${h.name}`, h.shape(d));
  }
  if (range.stopAtLayer !== undefined) return s;
  for (const h of FINAL_HOOKS.filter(present)) s.set(h.name, h.shape(d));
  return s;
}

/** Every hook point name of a model, in forward order. */
export function hookNames(cfg: ModelConfig): HookName[] {
  return [...hookShapes(cfg, 1, 1).keys()] as HookName[];
}
