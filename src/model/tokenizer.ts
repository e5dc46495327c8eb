/**
 * Text <-> token ids with a model's Hub tokenizer (`tokenizer.json` + `tokenizer_config.json`),
 * through `@huggingface/tokenizers`. A model folder without them (the toy models) has none:
 * `loadTokenizer` returns null and callers work with ids.
 */
import { Tokenizer } from '@huggingface/tokenizers';
import type { ModelSource } from './source.ts';

export class TextTokenizer {
  constructor(private readonly tok: Tokenizer) {}

  /** Token ids of `text`, without special tokens added. */
  encode(text: string): number[] {
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: readonly number[]): string {
    return this.tok.decode([...ids], { skip_special_tokens: false });
  }

  /** The text one token stands for, as a reader would see it (" Mary", "\n"). */
  tokenText(id: number): string {
    return this.decode([id]);
  }
}

export async function loadTokenizer(source: ModelSource): Promise<TextTokenizer | null> {
  const json = await source.file('tokenizer.json');
  if (!json) return null;
  const config = await source.file('tokenizer_config.json');
  const text = new TextDecoder();
  const parse = (b: Uint8Array, name: string) => {
    try {
      return JSON.parse(text.decode(b));
    } catch (e) {
      throw new Error(`${name} in ${source.describe} is not valid JSON: ${(e as Error).message}`);
    }
  };
  return new TextTokenizer(new Tokenizer(parse(json, 'tokenizer.json'), config ? parse(config, 'tokenizer_config.json') : {}));
}
