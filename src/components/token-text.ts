/**
 * How figures show a token's text: always as text through lit bindings (never as markup, so a
 * token `<img src=x onerror=alert(1)>` reads literally), with whitespace made visible: a space
 * is "·", a newline "↵", a tab "→", and an empty token "∅".
 */
import { css, html, type TemplateResult } from 'lit';

const VISIBLE: Record<string, string> = { ' ': '·', '\n': '↵', '\r': '␍', '\t': '→' };
const WHITESPACE = /[ \n\r\t]/;

/** The token's text with whitespace replaced by visible marks, as a plain string (for labels). */
export function visibleText(label: string): string {
  if (label === '') return '∅';
  let out = '';
  for (const ch of label) out += VISIBLE[ch] ?? ch;
  return out;
}

/**
 * The token's text as one inline `<span class="tok">`: whitespace marks in a faded
 * `<span class="ws">`, the rest as text nodes. One element, so a chip (a column: text above its
 * position) keeps " Mary" on one line. Include `tokenTextStyles` in the element's styles.
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
    if (WHITESPACE.test(ch)) {
      flush();
      parts.push(html`<span class="ws">${VISIBLE[ch]}</span>`);
    } else run += ch;
  }
  flush();
  return html`<span class="tok">${parts}</span>`;
}

/** Styles of `tokenText` and of token chips (`<span class="chip">`). */
export const tokenTextStyles = css`
  .ws {
    color: var(--pb-whitespace, #9ca3af);
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
