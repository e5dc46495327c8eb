/**
 * One normalized description of a sparse autoencoder or transcoder, from whichever format it came
 * in. Field names follow SAELens' `SAEConfig` (d_in, d_sae, hook_name, apply_b_dec_to_input, k);
 * `hook_name_out` and `d_out` are its transcoder fields.
 *
 * Formats read:
 *   saelens        cfg.json (SAELens 6, or the older flat layout with hook_point / activation_fn_str)
 *                  + sae_weights.safetensors: W_enc [d_in, d_sae], b_enc, W_dec [d_sae, d_out], b_dec,
 *                  threshold (JumpReLU), W_skip [d_out, d_in] (skip transcoder).
 *   gemma-scope    Gemma Scope (Gemma 2) params.npz: W_enc, W_dec, b_enc, b_dec, threshold; no config:
 *                  the hook comes from the repository name and the folder's layer_N, or is given.
 *   gemma-scope-2  Gemma Scope 2 (Gemma 3) config.json {architecture "jump_relu", type "sae" |
 *                  "transcoder", hf_hook_point_in / _out as Hugging Face module paths, affine_connection}
 *                  + params.safetensors: w_enc, w_dec, b_enc, b_dec, threshold, affine_skip_connection
 *                  [d_in, d_out] (applied as x @ affine_skip_connection).
 */
import type { SaeSiteName } from '../model/hook-points.ts';

export type SaeActivationName = 'relu' | 'jumprelu' | 'topk';
export type SaeFormat = 'saelens' | 'gemma-scope' | 'gemma-scope-2';

export interface SaeConfig {
  /** Where it came from (for messages). */
  source: string;
  format: SaeFormat;
  /** The activation: ReLU (SAELens "standard"), JumpReLU, or TopK. */
  architecture: SaeActivationName;
  /** True for a transcoder (reads `hook_name`, writes `hook_name_out`). */
  transcoder: boolean;
  /** A transcoder with a linear skip term x @ W_skip. */
  skip: boolean;
  d_in: number;
  d_sae: number;
  /** Width of the reconstruction: d_in for an SAE. */
  d_out: number;
  /** TransformerLens hook point the encoder reads. */
  hook_name: string;
  /** Hook point the reconstruction replaces: hook_name for an SAE. */
  hook_name_out: string;
  /** TopK's k (null otherwise). */
  k: number | null;
  /** SAELens subtracts b_dec from the input before encoding (folded into b_enc on load). */
  apply_b_dec_to_input: boolean;
  /** The model it was trained on, when the config says. */
  model_name: string | null;
  /**
   * The model weight that scales the input hook before encoding, or null. Gemma Scope 2's
   * transcoders read the pre-MLP RMSNorm's output after its gain (`pre_feedforward_layernorm`),
   * which is TransformerLens' `ln2.hook_normalized` times `ln2.w`.
   */
  input_gain: string | null;
}

export class SaeConfigError extends Error {
  override name = 'SaeConfigError';
}

const SAELENS_ARCHITECTURES = ['standard', 'jumprelu', 'topk', 'transcoder', 'skip_transcoder', 'jumprelu_transcoder', 'jumprelu_skip_transcoder'] as const;

function obj(v: unknown, where: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new SaeConfigError(`${where}: expected a JSON object`);
  return v as Record<string, unknown>;
}

