/**
 * The look every figure shares: type, toolbar, buttons, selects, messages and progress bars.
 * Colours are CSS custom properties (`--pb-accent`, `--pb-fg`, `--pb-muted`, `--pb-border`,
 * `--pb-error`) so a page can restyle every figure at once.
 */
import { css } from 'lit';
import { palette } from './theme.ts';

export const figureStyles = [
  palette,
  css`
  :host {
    display: block;
    margin: 1rem 0;
    color: var(--_fg);
    font-family: var(--pb-font, inherit);
    font-size: var(--pb-font-size, 0.95rem);
    line-height: 1.4;
  }
  :host([hidden]) {
    display: none;
  }
  .toolbar {
    display: flex;
    flex-wrap: wrap;
    align-items: center;
    gap: 0.4rem 0.75rem;
    margin: 0 0 0.6rem;
  }
  .title {
    font-weight: 600;
    margin-right: auto;
  }
  button,
  select {
    font: inherit;
    font-size: 0.9em;
    color: inherit;
    border: 1px solid var(--_border);
    border-radius: 6px;
    background: var(--_bg);
  }
  button {
    padding: 0.25em 0.75em;
    cursor: pointer;
  }
  button:hover:not(:disabled) {
    background: var(--_hover);
  }
  button:disabled {
    color: var(--_muted);
    cursor: default;
    opacity: 0.6;
  }
  button[aria-pressed='true'],
  button[aria-pressed='true']:hover:not(:disabled) {
    background: var(--_accent);
    border-color: var(--_accent);
    color: #fff;
  }
  select {
    padding: 0.2em 0.4em;
  }
  button:focus-visible,
  select:focus-visible,
  input:focus-visible {
    outline: 2px solid var(--_accent);
    outline-offset: 1px;
  }
  .segmented {
    display: inline-flex;
  }
  .segmented button {
    border-radius: 0;
    margin-left: -1px;
  }
  .segmented button:first-child {
    border-radius: 6px 0 0 6px;
    margin-left: 0;
  }
  .segmented button:last-child {
    border-radius: 0 6px 6px 0;
  }
  .muted {
    color: var(--_muted);
    font-size: 0.9em;
  }
  .error {
    color: var(--_error);
    font-size: 0.9em;
    margin: 0.3rem 0;
  }
  .progress {
    display: flex;
    align-items: center;
    gap: 0.6rem;
    font-size: 0.85em;
    color: var(--_muted);
    margin: 0.3rem 0;
  }
  progress {
    flex: 0 1 16rem;
    height: 0.6rem;
    accent-color: var(--_accent);
  }
  .num {
    font-variant-numeric: tabular-nums;
  }

  .notice {
    font-size: 0.9em;
    margin: 0.3rem 0;
    padding: 0.35em 0.6em;
    border-left: 3px solid var(--_warn);
    background: var(--_warn-bg);
  }
  .error {
    padding: 0.35em 0.6em;
    border-left: 3px solid var(--_error);
    background: var(--_error-bg);
  }
  .stale {
    opacity: 0.35;
    filter: grayscale(1);
    pointer-events: none;
  }
  .stale-note {
    font-size: 0.85em;
    color: var(--_muted);
  }
  .auto-caption {
    font-size: 0.9em;
    color: var(--_muted);
    margin: 0 0 0.5rem;
  }
  details.export {
    position: relative;
  }
  details.export > summary {
    list-style: none;
    cursor: pointer;
    font-size: 0.85em;
    padding: 0.2em 0.7em;
    border: 1px solid var(--_border);
    border-radius: 6px;
  }
  details.export > summary::-webkit-details-marker {
    display: none;
  }
  details.export .menu {
    position: absolute;
    right: 0;
    z-index: 5;
    display: grid;
    gap: 0.2rem;
    min-width: 12rem;
    max-width: min(20rem, 90vw);
    margin-top: 0.25rem;
    padding: 0.4rem;
    border: 1px solid var(--_border);
    border-radius: 8px;
    background: var(--_bg);
    box-shadow: 0 4px 14px rgb(0 0 0 / 18%);
  }
  details.export .menu button,
  details.export .menu label {
    text-align: left;
    font-size: 0.85em;
  }
  details.export textarea {
    width: 100%;
    min-height: 5em;
    font: 0.8em var(--pb-mono, ui-monospace, monospace);
  }
  select {
    max-width: 100%;
  }
`,
];
