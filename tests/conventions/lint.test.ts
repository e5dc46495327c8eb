/**
 * The lint keeps figures runnable under a strict CSP: eslint (eslint.config.js) refuses code
 * built from strings anywhere in the sources: `eval`, `new Function`, and timers given a string.
 */
import { resolve } from 'node:path';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');

describe('eslint', () => {
  it('refuses string-to-code in src/', async () => {
    const eslint = new ESLint({ cwd: root });
    const code = ["export const a = eval('1');", "export const f = new Function('x', 'return x');", "setTimeout('a()', 1);", ''].join('\n');
    const [result] = await eslint.lintText(code, { filePath: resolve(root, 'src/components/lint-probe.ts') });
    const rules = result.messages.map((m) => m.ruleId);
    expect(rules).toContain('no-eval');
    expect(rules).toContain('no-new-func');
    expect(rules).toContain('no-implied-eval');
    // ...and passes the same file without them.
    const [clean] = await eslint.lintText("export const a = Number('1');\n", { filePath: resolve(root, 'src/components/lint-probe.ts') });
    expect(clean.messages).toEqual([]);
  });
});
