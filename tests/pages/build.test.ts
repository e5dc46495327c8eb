/**
 * `npm run build` as a user runs it: dist/ must be a static site any static server can host
 * (relative URLs, the demo model copied in) plus the library bundle dist/patchbay.js, which an
 * outside author loads with one script tag (demos/article/ does exactly that). Served here by a
 * plain node:http server and opened in headless Chromium; every page must run under its own
 * Content-Security-Policy with no errors. Screenshots go to test-results/pages/.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ROOT, launchChromium } from '../helpers/browser.ts';
import { HUB_SCRIPT_MARKER, holdBackScripts, recordingContext, startStaticServer, unexpectedErrors, type StaticServer } from '../helpers/pages.ts';
import { writeRandomGpt2Hub } from '../helpers/random-gpt2-hub.ts';

const DIST = join(ROOT, 'dist');
const HUB_PATH = '/openai-community/gpt2/resolve/main/';
const WAIT = { timeout: 90_000, polling: 100 };
const SHOTS = join(ROOT, 'test-results', 'pages');
const cases = JSON.parse(readFileSync(join(ROOT, 'tests/fixtures/induction-2l/cases.json'), 'utf8'));

let server: StaticServer;
let browser: Browser;

beforeAll(async () => {
  const t0 = performance.now();
  execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const built = performance.now() - t0;
  const hub = mkdtempSync(join(tmpdir(), 'patchbay-hub-'));
  writeRandomGpt2Hub(hub);
  server = await startStaticServer({ '/': DIST, [HUB_PATH]: hub });
  browser = await launchChromium();
  mkdirSync(SHOTS, { recursive: true });
  console.log(`npm run build took ${(built / 1000).toFixed(1)} s`);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

test('dist/ holds every page, the demo model and a self-contained library bundle', () => {
  for (const f of [
    'index.html',
    'demos/induction/index.html',
    'demos/ioi/index.html',
    'demos/explore/index.html',
    'demos/article/index.html',
    'demos/models/induction-2l/model.safetensors',
    'patchbay.js',
  ]) {
    expect(existsSync(join(DIST, f)), f).toBe(true);
  }
  const bundle = readFileSync(join(DIST, 'patchbay.js'), 'utf8');
  // ESM with exports, no imports of its own: one file an author can host anywhere.
  expect(bundle).toMatch(/^export \{/m);
  // (Lines such as "import json" are the Python of exported scripts, kept as text in the bundle.)
  expect(bundle).not.toMatch(/^import\s[^;\n]*\bfrom\s*["'][^"']+["'];?\s*$|^import\s*["']/m);
  expect(bundle).toContain('customElements.define');
  // Dawn (the npm "webgpu" package, a native addon for Node) stays out: the only trace is the
  // Node-only dynamic import in src/gpu/device.ts, which a browser never reaches.
  expect(bundle.match(/import\(\s*(\/\*[^*]*\*\/\s*)?["'`]webgpu["'`]\s*\)/g) ?? []).toHaveLength(1);
  expect(bundle).not.toMatch(/dawn\.node|\.node["'`]|require\(/);
  // Pages use relative URLs, so the site works from any sub-path.
  for (const page of ['index.html', 'demos/induction/index.html', 'demos/ioi/index.html', 'demos/explore/index.html']) {
    const html = readFileSync(join(DIST, page), 'utf8');
    expect(html, page).not.toMatch(/(src|href)="\/(?!\/)/);
    expect(html, page).toContain('http-equiv="Content-Security-Policy"');
  }
  const article = readFileSync(join(DIST, 'demos/article/index.html'), 'utf8');
  expect(article.match(/<script[^>]*>/g)).toEqual(['<script type="module" src="../../patchbay.js">']);
  expect(readdirSync(join(DIST, 'demos'))).toEqual(expect.arrayContaining(['article', 'induction', 'ioi', 'models']));
});

test('the article, built on dist/patchbay.js, renders its figures at 700 px', async () => {
  const { context, problems } = await recordingContext(browser, server.origin, { viewport: { width: 700, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${server.origin}/demos/article/`);
  // Figure 3: the fixture's resid_pre patching grid (TransformerLens' get_act_patch_resid_pre), normalized.
  await page.waitForFunction(() => document.querySelector('pb-patching')?.shadowRoot?.querySelector('pb-heatmap')?.values.length, undefined, WAIT);
  // The cells are drawn on a canvas: read what it draws from the element.
  const cells = await page.evaluate(() => {
    const h = document.querySelector('pb-patching')!.shadowRoot!.querySelector('pb-heatmap')!;
    return Array.from({ length: h.rows * h.cols }, (_, i) => ({ r: Math.floor(i / h.cols), c: i % h.cols, v: h.cellAt(Math.floor(i / h.cols), i % h.cols).value }));
  });
  const grid: number[][] = cases.resid_pre_patch_corrupt_from_clean;
  expect(cells).toHaveLength(grid.length * grid[0].length);
  const span = cases.clean_logit_diff - cases.corrupt_logit_diff;
  for (const { r, c, v } of cells) expect(Math.abs(v - (grid[r][c] - cases.corrupt_logit_diff) / span)).toBeLessThan(1e-3);
  // Figure 1 predicts the copy; figure 2 shows the fixture's clean logit difference.
  await page.waitForFunction(() => document.querySelector('pb-top-tokens')?.shadowRoot?.querySelector('[data-id]'), undefined, WAIT);
  expect(await page.evaluate(() => document.querySelector('pb-top-tokens')!.shadowRoot!.querySelector('[data-id]')!.getAttribute('data-id'))).toBe('247');
  await page.waitForFunction(() => document.querySelector('pb-head-grid')?.shadowRoot?.querySelector('.unablated')?.getAttribute('data-value'), undefined, WAIT);
  const shown = await page.evaluate(() => Number(document.querySelector('pb-head-grid')!.shadowRoot!.querySelector('.unablated')!.getAttribute('data-value')));
  expect(Math.abs(shown - cases.clean_logit_diff)).toBeLessThan(1e-3);
  // Nothing sticks out of a 700 px page.
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(700);
  await page.screenshot({ path: join(SHOTS, 'article.png'), fullPage: true });
  expect(problems.pageErrors).toEqual([]);
  expect(problems.cspViolations).toEqual([]);
  expect(unexpectedErrors(problems, server)).toEqual([]);
  await context.close();
});

test('every page runs under its Content-Security-Policy, with no errors and no request elsewhere', async () => {
  const pages = [
    { name: 'gallery', path: '/', model: false },
    { name: 'induction-built', path: '/demos/induction/', model: true },
    { name: 'ioi-built', path: `/demos/ioi/?hub=${encodeURIComponent(server.origin)}`, model: true },
    { name: 'explore-built', path: `/demos/explore/?hub=${encodeURIComponent(server.origin)}`, model: true },
  ];
  for (const p of pages) {
    const { context, problems } = await recordingContext(browser, server.origin);
    // The script that applies ?hub= arrives late: the page must wait for it, not win a race.
    if (p.path.includes('hub=')) await holdBackScripts(context, server.origin, HUB_SCRIPT_MARKER, 1500);
    const page = await context.newPage();
    await page.goto(server.origin + p.path);
    const csp = await page.evaluate(() => document.querySelector('meta[http-equiv="Content-Security-Policy"]')?.getAttribute('content') ?? '');
    expect(csp, p.name).toMatch(/default-src 'self'/);
    expect(csp, p.name).not.toMatch(/script-src[^;]*unsafe/);
    if (p.model) {
      // Loaded, and the figures have drawn (the head grid's metric is the last to arrive; the
      // explore page has no head grid, so its next-token list).
      await page.waitForFunction(
        () =>
          document.querySelector('pb-head-grid')?.shadowRoot?.querySelector('.unablated')?.getAttribute('data-value') ??
          document.querySelector('pb-top-tokens')?.shadowRoot?.querySelector('[part~="row"]'),
        undefined,
        WAIT,
      );
    } else {
      // induction, superposition, SAE, IOI, explore, features, article
      expect(await page.locator('#demos a').count()).toBe(7);
      for (const href of await page.locator('#demos a').evaluateAll((as) => as.map((a) => (a as HTMLAnchorElement).href))) {
        expect((await page.request.get(href)).status(), href).toBe(200);
      }
    }
    await page.screenshot({ path: join(SHOTS, `${p.name}.png`), fullPage: !p.model });
    expect(problems.pageErrors, p.name).toEqual([]);
    expect(problems.cspViolations, p.name).toEqual([]);
    expect(problems.external, p.name).toEqual([]);
    expect(unexpectedErrors(problems, server), p.name).toEqual([]);
    await context.close();
  }
}, 120_000);
