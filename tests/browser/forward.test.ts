/**
 * The forward pass in a real browser: serves tests/browser/forward.html with Vite, opens it in
 * headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core; WebGPU there runs
 * on SwiftShader) and checks the page's logits against Hugging Face with the shared rule.
 * Everything else is tested in Node, where it runs several times faster.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { launchChromium, startViteServer, type TestServer } from '../helpers/browser.ts';
import type { ForwardPageResult } from './result.ts';

// Launch + adapter take ~25 s on a 2-core box, SwiftShader's forward a few seconds more.
const PAGE_TIMEOUT_MS = 180_000;

let server: TestServer;
let browser: Browser;
let origin: string;

beforeAll(async () => {
  // Scan only this page for dependencies, so Vite has them optimized before it answers.
  server = await startViteServer({ entries: ['tests/browser/forward.html'] });
  origin = server.origin;
  const t0 = performance.now();
  browser = await launchChromium();
  console.log(`Chromium ${browser.version()} launched in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

test(
  'induction-2l forward in headless Chromium matches Hugging Face logits',
  async () => {
    const page = await browser.newPage();
    // The page's own errors are the only clue when it fails: pass them through.
    page.on('console', (msg) => {
      if (msg.type() === 'error' || msg.type() === 'warning') console.error(`[page ${msg.type()}] ${msg.text()}`);
    });
    page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));

    const t0 = performance.now();
    await page.goto(`${origin}/tests/browser/forward.html`);
    await page.waitForFunction(() => window.__result !== undefined, undefined, {
      timeout: PAGE_TIMEOUT_MS,
      polling: 250,
    });
    const result = (await page.evaluate(() => window.__result)) as ForwardPageResult;
    const pageMs = performance.now() - t0;
    await page.close();

    if ('error' in result) throw new Error(`the page failed: ${result.error}`);
    console.log(
      `browser forward: adapter ${result.adapter}; first run ${result.ms.toFixed(1)} ms, ` +
        `second ${result.msSecondRun.toFixed(1)} ms; max |error| ${result.maxAbsError.toExponential(3)} ` +
        `(tolerance ${result.tolerance.toExponential(3)}); page total ${(pageMs / 1000).toFixed(1)} s`,
    );
    expect(result.maxAbsError).toBeLessThanOrEqual(1e-4 * Math.max(1, result.maxAbsRef));
    expect(result.tolerance).toBe(1e-4 * Math.max(1, result.maxAbsRef));
  },
  PAGE_TIMEOUT_MS + 30_000,
);
