/**
 * Every demo page as a reader on a phone, in the dark, by keyboard or without WebGPU gets it
 * (issue 17), on the built site served by a plain static server, in headless Chromium. The GPT-2
 * pages (IOI, explore) read a stand-in "Hub" the test writes: a random GPT-2 with GPT-2 small's
 * shape of attention (12 layers × 12 heads, d_model 24) and GPT-2's tokenizer.
 *
 *  1. each page at 360 px in dark mode, then 390 px in light mode: no horizontal overflow (the
 *     screenshot is as wide as the viewport; the document does not scroll sideways), and dark
 *     figures on a dark page
 *  2. the 12 × 12 head grid by keyboard alone: arrows move a cursor that names each head (the
 *     grid's active descendant), Enter ablates it, and the metric follows
 *  3. loading over a slow link that sends Content-Length: a determinate bar, and a time left that
 *     matches when the weights actually finished
 *  4. without WebGPU and without a snapshot, the IOI and explore pages say what is missing and
 *     show what needs no weights (the prompt's tokens, the heads' layout and roles); an author's
 *     `patchbay snapshot` of the shipped spec, against the Hub, is what the IOI page then draws
 */
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ROOT, launchChromium } from '../helpers/browser.ts';
import { buildSiteInto, recordingContext, startStaticServer, unexpectedErrors, type StaticServer } from '../helpers/pages.ts';
import { referenceLogitDiff, writeRandomGpt2Hub } from '../helpers/random-gpt2-hub.ts';
import { runCli } from '../helpers/run-cli.ts';

const WAIT = { timeout: 120_000, polling: 100 };
const SHOTS = join(ROOT, 'test-results', 'pages');
const HUB_PATH = '/openai-community/gpt2/resolve/main/';
// The IOI prompt as GPT-2 tokenizes it; " Mary" 5335, " John" 1757.
const IOI_IDS = [2215, 5335, 290, 1757, 1816, 284, 262, 3650, 11, 1757, 2921, 257, 4144, 284];

let site: string;
let hubDir: string;
let server: StaticServer;
let browser: Browser;

