/**
 * Text <-> token ids with a model's Hub tokenizer (`tokenizer.json` + `tokenizer_config.json`),
 * through `@huggingface/tokenizers`. A model folder without them (the toy models) has none:
 * `loadTokenizer` returns null and callers work with ids.
 *
 * `toTokens` follows TransformerLens' `to_tokens`: a BOS token first unless `prependBos: false`
 * (TL's default_prepend_bos = True). Where the tokenizer adds BOS itself (its post-processor
 * does, as Llama's template), its own output is used and the BOS dropped when not wanted; where
 * it does not (GPT-2), the BOS token is put before the text's tokens, as TL's manual
 * `bos_token + text` tokenizes. The BOS token is the config's `bos_token`, else its `eos_token`,
 * else "<|endoftext|>" (TL's `set_tokenizer` fallbacks); rows of a batch are padded with
 * `pad_token` (else the EOS token) on the right, and truncated to the context, as TL's are.
 */
import { Tokenizer } from '@huggingface/tokenizers';
import type { ModelSource } from './source.ts';

export interface ToTokensOptions {
  /** Put the BOS token first (default true, as TransformerLens' default_prepend_bos). */
  prependBos?: boolean;
  /** Which side shorter rows of a batch are padded on (default 'right', as TransformerLens). */
  paddingSide?: 'left' | 'right';
  /** Cut rows longer than this many tokens (TransformerLens truncates to n_ctx); none when absent. */
  maxLength?: number;
}

/** A special token of `tokenizer_config.json`: a string or an AddedToken object. */
function specialToken(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

export class TextTokenizer {
  /** The BOS token's text and id (null when the vocabulary has none of the candidates). */
  readonly bos: { text: string; id: number } | null;
  /** The id rows of a batch are padded with. */
  readonly padId: number | null;
  /** The tokenizer's own post-processor puts BOS first (TL's `tokenizer_prepends_bos`). */
  readonly prependsBos: boolean;

  constructor(
    private readonly tok: Tokenizer,
    config: Record<string, unknown> = {},
  ) {
    const eos = specialToken(config.eos_token) ?? '<|endoftext|>';
    const idOf = (text: string | null) => (text === null ? undefined : tok.token_to_id(text));
    const bosText = specialToken(config.bos_token) ?? eos;
    const bosId = idOf(bosText);
    this.bos = bosId === undefined ? null : { text: bosText, id: bosId };
    this.padId = idOf(specialToken(config.pad_token)) ?? idOf(eos) ?? null;
    const empty = tok.encode('', { add_special_tokens: true }).ids;
    this.prependsBos = empty.length > 0 && empty[0] === bosId;
  }

  /** Token ids of `text`, without special tokens added. */
  encode(text: string): number[] {
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  /** The text of `ids`, special tokens included, spaces as they are (TL's clean_up_tokenization_spaces=False). */
  decode(ids: readonly number[]): string {
    return this.tok.decode([...ids], { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }

  /** The text one token stands for, as a reader would see it (" Mary", "\n"). */
  tokenText(id: number): string {
    return this.decode([id]);
  }

  /** TransformerLens' `to_tokens` for a batch of texts: [batch][pos] ids, padded to one length. */
  toTokens(texts: readonly string[], options: ToTokensOptions = {}): number[][] {
    const prependBos = options.prependBos ?? true;
    if (prependBos && !this.bos) {
      throw new Error('this tokenizer has no BOS token (tokenizer_config.json has no bos_token or eos_token in its vocabulary); use prependBos: false');
    }
    const rows = texts.map((text) => {
      if (typeof text !== 'string') throw new Error(`toTokens takes text (a string or a list of strings), not ${typeof text}`);
      let ids = this.tok.encode(text, { add_special_tokens: true }).ids;
      if (this.prependsBos && !prependBos) ids = ids.slice(1);
      else if (!this.prependsBos && prependBos) ids = [this.bos!.id, ...ids];
      return options.maxLength !== undefined ? ids.slice(0, options.maxLength) : ids;
    });
    const T = Math.max(...rows.map((r) => r.length));
    if (rows.some((r) => r.length < T)) {
      if (this.padId === null) throw new Error('these texts have different lengths and the tokenizer has no pad or EOS token to pad them with');
      const pad = this.padId;
      return rows.map((r) => {
        const fill = Array<number>(T - r.length).fill(pad);
        return options.paddingSide === 'left' ? [...fill, ...r] : [...r, ...fill];
      });
    }
    return rows;
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
      throw new Error(`${name} in ${source.describe} is not valid JSON: ${(e as Error).message}`, { cause: e });
    }
  };
  const cfg = config ? parse(config, 'tokenizer_config.json') : {};
  return new TextTokenizer(new Tokenizer(parse(json, 'tokenizer.json'), cfg), cfg);
}
