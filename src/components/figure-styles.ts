/**
 * The look every figure shares: type, toolbar, buttons, selects, messages and progress bars.
 * Colours are CSS custom properties (`--pb-accent`, `--pb-fg`, `--pb-muted`, `--pb-border`,
 * `--pb-error`) so a page can restyle every figure at once.
 */
import { css } from 'lit';

export const figureStyles = css`
  :host {
    display: block;
    margin: 1rem 0;
    color: var(--pb-fg, #1f2328);
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
    border: 1px solid var(--pb-border, #c9ced6);
    border-radius: 6px;
    background: var(--pb-bg, #fff);
  }
  button {
    padding: 0.25em 0.75em;
    cursor: pointer;
  }
  button:hover:not(:disabled) {
    background: var(--pb-hover, #f1f3f5);
  }
  button:disabled {
    color: var(--pb-muted, #6b7280);
    cursor: default;
    opacity: 0.6;
  }
  button[aria-pressed='true'],
  button[aria-pressed='true']:hover:not(:disabled) {
    background: var(--pb-accent, #1d4ed8);
    border-color: var(--pb-accent, #1d4ed8);
    color: #fff;
  }
  select {
    padding: 0.2em 0.4em;
  }
  button:focus-visible,
  select:focus-visible,
  input:focus-visible {
    outline: 2px solid var(--pb-accent, #1d4ed8);
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
    color: var(--pb-muted, #6b7280);
    font-size: 0.9em;
  }
  .error {
    color: var(--pb-error, #b00020);
    font-size: 0.9em;
    margin: 0.3rem 0;
  }
  .progress {
    display: flex;
    align-items: center;
    gap: 0.6rem;
    font-size: 0.85em;
    color: var(--pb-muted, #6b7280);
    margin: 0.3rem 0;
  }
  progress {
    flex: 0 1 16rem;
    height: 0.6rem;
    accent-color: var(--pb-accent, #1d4ed8);
  }
  .num {
    font-variant-numeric: tabular-nums;
  }
`;
