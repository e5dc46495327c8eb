/**
 * The demo pages as a reader gets them: the site is built (as `npm run build` builds it, into a
 * temporary folder), served by a plain static server, and opened in headless Chromium (WebGPU on
 * SwiftShader). Nothing leaves the test's server: the IOI demo's "Hub" is a folder the test
 * writes (a random GPT-2 with GPT-2's full vocabulary, plus the committed GPT-2 tokenizer), and
 * every request to another origin is aborted and fails the test.
 *
 * Checked against the engine's CPU reference in Node and the induction-2l fixture (cases.json).
 */
import { mkdirSync, mkdtempSync, openAsBlob, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { evalSequences } from '../../demos/induction/eval-set.ts';
import { pearson } from '../../src/experiments/attribution.ts';
import { lossMetric, metricCpu } from '../../src/model/metric.ts';
import { loadCheckpoint } from '../../src/model/checkpoint.ts';
import { forwardCpu } from '../../src/model/forward.cpu.ts';
import { hostWeightsFor } from '../../src/model/host-weights-for.ts';
import { blobModelSource } from '../../src/model/source.ts';
import { ROOT, launchChromium } from '../helpers/browser.ts';
import { HUB_SCRIPT_MARKER, deepCount, holdBackScripts, recordingContext, startStaticServer, unexpectedErrors, type PageProblems, type StaticServer, buildSiteInto } from '../helpers/pages.ts';
import { referenceLogitDiff, writeRandomGpt2Hub } from '../helpers/random-gpt2-hub.ts';

const HUB_PATH = '/openai-community/gpt2/resolve/main/';
// The fixture README's tokenization of the IOI prompt; " Mary" 5335, " John" 1757.
const IOI_IDS = [2215, 5335, 290, 1757, 1816, 284, 262, 3650, 11, 1757, 2921, 257, 4144, 284];
const WAIT = { timeout: 90_000, polling: 100 };
const SHOTS = join(ROOT, 'test-results', 'pages');

const cases = JSON.parse(readFileSync(join(ROOT, 'tests/fixtures/induction-2l/cases.json'), 'utf8'));
const evalRef = cases.induction_eval as {
  repeated_half_loss: number;
  head_ablation_repeated_half_loss: Record<string, number>;
  prev_token_score: Record<string, number>;
  induction_score: Record<string, number>;
};

let server: StaticServer;
let browser: Browser;
let hubDir: string;
let ioiLogitDiff: number;

beforeAll(async () => {
  const t0 = performance.now();
  const site = await buildSiteInto();
  hubDir = mkdtempSync(join(tmpdir(), 'patchbay-hub-'));
  writeRandomGpt2Hub(hubDir, { d_model: 24, n_layers: 2, n_heads: 12, n_ctx: 64 });
  ioiLogitDiff = await referenceLogitDiff(hubDir, IOI_IDS, 13, 5335, 1757);
  // A model folder Patchbay cannot run.
  const broken = mkdtempSync(join(tmpdir(), 'patchbay-broken-'));
  mkdirSync(join(broken, 'bert'));
  writeFileSync(join(broken, 'bert', 'config.json'), JSON.stringify({ architectures: ['BertForMaskedLM'], model_type: 'bert', hidden_size: 32 }));
  server = await startStaticServer({ '/': site, [HUB_PATH]: hubDir, '/broken/': broken, '/tests/pages/': join(ROOT, 'tests/pages') });
  browser = await launchChromium();
  mkdirSync(SHOTS, { recursive: true });
  console.log(`site built, hub written, Chromium up in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

/** The problems a page must not have: errors, CSP violations, dialogs, requests elsewhere. */
function expectClean(problems: PageProblems): void {
  expect(problems.pageErrors).toEqual([]);
  expect(problems.cspViolations).toEqual([]);
  expect(problems.dialogs).toEqual([]);
  expect(problems.external).toEqual([]);
  expect(unexpectedErrors(problems, server)).toEqual([]);
}

/** Token ids shown by a `<pb-prompt>`, read from its chips ("position i, token id N"). */
const chipIds = (page: Page, which: 'prompt' | 'corrupt') =>
  page.evaluate((w) => {
    const root = document.querySelector(`pb-prompt[for=${w}]`)!.shadowRoot!;
    return [...root.querySelectorAll('.chip')].map((c) => Number(/token id (\d+)/.exec(c.getAttribute('title') ?? '')?.[1]));
  }, which);

/** The head grid's live metric: `which` is "unablated" or "ablated". */
const gridMetric = (page: Page, which: 'unablated' | 'ablated') =>
  page.evaluate((w) => Number(document.querySelector('pb-head-grid')!.shadowRoot!.querySelector(`.${w}`)?.getAttribute('data-value') || NaN), which);

/** Loss on the repeat (positions 20..39) of one sequence, on the CPU, with `zero` heads' hook_z zeroed. */
async function cpuRepeatLoss(seq: number[], zero: [number, number][] = []): Promise<number> {
  const dir = join(ROOT, 'demos/models/induction-2l');
  const source = blobModelSource({ 'config.json': await openAsBlob(join(dir, 'config.json')), 'model.safetensors': await openAsBlob(join(dir, 'model.safetensors')) });
  const ck = await loadCheckpoint(source);
  const cfg = ck.config;
  const logits = forwardCpu(cfg, await hostWeightsFor(ck.tensors, cfg, ck.hfConfig), [seq], (name, act) => {
    for (const [l, h] of zero) {
      if (name !== `blocks.${l}.attn.hook_z`) continue;
      for (let t = 0; t < seq.length; t++) act.fill(0, (t * cfg.n_heads + h) * cfg.d_head, (t * cfg.n_heads + h + 1) * cfg.d_head);
    }
  }).get('logits')!;
  return metricCpu(lossMetric(seq, 20, 40), logits, 1, cfg.d_vocab)[0];
}

describe('induction demo (induction-2l, offline)', () => {
  test('loss on the repeat, head 0.2 ablated through the grid, and the measured score table', async () => {
    const seq = evalSequences()[0];
    const [cpuClean, cpuAblated] = await Promise.all([cpuRepeatLoss(seq), cpuRepeatLoss(seq, [[0, 2]])]);
    const { context, problems } = await recordingContext(browser, server.origin);
    const page = await context.newPage();
    const t0 = performance.now();
    await page.goto(`${server.origin}/demos/induction/`);
    await page.waitForFunction(() => document.querySelector('pb-attention')?.shadowRoot?.querySelector('pb-heatmap'), undefined, WAIT);
    const firstFigure = performance.now() - t0;

    // The page's sequence is the fixture's first evaluation sequence, and the grid measures its loss on the repeat.
    expect(await chipIds(page, 'prompt')).toEqual(seq);
    await page.waitForFunction(() => document.querySelector('pb-head-grid')?.shadowRoot?.querySelector('.unablated')?.getAttribute('data-value'), undefined, WAIT);
    expect(Math.abs((await gridMetric(page, 'unablated')) - cpuClean)).toBeLessThan(1e-3);

    // Clicking head 0.2 in the grid zero-ablates it: the copying is gone (the fixture: 6.21 over 64 sequences).
    // The grid's cells are a canvas: click where it draws head 0.2.
    const at = await page.evaluate(() => {
      const h = document.querySelector('pb-head-grid')!.shadowRoot!.querySelector('pb-heatmap')!;
      h.shadowRoot!.querySelector('canvas')!.scrollIntoView({ block: 'center' });
      return h.cellCenter(0, 2);
    });
    await page.mouse.click(at.x, at.y);
    await page.waitForFunction((v) => Math.abs(Number(document.querySelector('pb-head-grid')!.shadowRoot!.querySelector('.ablated')?.getAttribute('data-value') || NaN) - v) < 1e-3, cpuAblated, WAIT);
    expect(Math.abs((await gridMetric(page, 'ablated')) - evalRef.head_ablation_repeated_half_loss['0.2'])).toBeLessThan(1e-2);
    expect(new URL(page.url()).searchParams.get('induction.ablate')).toBe('0.2');

    // The page's own measurement on the fixture's 64 sequences reproduces induction_eval.
    await page.locator('#induction induction-scores').scrollIntoViewIfNeeded();
    await page.waitForSelector('#induction induction-scores [data-state=done]', { timeout: 90_000 });
    const loss = Number(await page.locator('#induction induction-scores [data-loss]').getAttribute('data-loss'));
    expect(Math.abs(loss - evalRef.repeated_half_loss)).toBeLessThan(1e-3);
    const rows = await page.evaluate(() =>
      [...document.querySelectorAll('#induction induction-scores tbody tr')].map((tr) => ({
        head: tr.getAttribute('data-head')!,
        cells: [...tr.querySelectorAll('td')].map((td) => td.textContent!.trim()),
      })),
    );
    expect(rows.map((r) => r.head)).toEqual(['0.0', '0.1', '0.2', '0.3', '1.0', '1.1', '1.2', '1.3']);
    for (const r of rows) {
      expect(Math.abs(Number(r.cells[0]) - evalRef.prev_token_score[r.head])).toBeLessThan(1e-3);
      expect(Math.abs(Number(r.cells[1]) - evalRef.induction_score[r.head])).toBeLessThan(1e-3);
    }
    await page.locator('#induction induction-scores tr[data-head="0.2"] button.measure').click();
    await page.waitForSelector('#induction induction-scores tr[data-head="0.2"][data-ablated-loss]', { timeout: 90_000 });
    const ablated = Number(await page.locator('#induction induction-scores tr[data-head="0.2"]').getAttribute('data-ablated-loss'));
    expect(Math.abs(ablated - evalRef.head_ablation_repeated_half_loss['0.2'])).toBeLessThan(1e-3);

    // Section 6: AtP beside exact patching of each head's output; the correlation and the verified
    // top cells are those of the float64 reference (atp.json: AtP and exact patching of hook_z).
    await page.locator('pb-attribution').scrollIntoViewIfNeeded();
    await page.waitForFunction(() => document.querySelector('pb-attribution')?.shadowRoot?.querySelector('[data-correlation]'), undefined, { timeout: 90_000, polling: 200 });
    const atp = JSON.parse(readFileSync(join(ROOT, 'tests/fixtures/induction-2l/atp.json'), 'utf8'));
    const est = (atp.sites.z.atp as number[][]).flat();
    const exact = (atp.sites.z.exact as number[][]).flat().map((x) => x - atp.corrupt_metric);
    const r = Number(await page.evaluate(() => document.querySelector('pb-attribution')!.shadowRoot!.querySelector('[data-correlation]')!.getAttribute('data-correlation')));
    expect(Math.abs(r - pearson(est, exact))).toBeLessThan(1e-3);
    const top = await page.evaluate(() => [...document.querySelector('pb-attribution')!.shadowRoot!.querySelectorAll('tr[data-index]')].map((tr) => Number(tr.getAttribute('data-index'))));
    expect(top).toEqual(
      est
        .map((v, i) => [Math.abs(v), i])
        .sort((a, b) => b[0] - a[0])
        .slice(0, 3)
        .map(([, i]) => i),
    );
    await page.locator('pb-attribution').screenshot({ path: join(SHOTS, 'induction-attribution.png') });

    await page.screenshot({ path: join(SHOTS, 'induction.png'), fullPage: true });
    console.log(`induction demo: first attention figure ${(firstFigure / 1000).toFixed(1)} s after navigation; done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    expectClean(problems);
    await context.close();
  }, 180_000);
});

