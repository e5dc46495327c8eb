/**
 * What `<pb-model>` shares with the figures inside it (through `@lit/context`): the loaded model,
 * its tokenizer, and the loading status. Figures hold no numerics: they call the model's public
 * API and draw what comes back. A `change` event fires whenever any of this changes.
 */
import { createContext } from '@lit/context';
import type { Model } from '../model/model.ts';
import type { TextTokenizer } from '../model/tokenizer.ts';

export type SessionStatus = 'idle' | 'loading' | 'ready' | 'error';

export class Session extends EventTarget {
  status: SessionStatus = 'idle';
  /** Preset name or URL being loaded. */
  name = '';
  model: Model | null = null;
  tokenizer: TextTokenizer | null = null;
  error = '';
  progress = { loaded: 0, total: 0 };
  /** True when the weights came from the browser's cache, not the network. */
  fromCache = false;

  set(patch: Partial<Pick<Session, 'status' | 'name' | 'model' | 'tokenizer' | 'error' | 'progress' | 'fromCache'>>): void {
    Object.assign(this, patch);
    this.dispatchEvent(new Event('change'));
  }

  /**
   * Token ids of a prompt: text through the tokenizer, or comma/space-separated ids for a model
   * without one. Throws a readable message for ids that are not integers in the vocabulary.
   */
  tokenize(prompt: string): number[] {
    if (this.tokenizer) return this.tokenizer.encode(prompt);
    const parts = prompt.split(/[\s,]+/).filter(Boolean);
    const V = this.model?.config.d_vocab ?? Infinity;
    return parts.map((p) => {
      const id = /^\d+$/.test(p) ? Number(p) : NaN;
      if (!Number.isSafeInteger(id) || id >= V) throw new Error(`"${p}" is not a token id (this model takes ids 0 .. ${V - 1})`);
      return id;
    });
  }

  /** How a token reads: its text with the tokenizer, else its id. */
  label(id: number): string {
    return this.tokenizer ? this.tokenizer.tokenText(id) : String(id);
  }
}

export const sessionContext = createContext<Session>(Symbol('pb-session'));
