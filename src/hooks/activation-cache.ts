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
 * A cache owns its tensors: `release()` returns every buffer to the pool.
 */
import type { Tensor } from '../gpu/tensor.ts';

export class ActivationCache {
  private released = false;

  constructor(private readonly tensors: Map<string, Tensor>) {}

  /** Hook names held, in the order the forward reached them. */
  get names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  get(name: string): Tensor {
    if (this.released) throw new Error('this ActivationCache was released');
    const t = this.tensors.get(name);
    if (!t) {
      const held = this.names;
      throw new Error(
        `"${name}" is not in this cache` +
          (held.length ? ` (it holds ${held.length} names, e.g. ${held.slice(0, 3).join(', ')})` : ' (it is empty)') +
          '; ask for it with run(tokens, { cache: [...] })',
      );
    }
    return t;
  }

  /** Reads one activation back to the CPU. */
  async read(name: string): Promise<Float32Array> {
    return this.get(name).read();
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    for (const t of this.tensors.values()) t.release();
    this.tensors.clear();
  }
}
