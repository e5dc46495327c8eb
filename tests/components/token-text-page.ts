/**
 * The token-text test page: a `<pb-prompt>` on a fake tokenizer whose tokens hold a right-to-left
 * override, zero-width characters, bidi isolates and a BOM. token-text.test.ts types their
 * concatenation (`window.trickyText`) into the prompt and reads the chips.
 */
import '../../src/components/index.ts';
import type { TextTokenizer } from '../../src/model/tokenizer.ts';

/** The tokens, in prompt order (the prompt is their concatenation). */
export const TRICKY_TOKENS = ['abc', '\u202E', '\u202Edef', 'x\u200By', '\u2066g\u2069', '\uFEFF', 'ok\u200D', '\u05D0\u05D1', 'end'];

const tokenizer = {
  encode: (text: string) => (text === TRICKY_TOKENS.join('') ? TRICKY_TOKENS.map((_, i) => i) : []),
  decode: (ids: readonly number[]) => ids.map((id) => TRICKY_TOKENS[id]).join(''),
  tokenText: (id: number) => TRICKY_TOKENS[id],
} as unknown as TextTokenizer;

const host = document.createElement('pb-model');
host.setAttribute('url-state', 'none');
host.session.set({ tokenizer });
const prompt = document.createElement('pb-prompt');
host.append(prompt);
document.getElementById('chips')!.append(host);
(window as unknown as { trickyText: string }).trickyText = TRICKY_TOKENS.join('');
