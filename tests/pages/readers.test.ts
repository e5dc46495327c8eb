/**
 * Figures as readers and authors meet them (issue 17), on the built site served by a plain static
 * server (and by `vite preview` for its gzipped downloads), in headless Chromium:
 *
 *  1. two `<pb-model>`s on one page keep their own URL state across reloads; a link cannot change
 *     the model, or a part the author did not list
 *  2. without WebGPU, figures draw the page's snapshot beside a message saying what is missing
 *  3. a load error is an error whatever the page's CSS does to `::part(status)`, with a working
 *     "Try again"; a bad head in a link is dropped with a notice; results of an old state are dimmed
 *  4. progress is indeterminate when the server sends no size (vite preview gzips .safetensors)
 *  5. prompt-relative positions keep the induction page meaning something after an edit, or it says
 *     the metric no longer applies; captions follow the reader's site; identical prompts explained
 *  6. export: PNG, SVG, CSV, JSON, the spec (run by the CLI to the same grid, loaded back into the
 *     figure), Python, link and embed code
 *  7. legends; a 128 × 128 heatmap is a canvas, not 16,384 elements (every page at 360 and 390
 *     px, dark and light: every-page.test.ts)
 */
import { readFileSync, mkdirSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { preview, type PreviewServer } from 'vite';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseSpec } from '../../src/experiments/spec.ts';
import { ROOT, launchChromium } from '../helpers/browser.ts';
import { buildSiteInto, deepCount, recordingContext, startStaticServer, type StaticServer } from '../helpers/pages.ts';
import { fixtureCases } from '../helpers/fixtures.ts';
import { runCli } from '../helpers/run-cli.ts';

const WAIT = { timeout: 90_000, polling: 100 };
const SHOTS = join(ROOT, 'test-results', 'pages');
const cases = fixtureCases('induction-2l');
const snapshot = JSON.parse(readFileSync(join(ROOT, 'demos/snapshots/article.json'), 'utf8'));

let site: string;
let server: StaticServer;
let browser: Browser;

