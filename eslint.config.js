// npm run lint (with prettier and lit-analyzer, see package.json): typescript-eslint's
// recommended rules, and no string-to-code anywhere, since figures must run under a strict CSP
// (no 'unsafe-eval').
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['lib/', 'dist/', 'node_modules/', 'test-results/', '.venv/', 'tmp/'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    // no-implied-eval looks for these globals, so it must know them (for string timers).
    languageOptions: { globals: { setTimeout: 'readonly', setInterval: 'readonly', window: 'readonly', self: 'readonly', globalThis: 'readonly' } },
    rules: {
      'no-eval': 'error',
      'no-new-func': 'error',
      'no-implied-eval': 'error',
      // `_name` marks a parameter an interface requires and a body does not read.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true }],
    },
  },
  {
    // The two plain JavaScript files: the CLI launcher (Node) and a test page's script (browser).
    files: ['bin/**/*.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
  {
    files: ['tests/pages/**/*.js'],
    languageOptions: { globals: { window: 'readonly', document: 'readonly', location: 'readonly', URLSearchParams: 'readonly', customElements: 'readonly', console: 'readonly' } },
  },
);