function posInt(v: unknown, field: string, where: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw new SaeConfigError(`${where}: "${field}" must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

/** SAELens' cfg.json (version 6, or the pre-6 flat layout it still reads). */
export function saelensConfig(json: unknown, where: string): SaeConfig {
  const c = obj(json, where);
  const meta = (typeof c.metadata === 'object' && c.metadata !== null ? c.metadata : {}) as Record<string, unknown>;
  const act = c.activation_fn ?? c.activation_fn_str;
  const kwargs = (c.activation_fn_kwargs ?? {}) as Record<string, unknown>;
  let arch = (c.architecture as string | undefined) ?? (act === 'topk' ? 'topk' : 'standard');
  if (arch === 'standard' && act === 'topk') arch = 'topk';
  if (!(SAELENS_ARCHITECTURES as readonly string[]).includes(arch)) {
    throw new SaeConfigError(`${where}: SAE architecture ${JSON.stringify(arch)} is not supported; supported: ${SAELENS_ARCHITECTURES.join(', ')}`);
  }
  if (act !== undefined && act !== 'relu' && act !== 'topk') {
    throw new SaeConfigError(`${where}: activation_fn ${JSON.stringify(act)} is not supported (relu, topk)`);
  }
  const norm = c.normalize_activations ?? 'none';
  if (norm !== 'none' && norm !== false && norm !== null) {
    throw new SaeConfigError(
      `${where}: normalize_activations ${JSON.stringify(norm)} is not supported; fold the normalization into the weights (SAELens' fold_activation_norm_scaling_factor) and save with "none"`,
    );
  }
  if (c.finetuning_scaling_factor === true) throw new SaeConfigError(`${where}: finetuning_scaling_factor is not supported`);
  if (c.rescale_acts_by_decoder_norm === true) {
    throw new SaeConfigError(`${where}: rescale_acts_by_decoder_norm = true is not supported; fold the decoder norm (SAELens' fold_W_dec_norm) first`);
  }
  const hook = (meta.hook_name ?? c.hook_name ?? c.hook_point) as unknown;
  if (typeof hook !== 'string' || hook.length === 0) throw new SaeConfigError(`${where}: no hook_name (in metadata or at the top level)`);
  const headIndex = meta.hook_head_index ?? c.hook_head_index ?? c.hook_point_head_index;
  if (headIndex !== undefined && headIndex !== null) throw new SaeConfigError(`${where}: SAEs on one head (hook_head_index ${JSON.stringify(headIndex)}) are not supported`);
  const transcoder = arch.includes('transcoder');
  const d_in = posInt(c.d_in, 'd_in', where);
  const d_out = transcoder ? posInt(c.d_out ?? d_in, 'd_out', where) : d_in;
  const hookOut = (meta.hook_name_out ?? c.hook_name_out) as unknown;
  if (transcoder && (typeof hookOut !== 'string' || hookOut.length === 0)) throw new SaeConfigError(`${where}: a transcoder needs hook_name_out (the hook it writes)`);
  const applyBDec = c.apply_b_dec_to_input === undefined ? !transcoder : c.apply_b_dec_to_input === true;
  if (transcoder && applyBDec) throw new SaeConfigError(`${where}: apply_b_dec_to_input is not defined for a transcoder (b_dec has d_out entries)`);
  const k = arch === 'topk' ? posInt(c.k ?? kwargs.k, 'k', where) : null;
  return {
    source: where,
    format: 'saelens',
    architecture: arch === 'topk' ? 'topk' : arch.startsWith('jumprelu') ? 'jumprelu' : 'relu',
    transcoder,
    skip: arch.includes('skip'),
    d_in,
    d_sae: posInt(c.d_sae, 'd_sae', where),
    d_out,
    hook_name: hook,
    hook_name_out: transcoder ? (hookOut as string) : hook,
    k,
    apply_b_dec_to_input: applyBDec,
    model_name: typeof (meta.model_name ?? c.model_name) === 'string' ? ((meta.model_name ?? c.model_name) as string) : null,
    input_gain: null,
  };
}

/**
 * A Hugging Face module path (Gemma Scope 2's `hf_hook_point_in` / `_out`) as the TransformerLens
 * hook point that holds the same tensor.
 */
export function hookFromHf(path: string, where: string): { hook: string; gain: string | null } {
  const gained = /^model\.layers\.(\d+)\.pre_feedforward_layernorm\.output$/.exec(path.replace(/^model\.language_model\./, 'model.'));
  if (gained) return { hook: `blocks.${gained[1]}.ln2.hook_normalized`, gain: `blocks.${gained[1]}.ln2.w` };
  const rules: Array<[RegExp, (l: string) => string]> = [
    [/^model\.layers\.(\d+)\.output$/, (l) => `blocks.${l}.hook_resid_post`],
    [/^model\.layers\.(\d+)\.input$/, (l) => `blocks.${l}.hook_resid_pre`],
    [/^model\.layers\.(\d+)\.self_attn\.o_proj\.input$/, (l) => `blocks.${l}.attn.hook_z`],
    [/^model\.layers\.(\d+)\.post_attention_layernorm\.output$/, (l) => `blocks.${l}.hook_attn_out`],
    [/^model\.layers\.(\d+)\.post_feedforward_layernorm\.output$/, (l) => `blocks.${l}.hook_mlp_out`],
  ];
  const p = path.replace(/^model\.language_model\./, 'model.');
  for (const [re, to] of rules) {
    const m = re.exec(p);
    if (m) return { hook: to(m[1]), gain: null };
  }
  throw new SaeConfigError(
    `${where}: hook point ${JSON.stringify(path)} has no TransformerLens equivalent here; known: model.layers.L.output, .input, .self_attn.o_proj.input, .post_attention_layernorm.output, .pre_feedforward_layernorm.output (ln2.hook_normalized times its gain), .post_feedforward_layernorm.output`,
  );
}

