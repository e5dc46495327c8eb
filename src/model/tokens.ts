/** Checks a batch of token ids against a model before anything touches the GPU. */
import type { ModelConfig } from './config.ts';

export class TokenInputError extends Error {
  override name = 'TokenInputError';
}

/** Validates [batch][pos] ids and flattens them to u32, row-major. */
export function validateTokens(tokens: readonly (readonly number[])[], cfg: ModelConfig): { batch: number; pos: number; flat: Uint32Array<ArrayBuffer> } {
  if (!Array.isArray(tokens) || tokens.length === 0) throw new TokenInputError('no token rows given: pass [batch][pos] token ids');
  const pos = tokens[0].length;
  if (pos === 0) throw new TokenInputError('token rows are empty: each row needs at least one token');
  const lengths = tokens.map((r) => r.length);
  if (lengths.some((n) => n !== pos)) {
    throw new TokenInputError(`token rows have different lengths (${lengths.join(', ')}); every row of a batch needs the same length`);
  }
  if (pos > cfg.n_ctx) {
    throw new TokenInputError(`${pos} tokens is more than the model's context of ${cfg.n_ctx} positions (n_ctx)`);
  }
  const flat = new Uint32Array(tokens.length * pos);
  tokens.forEach((row, b) =>
    row.forEach((id: number, p: number) => {
      if (!Number.isInteger(id) || id < 0 || id >= cfg.d_vocab) {
        throw new TokenInputError(`token id ${id} at [${b}, ${p}] is not in the vocabulary (ids are integers 0 .. ${cfg.d_vocab - 1})`);
      }
      flat[b * pos + p] = id;
    }),
  );
  return { batch: tokens.length, pos, flat };
}