beforeAll(async () => {
  site = await buildSiteInto();
  server = await startStaticServer({ '/': site, '/tests/pages/': join(ROOT, 'tests/pages') });
  browser = await launchChromium();
  mkdirSync(SHOTS, { recursive: true });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

/** The head grid's metric line values of the model `id`. */
const metric = (page: Page, id: string, which: 'unablated' | 'ablated') =>
  page.evaluate(([i, w]) => Number(document.querySelector(`#${i} pb-head-grid`)!.shadowRoot!.querySelector(`.${w}`)?.getAttribute('data-value') || NaN), [id, which] as const);
const ablated = (page: Page, id: string) => page.evaluate((i) => (document.getElementById(i) as HTMLElement & { state: { state: { ablate: string[] } } }).state.state.ablate, id);
const clickHead = async (page: Page, scope: string, l: number, h: number) => {
  const { x, y } = await page.evaluate(
    ([s, r, c]) => {
      const hm = document.querySelector(`${s} pb-head-grid`)!.shadowRoot!.querySelector('pb-heatmap')!;
      hm.shadowRoot!.querySelector('canvas')!.scrollIntoView({ block: 'center' });
      return hm.cellCenter(r as number, c as number);
    },
    [scope, l, h] as const,
  );
  await page.mouse.click(x, y);
};

describe('URL state, per model', () => {
  test('two models on one page stay independent across reloads, and a link changes only what the author allows', async () => {
    const { context, problems } = await recordingContext(browser, server.origin);
    const page = await context.newPage();
    // A link that tries to swap model A's model and B's metric: neither is allowed.
    await page.goto(`${server.origin}/tests/pages/two-models.html?a.model=gpt2&b.metric=loss:0:3`);
    await page.waitForFunction(() => ['a', 'b'].every((i) => document.querySelector(`#${i} pb-head-grid`)?.shadowRoot?.querySelector('.unablated')?.getAttribute('data-value')), undefined, WAIT);
    expect(await page.evaluate(() => (document.getElementById('a') as HTMLElement & { src: string }).src)).toBe('induction-2l');
    expect(await page.evaluate(() => (document.getElementById('b') as HTMLElement & { state: { state: { metric: string } } }).state.state.metric)).toBe('logit-diff:-1:247:72');
    expect(server.requests.some((r) => r.includes('/openai-community/'))).toBe(false);

    await clickHead(page, '#b', 0, 2);
    await page.waitForFunction(() => new URL(location.href).searchParams.get('b.ablate') === '0.2', undefined, WAIT);
    expect(new URL(page.url()).searchParams.get('a.ablate')).toBeNull();
    await page.reload();
    await page.waitForFunction(() => ['a', 'b'].every((i) => document.querySelector(`#${i} pb-head-grid`)?.shadowRoot?.querySelector('.unablated')?.getAttribute('data-value')), undefined, WAIT);
    expect(await ablated(page, 'a')).toEqual([]);
    expect(await ablated(page, 'b')).toEqual(['0.2']);
    // The hatched mark has a legend entry where a head is ablated, and none where nothing is.
    const legends = await page.evaluate(() =>
      ['a', 'b'].map((i) => document.querySelector(`#${i} pb-head-grid`)!.shadowRoot!.querySelector('pb-heatmap')!.shadowRoot!.querySelector('[part=legend]')?.textContent?.replace(/\s+/g, ' ') ?? ''),
    );
    expect(legends[0]).not.toMatch(/ablated/);
    expect(legends[1]).toMatch(/ablated in the run above/);
    const fixture02 = cases.head_zero_ablation_on_clean.find((h) => h.layer === 0 && h.head === 2)!.logit_diff;
    await page.waitForFunction(
      (v) => Math.abs(Number(document.querySelector('#b pb-head-grid')!.shadowRoot!.querySelector('.ablated')?.getAttribute('data-value') || NaN) - v) < 1e-3,
      fixture02,
      WAIT,
    );
    expect(Math.abs((await metric(page, 'a', 'ablated')) - cases.clean_logit_diff)).toBeLessThan(1e-3);
    expect(problems.pageErrors).toEqual([]);
    await context.close();
  }, 180_000);

  test('a bad head in a link is dropped with a notice, and the rest of the link still works', async () => {
    const { context, problems } = await recordingContext(browser, server.origin);
    const page = await context.newPage();
    await page.goto(`${server.origin}/tests/pages/two-models.html?b.ablate=0.2,99.99`);
    await page.waitForFunction(() => document.querySelector('#b')?.shadowRoot?.querySelector('[part=notice]'), undefined, WAIT);
    const notice = await page.evaluate(() => document.querySelector('#b')!.shadowRoot!.querySelector('[part=notice]')!.textContent!);
    expect(notice).toMatch(/Ignored head 99\.99 from the link: this model has layers 0–1 and heads 0–3/);
    expect(await ablated(page, 'b')).toEqual(['0.2']);
    const fixture02 = cases.head_zero_ablation_on_clean.find((h) => h.layer === 0 && h.head === 2)!.logit_diff;
    await page.waitForFunction(
      (v) => Math.abs(Number(document.querySelector('#b pb-head-grid')!.shadowRoot!.querySelector('.ablated')?.getAttribute('data-value') || NaN) - v) < 1e-3,
      fixture02,
      WAIT,
    );
    expect(await page.evaluate(() => document.querySelector('#b pb-head-grid')!.shadowRoot!.querySelector('[part=error]'))).toBeNull();
    expect(problems.pageErrors).toEqual([]);

    // A 128 × 128 heatmap is one canvas, not 16,384 cells.
    await page.evaluate(() => {
      const h = document.getElementById('big') as HTMLElement & { rows: number; cols: number; values: Float32Array };
      h.rows = 128;
      h.cols = 128;
      h.values = Float32Array.from({ length: 128 * 128 }, (_, i) => (i % 7) / 7);
    });
    await page.waitForFunction(() => document.getElementById('big')!.shadowRoot!.querySelectorAll('.rlabel').length === 128, undefined, WAIT);
    const counts = await page.evaluate(() => ({
      canvases: document.getElementById('big')!.shadowRoot!.querySelectorAll('canvas').length,
      elements: document.getElementById('big')!.shadowRoot!.querySelectorAll('*').length,
    }));
    expect(counts.canvases).toBe(1);
    expect(counts.elements).toBeLessThan(300);
    await context.close();
  }, 180_000);
});

describe('the article, as readers get it', () => {
  test('without WebGPU: snapshots of the figures, beside a message saying what is missing', async () => {
    const { context, problems } = await recordingContext(browser, server.origin, { noWebGPU: true });
    const page = await context.newPage();
    await page.goto(`${server.origin}/demos/article/`);
    await page.waitForFunction(() => document.querySelector('pb-patching')?.shadowRoot?.querySelector('pb-heatmap'), undefined, WAIT);
    const message = await page.evaluate(() => document.querySelector('pb-model')!.shadowRoot!.querySelector('[part=no-webgpu]')?.textContent?.replace(/\s+/g, ' ') ?? '');
    expect(message).toMatch(/This browser has no WebGPU.*snapshot computed ahead of time.*Chrome or Edge/);
    // The patching grid is the snapshot's, and the snapshot is the fixture's experiment (normalized).
    const drawn = await page.evaluate(() => Array.from(document.querySelector('pb-patching')!.shadowRoot!.querySelector('pb-heatmap')!.values));
    expect(drawn).toEqual(snapshot.patching.values);
    const { clean_logit_diff: c, corrupt_logit_diff: k } = cases;
    const want = cases.resid_pre_patch_corrupt_from_clean.flat().map((v) => (v - k) / (c - k));
    expect(Math.max(...drawn.map((v: number, i: number) => Math.abs(v - want[i])))).toBeLessThan(1e-3);
    // The head grid and the predictions draw too, read-only.
    await page.waitForFunction(() => document.querySelector('pb-head-grid')?.shadowRoot?.querySelector('.unablated')?.getAttribute('data-value'), undefined, WAIT);
    const shown = await page.evaluate(() => Number(document.querySelector('pb-head-grid')!.shadowRoot!.querySelector('.unablated')!.getAttribute('data-value')));
    expect(Math.abs(shown - c)).toBeLessThan(1e-3);
    expect(await page.evaluate(() => document.querySelector('pb-top-tokens')!.shadowRoot!.querySelectorAll('li').length)).toBe(5);
    expect(await page.evaluate(() => (document.querySelector('pb-head-grid')!.shadowRoot!.querySelector('button.compute') as HTMLButtonElement).disabled)).toBe(true);
    await page.screenshot({ path: join(SHOTS, 'article-no-webgpu.png'), fullPage: true });
    expect(problems.pageErrors).toEqual([]);
    await context.close();
  }, 120_000);

  test('a failed download is an error despite the page’s ::part(status) style, and "Try again" loads it', async () => {
    const { context, problems } = await recordingContext(browser, server.origin);
    let failures = 1;
    await context.route('**/model.safetensors', (route) => (failures-- > 0 ? route.fulfill({ status: 503, body: 'busy' }) : route.continue()));
    const page = await context.newPage();
    await page.goto(`${server.origin}/demos/article/`);
    await page.waitForFunction(() => document.querySelector('pb-model')?.shadowRoot?.querySelector('[part=error]'), undefined, WAIT);
    const look = await page.evaluate(() => {
      const el = document.querySelector('pb-model')!.shadowRoot!.querySelector('[part=error]')!;
      const cs = getComputedStyle(el);
      return { role: el.getAttribute('role'), color: cs.color, border: cs.borderLeftColor, text: el.textContent!.replace(/\s+/g, ' ') };
    });
    expect(look.role).toBe('alert');
    expect(look.text).toMatch(/Download failed .*HTTP 503/);
    // The article styles ::part(status) in its muted grey; the error keeps the error colour.
    expect(look.color).toBe('rgb(176, 0, 32)');
    expect(look.border).toBe('rgb(176, 0, 32)');
    await page.locator('pb-model').locator('[part=retry]').click();
    await page.waitForFunction(() => document.querySelector('pb-head-grid')?.shadowRoot?.querySelector('.unablated')?.getAttribute('data-value'), undefined, WAIT);
    expect(problems.pageErrors).toEqual([]);
    await context.close();
  }, 120_000);

  test('captions follow the site, identical prompts are explained, an old result is dimmed; export and the spec round trip', async () => {
    const { context, problems } = await recordingContext(browser, server.origin);
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.origin });
    const page = await context.newPage();
    await page.goto(`${server.origin}/demos/article/`);
    const patching = page.locator('pb-patching');
    await page.waitForFunction(() => document.querySelector('pb-patching')?.shadowRoot?.querySelector('pb-heatmap'), undefined, WAIT);
    const caption = () => page.evaluate(() => document.querySelector('pb-patching')!.shadowRoot!.querySelector('[part=caption]')?.textContent ?? '');
    expect(await caption()).toMatch(/patching resid_pre/);

    // Export: data, pictures, the spec, Python, link and embed code.
    await patching.locator('summary').click();
    const save = async (action: string) => {
      const waiting = page.waitForEvent('download', { timeout: 20_000 }).catch(async (e) => {
        const said = await page.evaluate(() => document.querySelector('pb-patching')!.shadowRoot!.querySelector('.export [role=status]')?.textContent ?? '(nothing)');
        throw new Error(`no ${action} download; the menu says: ${said}; ${(e as Error).message}`);
      });
      const [download] = await Promise.all([waiting, patching.locator(`[data-export=${action}]`).click()]);
      const path = join(mkdtempSync(join(tmpdir(), 'pb-dl-')), download.suggestedFilename());
      await download.saveAs(path);
      return { name: download.suggestedFilename(), text: readFileSync(path, 'latin1') };
    };
    const csv = await save('csv');
    expect(csv.name).toBe('patching.csv');
    expect(csv.text.split('\n')[0]).toBe('layer,pos,normalized_metric');
    expect(csv.text.trim().split('\n')).toHaveLength(1 + 2 * 17);
    expect((await save('png')).text.slice(1, 4)).toBe('PNG');
    const svg = await save('svg');
    expect(svg.text).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svg.text).toContain('resid_pre');
    expect(JSON.parse((await save('json')).text).shape).toEqual([2, 17]);
    expect((await save('transformers')).text).toContain('class HookedModel');
    const specText = (await save('spec')).text;
    const spec = parseSpec(JSON.parse(specText));
    expect(spec.experiment).toEqual({ kind: 'patch', site: 'resid_pre', metric: 'logit-diff:-1:247:72', normalize: true });
    // The CLI runs the figure's spec to the figure's numbers.
    const dir = mkdtempSync(join(tmpdir(), 'pb-spec-'));
    writeFileSync(join(dir, 'spec.json'), specText);
    const run = await runCli(['run', join(dir, 'spec.json'), '--json'], 120_000);
    expect(run.errorLines).toEqual([]);
    const drawn = await page.evaluate(() => Array.from(document.querySelector('pb-patching')!.shadowRoot!.querySelector('pb-heatmap')!.values));
    const ran = (JSON.parse(run.stdout).values as number[][]).flat();
    expect(Math.max(...ran.map((v, i) => Math.abs(v - drawn[i])))).toBeLessThan(1e-5);
    await patching.locator('[data-export=embed]').click();
    const embed = await page.evaluate(() => navigator.clipboard.readText());
    expect(embed).toMatch(/<script type="module" src="http:\/\/127\.0\.0\.1:\d+\/patchbay\.js"><\/script>/);
    expect(embed).toMatch(/<pb-model src="http:\/\/127\.0\.0\.1:\d+\/demos\/models\/induction-2l\/" tokenizer="none" prompt="0,200/);
    expect(embed).toContain('<pb-patching normalize></pb-patching>');

    // Loading a spec back: the site changes, in the figure, its caption and the URL.
    writeFileSync(join(dir, 'z.json'), JSON.stringify({ ...spec, experiment: { ...spec.experiment, site: 'z' } }));
    await patching.locator('[data-export=load]').setInputFiles(join(dir, 'z.json'));
    await page.waitForFunction(() => document.querySelector('pb-patching')!.shadowRoot!.querySelector('pb-heatmap')?.getAttribute('data-site') === 'z', undefined, WAIT);
    expect(new URL(page.url()).searchParams.get('copy.site')).toBe('z');
    expect(await caption()).toMatch(/patching z \(each head’s output/);
    expect(await caption()).not.toMatch(/resid_pre/);
    await patching.locator('summary').click();

    // A corrupted prompt of another length: an error, and the old grid dimmed as out of date.
    const corrupt = page.locator('pb-prompt[for=corrupt] input[part=input]');
    const original = await corrupt.inputValue();
    await corrupt.fill('0,1,2');
    await corrupt.press('Enter');
    await page.waitForFunction(() => document.querySelector('pb-patching')!.shadowRoot!.querySelector('[part=error]'), undefined, WAIT);
    expect(await page.evaluate(() => document.querySelector('pb-patching')!.shadowRoot!.querySelector('.result')!.getAttribute('data-stale'))).toBe('true');
    // The same tokens as the clean prompt: explained, not an all-grey map.
    const clean = await page.locator('pb-prompt[for=prompt] input[part=input]').inputValue();
    await corrupt.fill(clean);
    await corrupt.press('Enter');
    await page.waitForFunction(() => /same tokens/.test(document.querySelector('pb-patching')!.shadowRoot!.querySelector('[part=notice]')?.textContent ?? ''), undefined, WAIT);
    await corrupt.fill(original);
    await corrupt.press('Enter');
    expect(problems.pageErrors).toEqual([]);
    await context.close();
  }, 240_000);
});

describe('the induction page after an edit', () => {
  test('positions count from the end; a prompt too short says the metric no longer applies', async () => {
    const { context, problems } = await recordingContext(browser, server.origin);
    const page = await context.newPage();
    await page.goto(`${server.origin}/demos/induction/`);
    await page.waitForFunction(() => document.querySelector('pb-head-grid')?.shadowRoot?.querySelector('.unablated')?.getAttribute('data-value'), undefined, WAIT);
    // A loss is better lower: the head grid's blue is the "lower" direction, as every grid's blue is "better".
    expect(await page.evaluate(() => document.querySelector('pb-head-grid')!.shadowRoot!.querySelector('pb-heatmap')!.getAttribute('better'))).toBe('lower');
    // The first top-tokens figure is after the first repeated token (position 21 of 41).
    await page.waitForFunction(() => /After position 21/.test(document.querySelector('pb-top-tokens')?.shadowRoot?.querySelector('.context')?.textContent ?? ''), undefined, WAIT);
    const input = page.locator('pb-prompt[for=prompt] input[part=input]');
    await input.fill('0,1,2,3,4,5,6,7,8,9');
    await input.press('Enter');
    await page.waitForFunction(() => document.querySelector('pb-head-grid')?.shadowRoot?.querySelector('[part=notice]'), undefined, WAIT);
    await page.waitForFunction(() => [...document.querySelectorAll('pb-top-tokens')].every((e) => e.shadowRoot!.querySelector('[part=notice]')), undefined, WAIT);
    const notice = (sel: string) => page.evaluate((s) => [...document.querySelectorAll(s)].map((e) => e.shadowRoot!.querySelector('[part=notice]')?.textContent ?? ''), sel);
    expect((await notice('pb-head-grid'))[0]).toMatch(/metric no longer applies .*loss:-21:-1.*10-token prompt/);
    const top = await notice('pb-top-tokens');
    expect(top).toHaveLength(3);
    for (const n of top) expect(n).toMatch(/position -(20|19|18) is outside this 10-token prompt/);
    expect(await deepCount(page, '[part=error]:not([hidden])')).toBe(0);
    expect(problems.pageErrors).toEqual([]);
    await context.close();
  }, 120_000);
});

describe('layouts', () => {
  test('a progress bar with no total is indeterminate (vite preview gzips the weights)', async () => {
    const server2: PreviewServer = await preview({
      root: ROOT,
      configFile: join(ROOT, 'vite.config.ts'),
      logLevel: 'warn',
      build: { outDir: site },
      preview: { port: 0, host: '127.0.0.1', strictPort: false },
    });
    const origin = server2.resolvedUrls!.local[0].replace(/\/$/, '');
    const { context } = await recordingContext(browser, origin);
    await context.addInitScript(() => {
      const seen: { determinate: boolean; text: string }[] = [];
      (window as unknown as { progressSeen: typeof seen }).progressSeen = seen;
      // Every render of the model's loading line: on each session change, once the element has drawn it.
      void customElements.whenDefined('pb-model').then(() => {
        const el = document.querySelector('pb-model') as HTMLElement & { session: EventTarget; updateComplete: Promise<unknown> };
        el.session.addEventListener(
          'change',
          () =>
            void el.updateComplete.then(() => {
              const root = el.shadowRoot!;
              const bar = root.querySelector('progress');
              if (bar) seen.push({ determinate: bar.position >= 0, text: root.querySelector('[part=status]')?.textContent ?? '' });
            }),
        );
      });
    });
    const page = await context.newPage();
    const weights = page.waitForResponse((r) => r.url().endsWith('model.safetensors'));
    await page.goto(`${origin}/demos/article/`);
    const res = await weights;
    const headers = await res.allHeaders();
    expect(headers['content-encoding']).toBe('gzip');
    expect(headers['content-length']).toBeUndefined();
    await page.waitForFunction(() => document.querySelector('pb-head-grid')?.shadowRoot?.querySelector('.unablated')?.getAttribute('data-value'), undefined, WAIT);
    const seen = await page.evaluate(() => (window as unknown as { progressSeen: { determinate: boolean; text: string }[] }).progressSeen);
    const unknown = seen.filter((s) => /size unknown/.test(s.text));
    expect(unknown.length).toBeGreaterThan(0);
    for (const s of unknown) expect(s.determinate).toBe(false);
    expect(seen.some((s) => /\(1\d\d%\)|\(100%\)/.test(s.text) && /size unknown/.test(s.text))).toBe(false);
    await context.close();
    await server2.close();
  }, 120_000);
});
