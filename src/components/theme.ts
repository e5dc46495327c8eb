/**
 * Colours every element uses, light and dark (`prefers-color-scheme`), as private custom
 * properties (`--_fg` …) that fall back to the public ones a page may set (`--pb-fg` …): a page
 * restyles every figure at once, and a page that sets nothing still gets a dark figure on a dark
 * system. Heatmap colour scales read the same (src/components/color-scale.ts).
 */
import { css } from 'lit';

export const palette = css`
  :host {
    --_fg: var(--pb-fg, #1f2328);
    --_muted: var(--pb-muted, #59636e);
    --_bg: var(--pb-bg, #ffffff);
    --_panel: var(--pb-panel, #f6f8fa);
    --_border: var(--pb-border, #c9ced6);
    --_border-light: var(--pb-border-light, #e5e7eb);
    --_accent: var(--pb-accent, #1d4ed8);
    --_error: var(--pb-error, #b00020);
    --_error-bg: var(--pb-error-bg, #fdecee);
    --_warn: var(--pb-warn, #b45309);
    --_warn-bg: var(--pb-warn-bg, #fff6e0);
    --_hover: var(--pb-hover, #f1f3f5);
    --_chip-bg: var(--pb-chip-bg, #f6f8fa);
    --_chip-border: var(--pb-chip-border, #d5d9de);
    --_track: var(--pb-track, #eef1f4);
    --_highlight: var(--pb-highlight, #fde68a);
    color-scheme: light dark;
  }
  @media (prefers-color-scheme: dark) {
    :host {
      --_fg: var(--pb-fg, #e6edf3);
      --_muted: var(--pb-muted, #9da7b3);
      --_bg: var(--pb-bg, #0d1117);
      --_panel: var(--pb-panel, #161b22);
      --_border: var(--pb-border, #3d444d);
      --_border-light: var(--pb-border-light, #30363d);
      --_accent: var(--pb-accent, #4493f8);
      --_error: var(--pb-error, #ff7b72);
      --_error-bg: var(--pb-error-bg, #2d1215);
      --_warn: var(--pb-warn, #d29922);
      --_warn-bg: var(--pb-warn-bg, #2b2111);
      --_hover: var(--pb-hover, #21262d);
      --_chip-bg: var(--pb-chip-bg, #161b22);
      --_chip-border: var(--pb-chip-border, #3d444d);
      --_track: var(--pb-track, #21262d);
      --_highlight: var(--pb-highlight, #6e5a12);
    }
  }
`;