beforeAll(async () => {
  site = await buildSiteInto();
  hubDir = mkdtempSync(join(tmpdir(), 'patchbay-hub12-'));
  writeRandomGpt2Hub(hubDir, { d_model: 24, n_layers: 12, n_heads: 12, n_ctx: 64, seed: 12 });
  server = await startStaticServer({ '/': site, [HUB_PATH]: hubDir });
  browser = await launchChromium();
  mkdirSync(SHOTS, { recursive: true });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

/**
 * Resolves when the page is drawn: every model with a source is loaded (the induction page's
 * trained-model has none until the reader trains one), `figure`'s shadow root has `drawn` (a
 * figure that draws only once it has computed), and no figure is busy (every element with
 * aria-busy, searched through shadow roots, says "false").
 */
function settled(page: Page, [figure, drawn]: Landmark): Promise<unknown> {
  return page.waitForFunction(
    ([f, d]) => {
      const models = [...document.querySelectorAll('pb-model[src]')] as (Element & { session?: { status: string } })[];
      if (models.some((m) => m.session?.status !== 'ready')) return false;
      if (!document.querySelector(f)?.shadowRoot?.querySelector(d)) return false;
      let busy = false;
      const visit = (root: Document | ShadowRoot) => {
        if (root.querySelector('[aria-busy=true]')) busy = true;
        for (const el of root.querySelectorAll('*')) if (el.shadowRoot) visit(el.shadowRoot);
      };
      visit(document);
      return !busy;
    },
    [figure, drawn] as const,
    WAIT,
  );
}

/** Width of a PNG from its header. */
const pngWidth = (b: Buffer) => b.readUInt32BE(16);
const lum = (c: string) => {
  const [r, g, b] = c.match(/\d+/g)!.map(Number);
  return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
};

/** A figure, and what its shadow root has once it has drawn. */
type Landmark = [figure: string, drawn: string];

/** The pages, where to open them, what says they are drawn, and the figure whose colours show the scheme. */
const PAGES: [name: string, path: string, landmark: Landmark, figure: string][] = [
  ['article', '/demos/article/', ['pb-head-grid', '.unablated:not([data-value=""])'], 'pb-head-grid'],
  ['induction', '/demos/induction/', ['pb-attention', 'pb-heatmap'], 'pb-head-grid'],
  ['ioi', `/demos/ioi/?hub=HUB`, ['pb-patching', 'pb-heatmap'], 'pb-head-grid'],
  ['explore', `/demos/explore/?hub=HUB`, ['pb-logit-lens', 'pb-heatmap'], 'pb-top-tokens'],
  ['features', '/demos/features/', ['pb-features', 'tr[data-pos] .cell'], 'pb-features'],
  // The training pages before the reader trains: their forms, status lines and empty plots.
  ['superposition', '/demos/superposition/', ['loss-curve', 'svg[part=plot]'], 'loss-curve'],
  ['sae', '/demos/sae/', ['loss-curve', 'svg[part=plot]'], 'loss-curve'],
];

describe('every demo page at 360 and 390 px, dark and light', () => {
  test.each(PAGES)(
    '%s: no horizontal overflow at 360 px dark or 390 px light; dark figures on a dark page',
    async (name, path, landmark, figure) => {
      const { context, problems } = await recordingContext(browser, server.origin, { viewport: { width: 360, height: 800 } });
      const page = await context.newPage();
      await page.emulateMedia({ colorScheme: 'dark' });
      await page.goto(`${server.origin}${path.replace('HUB', encodeURIComponent(server.origin))}`);
      await settled(page, landmark);
      for (const [width, scheme] of [
        [360, 'dark'],
        [390, 'light'],
      ] as const) {
        await page.setViewportSize({ width, height: 800 });
        await page.emulateMedia({ colorScheme: scheme });
        // A new size re-lays the heatmaps (a ResizeObserver); wait for the frame after it.
        await page.evaluate(() => new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(ok))));
        const shot = await page.screenshot({ path: join(SHOTS, `${name}-${width}-${scheme}.png`), fullPage: true });
        const overflow = await page.evaluate(() => ({
          scroll: document.documentElement.scrollWidth,
          // What sticks out, for the message when something does.
          wide: [...document.querySelectorAll('body *')]
            .filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
            .slice(0, 5)
            .map((e) => `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}.${[...e.classList].join('.')}`),
        }));
        // A page wider than the viewport makes a full-page screenshot wider than the viewport.
        expect(pngWidth(shot), `${name} at ${width} px: ${overflow.wide.join(', ')}`).toBe(width);
        expect(overflow.scroll, `${name} at ${width} px: ${overflow.wide.join(', ')}`).toBeLessThanOrEqual(width);
        const colours = await page.evaluate((f) => ({ page: getComputedStyle(document.body).backgroundColor, figure: getComputedStyle(document.querySelector(f)!).color }), figure);
        if (scheme === 'dark') {
          expect(lum(colours.page), `${name} page background`).toBeLessThan(0.2);
          expect(lum(colours.figure), `${name} figure text`).toBeGreaterThan(0.7);
        } else {
          expect(lum(colours.page)).toBeGreaterThan(0.8);
          expect(lum(colours.figure)).toBeLessThan(0.3);
        }
      }
      expect(problems.pageErrors).toEqual([]);
      expect(problems.external).toEqual([]);
      await context.close();
    },
    240_000,
  );
});