describe('IOI demo (the Hub replaced by the test server)', () => {
  let page: Page;
  let problems: PageProblems;

  beforeAll(async () => {
    const rec = await recordingContext(browser, server.origin);
    problems = rec.problems;
    // The code that applies ?hub= arrives late: the model must still make its first request to
    // the test's Hub, never to huggingface.co (the components wait for it, not for the timing).
    await holdBackScripts(rec.context, server.origin, HUB_SCRIPT_MARKER, 1500);
    page = await rec.context.newPage();
    await page.goto(`${server.origin}/demos/ioi/?hub=${encodeURIComponent(server.origin)}`);
    await page.waitForFunction(() => document.querySelector('pb-head-grid')?.shadowRoot?.querySelector('.unablated')?.getAttribute('data-value'), undefined, WAIT);
  }, 120_000);

  afterAll(async () => {
    await page?.context().close();
  });

  test('tokenizes the prompt as GPT-2 does and shows the logit difference the engine computes', async () => {
    expect(await chipIds(page, 'prompt')).toEqual(IOI_IDS);
    const corrupt = await chipIds(page, 'corrupt');
    expect(corrupt).toHaveLength(IOI_IDS.length);
    expect(corrupt.filter((id, i) => id !== IOI_IDS[i])).toEqual([5335]); // only the second subject differs
    const shown = await gridMetric(page, 'unablated');
    expect(Number.isFinite(shown)).toBe(true);
    expect(Math.abs(shown - ioiLogitDiff)).toBeLessThan(1e-3 * Math.max(1, Math.abs(ioiLogitDiff)));
    // The weights and the tokenizer came from the test's "Hub", and nothing went anywhere else.
    expect(server.requests.some((r) => r.startsWith(`${HUB_PATH}model.safetensors`))).toBe(true);
    expect(server.requests.some((r) => r.startsWith(`${HUB_PATH}tokenizer.json`))).toBe(true);
    expect(problems.external).toEqual([]);
  });

  test('the head grid is layers × heads, with Wang et al.’s roles on the heads this model has', async () => {
    const cells = await page.evaluate(() =>
      (() => {
        const h = document.querySelector('pb-head-grid')!.shadowRoot!.querySelector('pb-heatmap')!;
        return Array.from({ length: h.rows * h.cols }, (_, i) => ({ head: `${Math.floor(i / h.cols)}.${i % h.cols}`, badge: h.cellAt(Math.floor(i / h.cols), i % h.cols).badge ?? null }));
      })(),
    );
    expect(cells).toHaveLength(2 * 12);
    // Of the roles, only the duplicate-token heads 0.1 and 0.10 exist in a 2-layer model.
    expect(cells.filter((c) => c.badge).map((c) => `${c.head} ${c.badge}`)).toEqual(['0.1 DT', '0.10 DT']);
  });

  test('a prompt with markup in it is shown as text, never run', async () => {
    const evil = '<img src=x onerror=alert(1)>';
    await page.locator('pb-prompt[for=prompt] input[part=input]').fill(evil);
    await page.locator('pb-prompt[for=prompt] input[part=input]').press('Enter');
    await page.waitForFunction(
      (s) => {
        const root = document.querySelector('pb-prompt[for=prompt]')!.shadowRoot!;
        return (
          [...root.querySelectorAll('.chip .text')]
            .map((c) => c.textContent)
            .join('')
            .replace(/·/g, ' ') === s
        );
      },
      evil,
      WAIT,
    );
    // Let the other figures redraw with the new tokens as labels.
    await page.waitForFunction(() => document.querySelector('pb-head-grid')?.getAttribute('aria-busy') === 'false', undefined, WAIT);
    await page.waitForTimeout(500);
    expect(await deepCount(page, 'img')).toBe(0);
    expect(problems.dialogs).toEqual([]);
    expect(new URL(page.url()).searchParams.get('ioi.prompt')).toBe(evil);
    await page.screenshot({ path: join(SHOTS, 'ioi.png'), fullPage: true });
    expectClean(problems);
  });
});

