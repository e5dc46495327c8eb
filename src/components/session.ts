/**
 * What `<pb-model>` shares with the figures inside it (through `@lit/context`): the loaded model,
 * its tokenizer, and the loading status. Figures hold no numerics: they call the model's public
 * API and draw what comes back. A `change` event fires whenever any of this changes.
 *
 * Status `snapshot`: the browser cannot run the model (no WebGPU) and figures draw from a
 * snapshot computed ahead of time (`patchbay snapshot`), read-only. Status `weightless`: no WebGPU
 * and no snapshot; the model's config and tokenizer are there (no weights), so figures show what
 * needs no weights (the prompt's tokens, the heads' layout) and say what needs WebGPU.
 */
import { createContext } from '@lit/context';
import type { Snapshot } from '../experiments/snapshot.ts';
import type { Model } from '../hooks/model.ts';
import type { TextTokenizer } from '../model/tokenizer.ts';

export type SessionStatus = 'idle' | 'loading' | 'ready' | 'error' | 'snapshot' | 'weightless';

export interface LoadProgress {
  loaded: number;
  /** 0 while unknown (a server that sends no Content-Length, e.g. a gzipped response). */
  total: number;
  /** performance.now() when the download started. */
  started: number;
}

export class Session extends EventTarget {
  status: SessionStatus = 'idle';
  /** Preset name or URL being loaded. */
  name = '';
  model: Model | null = null;
  tokenizer: TextTokenizer | null = null;
  error = '';
  progress: LoadProgress = { loaded: 0, total: 0, started: 0 };
  /** True when the weights came from the browser's cache, not the network. */
  fromCache = false;
  /** What figures draw without a GPU (status `snapshot`). */
  snapshot: Snapshot | null = null;
  /** The model's shape read from its config.json without its weights (status `weightless`). */
  config: { n_layers: number; n_heads: number; d_vocab: number } | null = null;

  set(patch: Partial<Pick<Session, 'status' | 'name' | 'model' | 'tokenizer' | 'error' | 'progress' | 'fromCache' | 'snapshot' | 'config'>>): void {
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
    const V = this.shape?.d_vocab ?? Infinity;
    return parts.map((p) => {
      const id = /^\d+$/.test(p) ? Number(p) : NaN;
      if (!Number.isSafeInteger(id) || id >= V) throw new Error(`"${p}" is not a token id (this model takes ids 0 .. ${V - 1})`);
      return id;
    });
  }

  /** How a token reads: its text with the tokenizer (or from the snapshot), else its id. */
  label(id: number): string {
    if (this.tokenizer) return this.tokenizer.tokenText(id);
    return this.snapshot?.vocab[id] ?? String(id);
  }

  /** The model's shape: from the model, the snapshot, or (without weights) its config. */
  get shape(): { n_layers: number; n_heads: number; d_vocab: number } | null {
    return this.model?.config ?? this.snapshot?.model ?? this.config ?? null;
  }

  /** What a figure says while it has no model to compute with. */
  noModelText(): string {
    if (this.status === 'error') return 'No model: see the message above.';
    if (this.status === 'weightless') return 'This figure needs WebGPU to compute (see the message above).';
    return 'Waiting for the model…';
  }
}

export const sessionContext = createContext<Session>(Symbol('pb-session'));
