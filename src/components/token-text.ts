/**
 * How figures show a token's text: always as text through lit bindings (never as markup, so a
 * token `<img src=x onerror=alert(1)>` reads literally), with whitespace made visible: a space
 * is "·", a newline "↵", a tab "→", and an empty token "∅". Characters that are invisible or
 * that reorder the text around them (bidi controls such as U+202E, zero-width characters,
 * other format and control characters, line and paragraph separators) are shown as their code
 * point, `<U+202E>`, as code editors show them, so a token can neither hide nor reverse the
 * chips around it.
 */
import { css, html, type TemplateResult } from 'lit';

const VISIBLE: Record<string, string> = { ' ': '·', '\n': '↵', '\r': '␍', '\t': '→' };

/**
 * Control (Cc) and format (Cf: bidi embeddings, overrides and isolates, zero-width space and
 * joiners, the BOM, soft hyphen, tags) characters, line and paragraph separators, and the
 * blank fillers that render as nothing (combining grapheme joiner, Hangul fillers, Khmer
 * inherent vowels, Mongolian variation selectors).
 */
// The class lists the Mongolian variation selectors on purpose (they join the letter before them).
// eslint-disable-next-line no-misleading-character-class
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\u034F\u115F\u1160\u17B4\u17B5\u180B-\u180F\u3164\uFFA0]/u;

/** A character shown as a mark: whitespace as its symbol, an invisible one as `<U+XXXX>`; null for the others. */
export function visibleMark(ch: string): string | null {
  const ws = VISIBLE[ch];
  if (ws !== undefined) return ws;
  if (!INVISIBLE.test(ch)) return null;
  return `<U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}>`;
}

/** The token's text with whitespace and invisible characters replaced by visible marks, as a plain string (for labels). */
export function visibleText(label: string): string {
  if (label === '') return '∅';
  let out = '';
  for (const ch of label) out += visibleMark(ch) ?? ch;
  return out;
}

/**
 * The token's text as one inline `<span class="tok">`: whitespace and invisible-character
 * marks in a faded `<span class="ws">`, the rest as text nodes. One element, so a chip (a
 * column: text above its position) keeps " Mary" on one line. Include `tokenTextStyles` in the
 * element's styles.
 */
export function tokenText(label: string): TemplateResult {
  if (label === '') return html`<span class="tok"><span class="ws">∅</span></span>`;
  const parts: TemplateResult[] = [];
  let run = '';
  const flush = () => {
    if (run) parts.push(html`${run}`);
    run = '';
  };
  for (const ch of label) {
    const mark = visibleMark(ch);
    if (mark === null) {
      run += ch;
      continue;
    }
    flush();
    parts.push(html`<span class="ws">${mark}</span>`);
  }
  flush();
  return html`<span class="tok">${parts}</span>`;
}

/** Styles of `tokenText` and of token chips (`<span class="chip">`). */
export const tokenTextStyles = css`
  .ws {
    color: var(--pb-whitespace, #9ca3af);
  }
  /* Right-to-left letters a token still holds stay inside it. */
  .tok {
    unicode-bidi: isolate;
  }
  .chip {
    display: inline-flex;
    flex-direction: column;
    align-items: center;
    padding: 0.1em 0.35em 0.05em;
    border: 1px solid var(--_chip-border);
    border-radius: 4px;
    background: var(--_chip-bg);
    font-family: var(--pb-mono, ui-monospace, SFMono-Regular, Menlo, Consolas, monospace);
    font-size: 0.85em;
    line-height: 1.3;
    white-space: pre;
  }
  .chip .pos {
    font-family: var(--pb-font, system-ui, sans-serif);
    font-size: 0.7em;
    color: var(--_muted);
  }
`;

/** A position's label in figures: its index and its token, e.g. "13 ·Mary". */
export function positionLabel(pos: number, token: string): string {
  return `${pos} ${visibleText(token)}`;
}