describe('<pb-model> loading', () => {
  const modelOnly = (src: string) => `${server.origin}/tests/pages/model-only.html?src=${encodeURIComponent(src)}`;
  // The model's line: its status, or its error (a part of its own), or the no-WebGPU message.
  const status = (page: Page) =>
    page.evaluate(() => document.querySelector('pb-model')?.shadowRoot?.querySelector('[part=status], [part=error] .msg, [part=no-webgpu]')?.textContent?.replace(/\s+/g, ' ').trim() ?? '');
  const modelStatus = (page: Page) => page.evaluate(() => (document.querySelector('pb-model') as HTMLElement & { session?: { status: string } })?.session?.status ?? '');
  // Loaded, failed, or (no WebGPU, no snapshot) showing what needs no weights.
  const settled = (page: Page) =>
    page.waitForFunction(
      () => ['ready', 'error', 'weightless'].includes((document.querySelector('pb-model') as HTMLElement & { session?: { status: string } })?.session?.status ?? ''),
      undefined,
      WAIT,
    );

  test('a second visit reads the weights from the Cache API, not the network', async () => {
    const { context, problems } = await recordingContext(browser, server.origin);
    const page = await context.newPage();
    const src = `${server.origin}${HUB_PATH}`;
    const weightRequests = () => server.requests.filter((r) => r.startsWith(`${HUB_PATH}model.safetensors`)).length;
    const before = weightRequests();
    await page.goto(modelOnly(src));
    await settled(page);
    expect(await status(page)).not.toMatch(/cache/);
    expect(weightRequests()).toBe(before + 1);
    await page.reload();
    await settled(page);
    expect(weightRequests()).toBe(before + 1);
    expect(await status(page)).toMatch(/weights from this browser's cache/);
    expectClean(problems);
    await context.close();
  });

  test('says what went wrong: a folder that is not there, a model it cannot run, a browser without WebGPU', async () => {
    const { context, problems } = await recordingContext(browser, server.origin);
    const page = await context.newPage();
    await page.goto(modelOnly('/no-such-model/'));
    await settled(page);
    // What happened (the folder has no config.json), not "Download failed": nothing failed to download.
    expect(await status(page)).toMatch(/Could not load "\/no-such-model\/": no config\.json in http:\/\/127\.0\.0\.1:\d+\/no-such-model$/);
    await page.goto(modelOnly('/broken/bert/'));
    await settled(page);
    expect(await status(page)).toMatch(/Unsupported model/);
    expect(problems.pageErrors).toEqual([]);
    await context.close();

    const noGpu = await recordingContext(browser, server.origin, { noWebGPU: true });
    const page2 = await noGpu.context.newPage();
    await page2.goto(modelOnly('induction-2l'));
    await settled(page2);
    expect(await page2.evaluate(() => 'gpu' in navigator && navigator.gpu !== undefined)).toBe(false);
    // No snapshot: the config is read (never the weights), and the message says why nothing runs.
    expect(await modelStatus(page2)).toBe('weightless');
    expect(await status(page2)).toMatch(/This browser has no WebGPU.*\(This browser cannot run the model: .*WebGPU/);
    expect(noGpu.problems.pageErrors).toEqual([]);
    await noGpu.context.close();
  });
});