/** Gemma Scope 2's config.json, with the shapes of its params.safetensors. */
export function gemmaScope2Config(json: unknown, shapes: { w_enc: number[]; w_dec: number[]; skip: boolean }, where: string): SaeConfig {
  const c = obj(json, where);
  if (c.architecture !== 'jump_relu' && c.architecture !== 'jumprelu') {
    throw new SaeConfigError(`${where}: architecture ${JSON.stringify(c.architecture)} is not supported (Gemma Scope 2 SAEs are "jump_relu")`);
  }
  const type = c.type ?? 'sae';
  if (type !== 'sae' && type !== 'transcoder') throw new SaeConfigError(`${where}: type ${JSON.stringify(type)} is not supported (sae, transcoder)`);
  if (typeof c.hf_hook_point_in !== 'string') throw new SaeConfigError(`${where}: no hf_hook_point_in`);
  const input = hookFromHf(c.hf_hook_point_in, where);
  const hookIn = input.hook;
  const hookOut = typeof c.hf_hook_point_out === 'string' ? hookFromHf(c.hf_hook_point_out, where).hook : hookIn;
  const [d_in, d_sae] = shapes.w_enc;
  const d_out = shapes.w_dec[1];
  if (c.affine_connection === true && !shapes.skip) throw new SaeConfigError(`${where}: affine_connection is true but params.safetensors has no affine_skip_connection`);
  const transcoder = type === 'transcoder' || hookIn !== hookOut;
  return {
    source: where,
    format: 'gemma-scope-2',
    architecture: 'jumprelu',
    transcoder,
    skip: shapes.skip,
    d_in,
    d_sae,
    d_out,
    hook_name: hookIn,
    hook_name_out: hookOut,
    k: null,
    apply_b_dec_to_input: false,
    model_name: typeof c.model_name === 'string' ? c.model_name : null,
    input_gain: input.gain,
  };
}

/**
 * Gemma Scope (Gemma 2) params.npz carries no config. The hook point is `hookName` when given,
 * else read from where it came from: the repository kind (-res, -mlp, -att, -transcoders) and
 * the folder's layer_N, as SAELens' Gemma Scope loaders read them.
 */
export function gemmaScopeConfig(shapes: { W_enc: number[]; W_dec: number[] }, where: string, hookName?: string, hookNameOut?: string): SaeConfig {
  const [d_in, d_sae] = shapes.W_enc;
  const d_out = shapes.W_dec[1];
  let hookIn = hookName;
  let hookOut = hookNameOut ?? hookName;
  if (!hookIn) {
    const layer = /layer_(\d+)/.exec(where)?.[1];
    const kind = /gemma-scope-[^/]*?-(res|mlp|att|transcoders)\b/.exec(where)?.[1];
    if (layer === undefined || kind === undefined) {
      throw new SaeConfigError(
        `${where}: a Gemma Scope params.npz names no hook point; pass hookName (e.g. "blocks.12.hook_resid_post"), or load it from a path like gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82`,
      );
    }
    const tables: Record<string, string[]> = { res: ['hook_resid_post'], mlp: ['hook_mlp_out'], att: ['attn.hook_z'], transcoders: ['ln2.hook_normalized', 'hook_mlp_out'] };
    const table = tables[kind]!;
    hookIn = `blocks.${layer}.${table[0]}`;
    hookOut = `blocks.${layer}.${table[1] ?? table[0]}`;
  }
  const transcoder = hookIn !== hookOut;
  return {
    source: where,
    format: 'gemma-scope',
    architecture: 'jumprelu',
    transcoder,
    skip: false,
    d_in,
    d_sae,
    d_out,
    hook_name: hookIn,
    hook_name_out: hookOut!,
    k: null,
    apply_b_dec_to_input: false,
    model_name: null,
    input_gain: null,
  };
}

export { SAE_SITES, isFeatureSite, type SaeSiteName } from '../model/hook-points.ts';

/** The width of each hook point an SAE adds (SAE_SITES, listed with the model's in model/hook-points.ts). */
export function saeSiteWidth(cfg: SaeConfig, site: SaeSiteName): number {
  if (site === 'hook_sae_input') return cfg.d_in;
  if (site === 'hook_sae_acts_pre' || site === 'hook_sae_acts_post') return cfg.d_sae;
  return cfg.d_out;
}
