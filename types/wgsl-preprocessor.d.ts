// wgsl-preprocessor 1.0.1 ships no types and no `exports` map; we deep-import its one file.
declare module 'wgsl-preprocessor/wgsl-preprocessor.js' {
  /** Tagged template: evaluates `#if / #elif / #else / #endif` on interpolated booleans. */
  export function wgsl(strings: TemplateStringsArray, ...values: unknown[]): string;
}