describe('the IOI page by keyboard and without WebGPU', () => {
  test('the 12 × 12 head grid by keyboard alone: the cursor names each head, Enter ablates it', async () => {
    const { context, problems } = await recordingContext(browser, server.origin);
    const page = await context.newPage();
    await page.goto(`${server.origin}/demos/ioi/?hub=${encodeURIComponent(server.origin)}`);
    await page.waitForFunction(() => document.querySelector('pb-head-grid')?.shadowRoot?.querySelector('.unablated')?.getAttribute('data-value'), undefined, WAIT);
    const unablated = await referenceLogitDiff(hubDir, IOI_IDS, 13, 5335, 1757);
    expect(Math.abs(Number(await page.evaluate(() => document.querySelector('pb-head-grid')!.shadowRoot!.querySelector('.unablated')!.getAttribute('data-value'))) - unablated)).toBeLessThan(1e-3);

    // Tab from the corrupted prompt's field to the grid, through whatever lies between: the keyboard only.
    await page.locator('pb-head-grid pb-heatmap [role=grid]').scrollIntoViewIfNeeded();
    await page.locator('pb-prompt[for=prompt] input[part=input]').focus();
    const gridFocused = () =>
      page.evaluate(() => {
        const hm = document.querySelector('pb-head-grid')!.shadowRoot!.querySelector('pb-heatmap')!;
        return hm.shadowRoot!.activeElement?.getAttribute('role') === 'grid';
      });
    let tabs = 0;
    while (!(await gridFocused()) && tabs < 40) {
      await page.keyboard.press('Tab');
      tabs++;
    }
    expect(await gridFocused()).toBe(true);
    const cursor = () =>
      page.evaluate(() => {
        const root = document.querySelector('pb-head-grid')!.shadowRoot!.querySelector('pb-heatmap')!.shadowRoot!;
        const g = root.querySelector('[role=grid]')!;
        const cell = root.getElementById(g.getAttribute('aria-activedescendant') ?? '');
        return { rows: g.getAttribute('aria-rowcount'), cols: g.getAttribute('aria-colcount'), id: cell?.id, name: cell?.textContent?.trim(), selected: cell?.getAttribute('aria-selected') };
      });
    expect(await cursor()).toMatchObject({ rows: '12', cols: '12', id: 'cell-0-0' });
    // To head 9.9 (a name mover): PageDown to the last layer, up twice, End to the last head, left twice.
    for (const key of ['PageDown', 'ArrowUp', 'ArrowUp', 'End', 'ArrowLeft', 'ArrowLeft']) await page.keyboard.press(key);
    const at = await cursor();
    expect(at).toMatchObject({ id: 'cell-9-9', selected: 'false' });
    expect(at.name).toMatch(/^Head 9\.9 \(NM\): not ablated/);
    // The accessibility tree has the grid and its one named cell.
    const tree = await page.locator('pb-head-grid pb-heatmap [role=grid]').ariaSnapshot();
    expect(tree).toMatch(/gridcell "Head 9\.9 \(NM\): not ablated/);
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => new URL(location.href).searchParams.get('ioi.ablate') === '9.9', undefined, WAIT);
    await page.waitForFunction(
      () => document.querySelector('pb-head-grid')!.shadowRoot!.querySelector('pb-heatmap')!.shadowRoot!.querySelector('#cell-9-9')?.getAttribute('aria-selected') === 'true',
      undefined,
      WAIT,
    );
    expect((await cursor()).name).toMatch(/^Head 9\.9 \(NM\): ablated/);
    await page.waitForFunction(() => /With 9\.9 ablated/.test(document.querySelector('pb-head-grid')!.shadowRoot!.querySelector('[part=metric]')?.textContent ?? ''), undefined, WAIT);
    expect(problems.pageErrors).toEqual([]);
    await context.close();
  }, 180_000);

  test('without WebGPU or a snapshot: a clear message, the prompt’s tokens and the heads’ layout, and no weights downloaded', async () => {
    for (const [path, heads] of [
      ['/demos/ioi/', true],
      ['/demos/explore/', false],
    ] as const) {
      const { context, problems } = await recordingContext(browser, server.origin, { noWebGPU: true });
      const page = await context.newPage();
      const before = server.requests.length;
      await page.goto(`${server.origin}${path}?hub=${encodeURIComponent(server.origin)}`);
      await page.waitForFunction(
        () => document.querySelector('pb-model')?.shadowRoot?.querySelector('[part=no-webgpu]') && document.querySelector('pb-prompt')?.shadowRoot?.querySelector('.chip'),
        undefined,
        WAIT,
      );
      const message = await page.evaluate(() => document.querySelector('pb-model')!.shadowRoot!.querySelector('[part=no-webgpu]')!.textContent!.replace(/\s+/g, ' '));
      expect(message).toMatch(/This browser has no WebGPU.*no snapshot of their results.*the prompt as the model's tokenizer splits it, and the layout of its 12 × 12 attention heads.*Chrome or Edge/);
      // The prompt as GPT-2's tokenizer splits it.
      const chips = await page.evaluate(() =>
        [...document.querySelector('pb-prompt')!.shadowRoot!.querySelectorAll('.chip')].map((c) => Number(/token id (\d+)/.exec(c.getAttribute('title') ?? '')?.[1])),
      );
      if (path.includes('ioi')) expect(chips).toEqual(IOI_IDS);
      else expect(chips).toEqual([464, 3139, 286, 4881, 318]);
      if (heads) {
        // The grid of heads with Wang et al.'s roles, read-only, and no values.
        await page.waitForFunction(() => document.querySelector('pb-head-grid')?.shadowRoot?.querySelector('pb-heatmap'), undefined, WAIT);
        const grid = await page.evaluate(() => {
          const hm = document.querySelector('pb-head-grid')!.shadowRoot!.querySelector('pb-heatmap')!;
          return {
            rows: hm.rows,
            cols: hm.cols,
            badge: hm.cellAt(9, 9).badge,
            interactive: hm.interactive,
            status: document.querySelector('pb-head-grid')!.shadowRoot!.querySelector('[part=status]')?.textContent,
          };
        });
        expect(grid).toMatchObject({ rows: 12, cols: 12, badge: 'NM', interactive: false });
        expect(grid.status).toMatch(/needs WebGPU to compute.*12 × 12 heads and their roles/);
      }
      // Every other figure says it needs WebGPU, none errs.
      const said = await page.evaluate(() =>
        [...document.querySelectorAll('pb-top-tokens, pb-patching, pb-logit-lens, pb-attention')].map((e) => e.shadowRoot?.querySelector('[part=status]')?.textContent ?? ''),
      );
      expect(said.length).toBeGreaterThan(0);
      for (const s of said) expect(s).toMatch(/needs WebGPU to compute/);
      // Nothing but the config and the tokenizer was read from the Hub.
      const hub = server.requests
        .slice(before)
        .filter((r) => r.includes(HUB_PATH))
        .map((r) => r.slice(r.lastIndexOf('/') + 1));
      expect(hub.sort()).toEqual(expect.arrayContaining(['config.json', 'tokenizer.json']));
      expect(hub).not.toContain('model.safetensors');
      await page.screenshot({ path: join(SHOTS, `${path.split('/')[2]}-no-webgpu.png`), fullPage: true });
      expect(problems.pageErrors).toEqual([]);
      expect(problems.external).toEqual([]);
      await context.close();
    }
  }, 180_000);

  test("an author's snapshot: patchbay snapshot of the shipped IOI spec against the Hub is what the page draws without WebGPU", async () => {
    // The author's command, with the Hub at the test's address.
    const out = join(site, 'demos/snapshots/ioi.json');
    const made = await runCli(['snapshot', join(ROOT, 'demos/snapshots/ioi.spec.json'), '--out', out], 240_000, { PATCHBAY_HUB: server.origin });
    expect(made.errorLines).toEqual([]);
    const snap = JSON.parse(readFileSync(out, 'utf8'));
    expect(snap.ids.clean).toEqual(IOI_IDS);
    expect(snap.patching.shape).toEqual([12, 14]);
    // The page, as the author publishes it: snapshot="../snapshots/ioi.json" on its model.
    const { context, problems } = await recordingContext(browser, server.origin, { noWebGPU: true });
    await context.addInitScript(() => {
      new MutationObserver((_, obs) => {
        const m = document.querySelector('pb-model');
        if (!m) return;
        m.setAttribute('snapshot', '../snapshots/ioi.json');
        obs.disconnect();
      }).observe(document, { childList: true, subtree: true });
    });
    const page = await context.newPage();
    await page.goto(`${server.origin}/demos/ioi/?hub=${encodeURIComponent(server.origin)}`);
    await page
      .waitForFunction(() => document.querySelector('pb-patching')?.shadowRoot?.querySelector('pb-heatmap'), undefined, WAIT)
      .catch(async (e: Error) => {
        throw new Error(
          `${e.message}; the page says: ${await page.evaluate(() => [...document.querySelectorAll('pb-model, pb-patching')].map((el) => `${el.localName}: ${el.shadowRoot?.textContent?.replace(/\s+/g, ' ').trim()}`).join(' | '))}`,
        );
      });
    const message = await page.evaluate(() => document.querySelector('pb-model')!.shadowRoot!.querySelector('[part=no-webgpu]')!.textContent!.replace(/\s+/g, ' '));
    expect(message).toMatch(/snapshot computed ahead of time/);
    const drawn = await page.evaluate(() => Array.from(document.querySelector('pb-patching')!.shadowRoot!.querySelector('pb-heatmap')!.values));
    expect(drawn).toEqual(snap.patching.values);
    // The snapshot's unablated logit difference is the CPU reference's.
    const unablated = await referenceLogitDiff(hubDir, IOI_IDS, 13, 5335, 1757);
    expect(Math.abs(snap.metric.unablated - unablated)).toBeLessThan(1e-3);
    await page.waitForFunction(() => document.querySelector('pb-head-grid')?.shadowRoot?.querySelector('.unablated')?.getAttribute('data-value'), undefined, WAIT);
    expect(await page.evaluate(() => Number(document.querySelector('pb-head-grid')!.shadowRoot!.querySelector('.unablated')!.getAttribute('data-value')))).toBe(snap.metric.unablated);
    expect(problems.pageErrors).toEqual([]);
    expect(unexpectedErrors(problems, server)).toEqual([]);
    await context.close();
  }, 300_000);
});

describe('loading over a slow link', () => {
  test('with a Content-Length the bar is determinate and the time left is about right', async () => {
    // The article's weights (1.9 MB) at 96 KiB every 250 ms: about 5 s, at a steady rate.
    const slow = await startStaticServer({ '/': site }, { throttle: { match: /model\.safetensors$/, bytes: 96 * 1024, everyMs: 250 } });
    const { context, problems } = await recordingContext(browser, slow.origin);
    await context.addInitScript(() => {
      const seen: { at: number; value: number; text: string }[] = [];
      (window as unknown as { progressSeen: typeof seen }).progressSeen = seen;
      // Every render of the model's loading line, with when it was drawn.
      void customElements.whenDefined('pb-model').then(() => {
        const el = document.querySelector('pb-model') as HTMLElement & { session: EventTarget & { status: string }; updateComplete: Promise<unknown> };
        const look = () =>
          void el.updateComplete.then(() => {
            const root = el.shadowRoot!;
            const bar = root.querySelector('progress');
            const text = root.querySelector('[part=status]')?.textContent?.replace(/\s+/g, ' ') ?? '';
            seen.push({ at: performance.now(), value: bar ? bar.position : NaN, text });
          });
        el.session.addEventListener('change', look);
        // The once-a-second redraw (no session change) too.
        new MutationObserver(look).observe(el.shadowRoot ?? el, { subtree: true, characterData: true, childList: true });
      });
    });
    const page = await context.newPage();
    await page.goto(`${slow.origin}/demos/article/`);
    await page.waitForFunction(() => document.querySelector('pb-head-grid')?.shadowRoot?.querySelector('.unablated')?.getAttribute('data-value'), undefined, WAIT);
    const seen = await page.evaluate(() => (window as unknown as { progressSeen: { at: number; value: number; text: string }[] }).progressSeen);
    const loading = seen.filter((s) => /^Loading/.test(s.text.trim()));
    expect(loading.length).toBeGreaterThan(5);
    // Until the first response the size is unknown; once the weights' length is in, the bar is
    // determinate all along: its position is the text's percentage, and never goes back.
    const first = loading.findIndex((s) => /of 1\.9 MB/.test(s.text));
    expect(first).toBeGreaterThanOrEqual(0);
    expect(loading.slice(first).filter((s) => /size unknown/.test(s.text))).toEqual([]);
    const weights = loading.filter((s) => /of 1\.9 MB/.test(s.text));
    expect(weights.length).toBeGreaterThan(5);
    let last = -1;
    for (const s of weights) {
      const pct = Number(/\((\d+)%\)/.exec(s.text)![1]);
      expect(s.value, s.text).toBeGreaterThanOrEqual(0);
      expect(Math.floor(100 * s.value + 1e-9), s.text).toBe(pct);
      expect(pct).toBeGreaterThanOrEqual(last);
      last = pct;
    }
    // The time left, against when the last byte actually arrived (the last render below 100%, or the first at it).
    const done = weights.find((s) => /\(100%\)/.test(s.text))?.at ?? weights[weights.length - 1].at;
    const etas = weights.flatMap((s) => {
      const m = /about (?:(\d+) min )?(\d+) s left/.exec(s.text);
      return m ? [{ said: 60 * Number(m[1] ?? 0) + Number(m[2]), actual: (done - s.at) / 1000 }] : [];
    });
    expect(etas.length, JSON.stringify(loading.map((s) => s.text))).toBeGreaterThan(1);
    for (const e of etas) expect(Math.abs(e.said - e.actual), JSON.stringify(etas)).toBeLessThan(Math.max(2, 0.5 * e.actual));
    expect(problems.pageErrors).toEqual([]);
    await context.close();
    await slow.close();
  }, 180_000);
});
