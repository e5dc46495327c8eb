/**
 * ActivationCache: the activations a run was asked to keep, by TransformerLens hook name,
 * resident on the GPU until read.
 *
 * Families and shapes (GPT-2):
 *   hook_embed, hook_pos_embed                       [batch, pos, d_model]
 *   blocks.L.hook_resid_pre / _mid / _post            [batch, pos, d_model]
 *   blocks.L.ln1.hook_scale, ln2.hook_scale           [batch, pos, 1]
 *   blocks.L.ln1.hook_normalized, ln2.hook_normalized [batch, pos, d_model] (before gain and bias)
 *   blocks.L.attn.hook_q / _k / _v / _z              [batch, pos, head, d_head]
 *   blocks.L.attn.hook_attn_scores, hook_pattern      [batch, head, query_pos, key_pos]
 *   blocks.L.hook_attn_out, hook_mlp_out              [batch, pos, d_model]
 *   blocks.L.mlp.hook_pre, mlp.hook_post              [batch, pos, d_mlp]
 *   ln_final.hook_scale                               [batch, pos, 1]
 *   ln_final.hook_normalized                          [batch, pos, d_model] (before gain and bias)
 *   unembed.hook_in                                   [batch, pos, d_model] (ln_final's output)
 *   unembed.hook_out                                  [batch, pos, d_vocab] (the logits)
 * A norm's hook_normalized is its input normalized before the gain and bias, as
 * TransformerLens has it: (x - mean) / hook_scale, or x / hook_scale for RMSNorm.
 *
 * Names may be given as TransformerLens' shorthands (`getActName`): `cache.get('pattern', 1)` is
 * `blocks.1.attn.hook_pattern`, a negative layer counts from the end. The analyses of
 * TransformerLens' cache are methods here too (`cache.decomposeResid()`, `cache.logitAttrs(...)`;
 * see `cache-helpers.ts`).
 *
 * A cache owns its tensors: `release()` returns every buffer to the pool.
 */
import type { Tensor } from '../gpu/tensor.ts';
import type { Model } from './model.ts';
import type { SiteName } from '../model/hook-points.ts';
import {
  accumulatedResid,
  applyLnToStack,
  decomposeResid,
  getActName,
  type ActNameLike,
  logitAttrs,
  stackActivation,
  stackHeadResults,
  type AccumulatedResidOptions,
  type ApplyLnOptions,
  type AttrTokens,
  type DecomposeResidOptions,
  type PosSlice,
  type Stack,
  type StackHeadResultsOptions,
} from './cache-helpers.ts';

export class ActivationCache {
  private released = false;
  /** The prompts the run was given ([batch][pos]), when a model's run made this cache. */
  readonly tokens?: readonly (readonly number[])[];
  /** The model that made it (as TransformerLens' cache keeps its model): helpers read its weights. */
  readonly model?: Model;

  constructor(
    private readonly tensors: Map<string, Tensor>,
    origin: { tokens?: readonly (readonly number[])[]; model?: Model } = {},
  ) {
    this.tokens = origin.tokens;
    this.model = origin.model;
  }

  /** Hook names held, in the order the forward reached them. */
  get names(): SiteName[] {
    return [...this.tensors.keys()] as SiteName[];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  /**
   * The activation `name` (a hook name, or with `layer` / `layerType` a TransformerLens
   * shorthand: `get('pattern', 1)`, `get('scale', 0, 'ln2')`, `get('resid_post', -1)`).
   */
  get(asked: ActNameLike, layer?: number, layerType?: string): Tensor {
    if (this.released) throw new Error('this ActivationCache was released');
    if (layer !== undefined && layer < 0) {
      if (!this.model) throw new Error(`a negative layer (${layer}) needs the model's layer count; this cache has no model`);
      layer += this.model.config.n_layers; // as TransformerLens' cache[name, -1]
    }
    const name: string = layer !== undefined || layerType !== undefined || !this.tensors.has(asked) ? getActName(asked, layer, layerType) : asked;
    const t = this.tensors.get(name);
    if (!t) {
      const held = this.names;
      throw new Error(
        `"${name}"${asked !== name ? ` (from "${asked}")` : ''} is not in this cache` +
          (held.length ? ` (it holds ${held.length} names, e.g. ${held.slice(0, 3).join(', ')})` : ' (it is empty)') +
          '; ask for it with run(tokens, { cache: [...] })',
      );
    }
    return t;
  }

  /** Reads one activation back to the CPU (names as `get` takes them). */
  async read(name: ActNameLike, layer?: number, layerType?: string): Promise<Float32Array> {
    return this.get(name, layer, layerType).read();
  }

  /** TransformerLens' `accumulated_resid` (see `cache-helpers.ts`). */
  accumulatedResid(opts?: AccumulatedResidOptions): Promise<Stack> {
    return accumulatedResid(this, opts);
  }

  /** TransformerLens' `decompose_resid`. */
  decomposeResid(opts?: DecomposeResidOptions): Promise<Stack> {
    return decomposeResid(this, opts);
  }

  /** TransformerLens' `stack_head_results` (computed from hook_z and W_O when hook_result was not cached). */
  stackHeadResults(opts?: StackHeadResultsOptions): Promise<Stack> {
    return stackHeadResults(this, opts);
  }

  /** TransformerLens' `stack_activation`. */
  stackActivation(name: string, opts?: { layer?: number; sublayerType?: string }): Promise<Stack> {
    return stackActivation(this, name, opts);
  }

  /** TransformerLens' `apply_ln_to_stack`. */
  applyLnToStack(stack: Stack, opts?: ApplyLnOptions): Promise<Stack> {
    return applyLnToStack(this, stack, opts);
  }

  /** TransformerLens' `logit_attrs`: applies ln_final's cached scale itself. */
  logitAttrs(stack: Stack, tokens: AttrTokens, incorrect?: AttrTokens, opts: { posSlice?: PosSlice } = {}): Promise<{ data: Float32Array; shape: number[]; labels: string[] }> {
    return logitAttrs(stack, tokens, incorrect, { ...opts, cache: this });
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    for (const t of this.tensors.values()) t.release();
    this.tensors.clear();
  }
}
