/**
 * The superposition page as a reader gets it: the built site, served statically, in headless
 * Chromium (WebGPU on SwiftShader). The five-feature panel trains on load with the settings in
 * the address; the test reads back what the figures show (each card's W, the lowest-loss start of
 * its sparsity) and checks the paper's geometry on it, then retrains with other settings, pauses
 * and resumes, and runs the hundred-feature panel for a few steps. The thorough check of the
 * training itself (against the CPU reference, and the geometry on 8 starts) is
 * tests/train/superposition.test.ts in Node.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ROOT, launchChromium } from '../helpers/browser.ts';
import { buildSiteInto, recordingContext, startStaticServer, unexpectedErrors, type StaticServer } from '../helpers/pages.ts';

const SHOTS = join(ROOT, 'test-results', 'pages');
let server: StaticServer;
let browser: Browser;

beforeAll(async () => {
  const site = await buildSiteInto();
  server = await startStaticServer({ '/': site });
  browser = await launchChromium();
  mkdirSync(SHOTS, { recursive: true });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

/** Waits until the panel's status has `state` (or fails on error), returning its data-step. */
async function settle(page: Page, panel: 'small' | 'big', state: string): Promise<number> {
  await page.waitForFunction(
    ([p, s]) => {
      const e = document.querySelector<HTMLElement>(`#${p}-status`)!;
      if (e.dataset.state === 'error' && s !== 'error') throw new Error(e.textContent ?? 'error');
      return e.dataset.state === s;
    },
    [panel, state] as const,
    { timeout: 120_000, polling: 200 },
  );
  return Number(await page.getAttribute(`#${panel}-status`, 'data-step'));
}

/** Each card's sparsity and the W [5, 2] its geometry figure shows. */
const cards = (page: Page) =>
  page.evaluate(() =>
    [...document.querySelectorAll<HTMLElement>('#small-cards .card')].map((c) => ({
      sparsity: Number(c.dataset.sparsity),
      W: Array.from((c.querySelector('tms-geometry') as HTMLElement & { W: Float32Array }).W),
    })),
  );

test('trains 5 -> 2 on load and shows the paper geometry; retrain, pause and resume; 100 -> 20 runs', async () => {
  const { context, problems } = await recordingContext(browser, server.origin);
  const page = await context.newPage();
  const t0 = performance.now();
  await page.goto(`${server.origin}/demos/superposition/?sparsity=0,0.8,0.9&steps=800`);
  expect(await settle(page, 'small', 'done')).toBe(800);
  const trained = (performance.now() - t0) / 1000;

  const shown = await cards(page);
  expect(shown.map((c) => c.sparsity)).toEqual([0, 0.8, 0.9]);
  const norm = (W: number[], f: number) => Math.hypot(W[2 * f]!, W[2 * f + 1]!);
  const represented = (W: number[]) => [0, 1, 2, 3, 4].filter((f) => norm(W, f) > 0.5);
  const cos = (W: number[], f: number, g: number) => (W[2 * f]! * W[2 * g]! + W[2 * f + 1]! * W[2 * g + 1]!) / (norm(W, f) * norm(W, g));
  // Dense: the two most important features, orthogonal. 80%: four features as two antipodal
  // pairs. 90%: all five.
  expect(represented(shown[0]!.W)).toEqual([0, 1]);
  expect(Math.abs(cos(shown[0]!.W, 0, 1))).toBeLessThan(0.05);
  const pairs = represented(shown[1]!.W);
  expect(pairs).toEqual([0, 1, 2, 3]);
  for (const f of pairs) expect(Math.min(...pairs.filter((g) => g !== f).map((g) => cos(shown[1]!.W, f, g)))).toBeLessThan(-0.99);
  expect(represented(shown[2]!.W)).toEqual([0, 1, 2, 3, 4]);
  await page.screenshot({ path: join(SHOTS, 'superposition.png'), fullPage: true });

  // Other settings: one sparsity, another importance ratio; the address keeps them.
  await page.fill('#small-form input[name=sparsity]', '0.5');
  await page.fill('#small-form input[name=importance]', '0.7');
  await page.fill('#small-form input[name=steps]', '300');
  await page.click('#small-form button[name=train]');
  await settle(page, 'small', 'training');
  await page.click('#small-form button[name=pause]');
  const pausedAt = await settle(page, 'small', 'paused');
  await page.waitForTimeout(1000);
  expect(Number(await page.getAttribute('#small-status', 'data-step'))).toBe(pausedAt);
  await page.click('#small-form button[name=pause]');
  expect(await settle(page, 'small', 'done')).toBe(300);
  expect((await cards(page)).map((c) => c.sparsity)).toEqual([0.5]);
  const q = new URL(page.url()).searchParams;
  expect([q.get('sparsity'), q.get('importance'), q.get('steps')]).toEqual(['0.5', '0.7', '300']);

  // Bad input is refused with a message, and nothing starts.
  await page.fill('#small-form input[name=sparsity]', '0.5, 2');
  await page.click('#small-form button[name=train]');
  await settle(page, 'small', 'error');
  expect(await page.textContent('#small-status')).toMatch(/Sparsities are numbers from 0/);

  // The hundred-feature panel trains when asked and plots its sixteen models.
  await page.fill('#big-form input[name=steps]', '10');
  await page.click('#big-form button[name=train]');
  expect(await settle(page, 'big', 'done')).toBe(10);
  const plotted = await page.evaluate(() => (document.querySelector('tms-dimensionality') as HTMLElement & { points: { perDim: number }[] }).points.map((p) => p.perDim));
  expect(plotted).toHaveLength(16);
  for (const v of plotted) expect(v).toBeGreaterThan(0);

  console.log(`superposition page: 800 steps of the five-feature models trained ${trained.toFixed(1)} s after navigation`);
  expect(problems.pageErrors).toEqual([]);
  expect(problems.cspViolations).toEqual([]);
  expect(problems.external).toEqual([]);
  expect(unexpectedErrors(problems, server)).toEqual([]);
  await context.close();
}, 300_000);
