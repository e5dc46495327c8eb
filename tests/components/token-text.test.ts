/**
 * Token chips show bidi controls and zero-width characters as code points (`<U+202E>`), as code
 * editors do, in headless Chromium: a token holding U+202E (right-to-left override) used to
 * reverse the chips after it, and zero-width characters made tokens look identical. Checked in
 * the rendered chips: their text, and where their characters land on screen.
 */
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { visibleText } from '../../src/components/token-text.ts';
import { openBrowser, type TestBrowser } from '../helpers/browser.ts';

const WAIT = { timeout: 60_000, polling: 100 };
let b: TestBrowser;
let page: Page;
let errors: string[];

beforeAll(async () => {
  b = await openBrowser({ entries: ['tests/components/token-text.html'] });
  ({ page, errors } = await b.newPage('/tests/components/token-text.html', { viewport: { width: 900, height: 400 } }));
  await page.waitForFunction(() => !!document.querySelector('pb-prompt')?.shadowRoot?.querySelector('input'), undefined, WAIT);
  await page.locator('pb-prompt input[part=input]').fill(await page.evaluate(() => (window as unknown as { trickyText: string }).trickyText));
  await page.waitForFunction(() => document.querySelector('pb-prompt')?.shadowRoot?.querySelectorAll('.chip').length === 9, undefined, WAIT);
}, 120_000);

afterAll(async () => {
  await b?.close();
});

describe('token chips with invisible characters', () => {
  test('show each bidi control and zero-width character as <U+XXXX>, and nothing invisible', async () => {
    const chips = await page.evaluate(() => [...document.querySelector('pb-prompt')!.shadowRoot!.querySelectorAll('.chip .text')].map((e) => e.textContent));
    expect(chips).toEqual(['abc', '<U+202E>', '<U+202E>def', 'x<U+200B>y', '<U+2066>g<U+2069>', '<U+FEFF>', 'ok<U+200D>', '\u05D0\u05D1', 'end']);
    for (const c of chips) expect(c).not.toMatch(/[\u200B-\u200F\u202A-\u202E\u2066-\u2069\uFEFF]/);
    expect(errors).toEqual([]);
  });

  test('lay out left to right: the chips after U+202E are not reversed', async () => {
    // The x position of each character of the chips' text, in chip order.
    const xs = await page.evaluate(() =>
      [...document.querySelector('pb-prompt')!.shadowRoot!.querySelectorAll('.chip .text')].map((el) => {
        const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
        const out: Array<{ ch: string; x: number; y: number }> = [];
        for (let n = walker.nextNode(); n; n = walker.nextNode()) {
          for (let i = 0; i < n.textContent!.length; i++) {
            const r = document.createRange();
            r.setStart(n, i);
            r.setEnd(n, i + 1);
            const box = r.getBoundingClientRect();
            out.push({ ch: n.textContent![i]!, x: box.left, y: box.top });
          }
        }
        return out;
      }),
    );
    // Chips in reading order (one row), and inside every chip but the Hebrew one, characters left to right.
    const firsts = xs.map((c) => c[0]!);
    expect(new Set(firsts.map((f) => Math.round(f.y))).size).toBe(1);
    for (let i = 1; i < firsts.length; i++) expect(firsts[i]!.x, `chip ${i} starts right of chip ${i - 1}`).toBeGreaterThan(firsts[i - 1]!.x);
    xs.forEach((chars, i) => {
      if (i === 7) return; // אב is right to left inside its own chip
      for (let j = 1; j < chars.length; j++) expect(chars[j]!.x, `chip ${i} "${chars.map((c) => c.ch).join('')}" char ${j}`).toBeGreaterThan(chars[j - 1]!.x);
    });
  });
});

describe('visibleText (labels)', () => {
  test('marks whitespace, control, format and separator characters; leaves visible text alone', () => {
    expect(visibleText(' a\tb\n')).toBe('·a→b↵');
    expect(visibleText('\u202Eevil\u202C')).toBe('<U+202E>evil<U+202C>');
    expect(visibleText('\u0000\u001B\u007F\u0085')).toBe('<U+0000><U+001B><U+007F><U+0085>');
    expect(visibleText('\u00AD\u061C\u200E\u2028\u2029\u2060\u3164\u{E0041}')).toBe('<U+00AD><U+061C><U+200E><U+2028><U+2029><U+2060><U+3164><U+E0041>');
    expect(visibleText('héllo 世界 \u05D0 😀')).toBe('héllo·世界·\u05D0·😀');
    expect(visibleText('')).toBe('∅');
  });
});
