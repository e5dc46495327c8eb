/**
 * The figures in headless Chromium: tests/components/fixture.html mounts every element on the
 * toy model (tests/fixtures/induction-2l, no tokenizer: token ids), and this file checks what
 * they draw, read from their shadow DOM, against the engine's API (run in the page) and the
 * fixture's recorded experiments (cases.json). One browser, one page, loaded in a shared state
 * (`?ablate=0.2&heads=0.3`); the tests run in order and build on each other's state.
 */
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { openBrowser, type TestBrowser } from '../helpers/browser.ts';
import { fixtureCases } from '../helpers/fixtures.ts';

const PAGE = '/tests/components/fixture.html';
const cases = fixtureCases('induction-2l');
const clean = cases.prompts[0];
const T = clean.length;
const fixtureHead = (name: string) => cases.head_zero_ablation_on_clean.find((h) => `${h.layer}.${h.head}` === name)!.logit_diff;
const WAIT = { timeout: 60_000, polling: 100 };

let b: TestBrowser;
let page: Page;
let errors: string[];
const dialogs: string[] = [];

const query = () => new URL(page.url()).searchParams;
const idle = () => page.waitForFunction(() => window.fixture.idle(), undefined, WAIT);
const heatmaps = (figure: string) => page.evaluate((f) => window.fixture.heatmaps(f), figure);
const metricLine = () =>
  page.evaluate(() => {
    const root = document.querySelector('#toy pb-head-grid')!.shadowRoot!;
    return {
      unablated: Number(root.querySelector('.unablated')?.getAttribute('data-value') || NaN),
      ablated: Number(root.querySelector('.ablated')?.getAttribute('data-value') || NaN),
    };
  });
/** Waits until the head grid's live metric is `value` (the figure recomputes after a toggle). */
const metricBecomes = (value: number) =>
  page.waitForFunction(
    (v) => {
      const el = document.querySelector('#toy pb-head-grid')!.shadowRoot!.querySelector('.ablated');
      return Math.abs(Number(el?.getAttribute('data-value') || NaN) - v) < 1e-3;
    },
    value,
    WAIT,
  );
/** Clicks head l.h in the head grid's canvas. */
const clickHead = async (l: number, h: number) => {
  const { x, y } = await page.evaluate(([r, c]) => window.fixture.cellCenter('pb-head-grid', r, c), [l, h]);
  await page.mouse.click(x, y);
};

beforeAll(async () => {
  const t0 = performance.now();
  b = await openBrowser({ entries: [`tests/components/fixture.html`] });
  ({ page, errors } = await b.newPage(`${PAGE}?toy.ablate=0.2&toy.heads=0.3`, { viewport: { width: 820, height: 1100 } }));
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  await page.waitForFunction(() => window.fixture?.idle() && window.fixture.heatmaps('pb-attention').length > 0, undefined, WAIT);
  console.log(`fixture page ready (model loaded, figures drawn) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}, 120_000);

afterAll(async () => {
  await b?.close();
});

describe('figures on induction-2l', () => {
  test('a page loaded with ?ablate=0.2&heads=0.3 starts in that state', async () => {
    const [grid] = await heatmaps('pb-head-grid');
    expect(grid.selected.map((s, i) => (s ? `${Math.floor(i / 4)}.${i % 4}` : '')).filter(Boolean)).toEqual(['0.2']);
    const attention = await heatmaps('pb-attention');
    expect(attention.map((h) => h.head)).toEqual(['0.3']);
    await metricBecomes(fixtureHead('0.2'));
    const m = await metricLine();
    expect(Math.abs(m.unablated - cases.clean_logit_diff)).toBeLessThan(1e-3);
    expect(Math.abs(m.ablated - fixtureHead('0.2'))).toBeLessThan(1e-3);
  });

  test("pb-attention draws the engine's hook_pattern, labelled with the token ids", async () => {
    const ref = await page.evaluate(() => window.fixture.patterns(['0.2']));
    const [h03] = await heatmaps('pb-attention');
    // Labels are positions and tokens (the toy model's tokens are ids).
    expect(h03.rowLabels).toEqual(clean.map((id, i) => `${i} ${id}`));
    expect(h03.colLabels).toEqual(clean.map((id, i) => `${i} ${id}`));
    expect(h03.values).toHaveLength(T * T);
    const want03 = ref[0].slice(3 * T * T, 4 * T * T);
    expect(Math.max(...h03.values.map((v, i) => Math.abs(v - want03[i])))).toBeLessThan(1e-6);

    // The picker adds head 1.3 (to the URL too); layer 1 reads the ablated head 0.2's output.
    await page.locator('#toy pb-attention button[aria-label="Show head 1.3"]').click();
    await page.waitForFunction(() => window.fixture.heatmaps('pb-attention').length === 2, undefined, WAIT);
    expect(query().get('toy.heads')).toBe('0.3,1.3');
    const [, h13] = await heatmaps('pb-attention');
    expect(h13.head).toBe('1.3');
    const want13 = ref[1].slice(3 * T * T, 4 * T * T);
    expect(Math.max(...h13.values.map((v, i) => Math.abs(v - want13[i])))).toBeLessThan(1e-6);

    // Hovering a token label highlights its row and column (and dims the rest).
    const label = page.locator('#toy pb-attention pb-heatmap[data-head="0.3"] .rlabel[data-r="11"]');
    await label.hover();
    const hl = await page.evaluate(() => {
      const root = document.querySelector('#toy pb-attention')!.shadowRoot!.querySelector('pb-heatmap')!.shadowRoot!;
      return {
        labels: [...root.querySelectorAll('.label.hl')].map((e) => `${e.getAttribute('data-r')},${e.getAttribute('data-c')}`),
        readout: root.querySelector('.readout')!.textContent!.trim(),
      };
    });
    expect(hl.labels.sort()).toEqual(['-1,11', '11,-1']);
    expect(hl.readout).toMatch(/^Token position 11 “200”: row = where it attends/);
    await page.mouse.move(0, 0);
  });

  test('pb-head-grid: clicking and Enter/Space toggle ablations; the live metric matches the fixture', async () => {
    await clickHead(0, 2);
    await metricBecomes(cases.clean_logit_diff);
    expect(query().get('toy.ablate')).toBeNull();

    await clickHead(0, 2);
    await metricBecomes(fixtureHead('0.2'));
    expect(query().get('toy.ablate')).toBe('0.2');

    // The keyboard: the cells are one tab stop (an ARIA grid) at the last cell clicked; arrows move the
    // active descendant, which names the cell; Enter toggles it.
    await page.locator('#toy pb-head-grid pb-heatmap [role=grid]').focus();
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowRight');
    const cursor = () =>
      page.evaluate(() => {
        const root = document.querySelector('#toy pb-head-grid')!.shadowRoot!.querySelector('pb-heatmap')!.shadowRoot!;
        const g = root.querySelector('[role=grid]')!;
        const cell = root.getElementById(g.getAttribute('aria-activedescendant')!)!;
        return { id: cell.id, role: cell.getAttribute('role'), selected: cell.getAttribute('aria-selected'), text: cell.textContent!.trim(), focused: root.activeElement === g };
      });
    expect(await cursor()).toMatchObject({ id: 'cell-1-3', role: 'gridcell', selected: 'false', focused: true });
    expect((await cursor()).text).toMatch(/^Head 1\.3 \(helper\): not ablated/);
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => new URL(location.href).searchParams.get('toy.ablate') === '0.2,1.3', undefined, WAIT);
    await page.waitForFunction(
      () => document.querySelector('#toy pb-head-grid')!.shadowRoot!.querySelector('pb-heatmap')!.shadowRoot!.querySelector('#cell-1-3')?.getAttribute('aria-selected') === 'true',
      undefined,
      WAIT,
    );
    await idle();
    const both = await metricLine();
    expect(both.ablated).not.toBeCloseTo(fixtureHead('0.2'), 2);
    await page.keyboard.press(' ');
    await metricBecomes(fixtureHead('0.2'));
    expect(query().get('toy.ablate')).toBe('0.2');
    const [grid] = await heatmaps('pb-head-grid');
    expect(grid.selected.filter(Boolean)).toHaveLength(1);

    // Mean-ablation: the head's output replaced by its mean over the prompt.
    const events = page.evaluate(() => new Promise<unknown>((resolve) => document.addEventListener('pb-ablation-change', (e) => resolve((e as CustomEvent).detail), { once: true })));
    await page.locator('#toy pb-head-grid [part=mode] button', { hasText: 'Mean' }).click();
    expect(await events).toEqual({ ablate: ['0.2'], mode: 'mean' });
    expect(query().get('toy.mode')).toBe('mean');
    const mean = await page.evaluate(() => window.fixture.logitDiff(['0.2'], 'mean', 16, 247, 72));
    expect(Math.abs(mean - fixtureHead('0.2'))).toBeGreaterThan(0.01);
    await metricBecomes(mean);
    await page.locator('#toy pb-head-grid [part=mode] button', { hasText: 'Zero' }).click();
    await metricBecomes(fixtureHead('0.2'));
    expect(query().get('toy.mode')).toBeNull();
  });

  test('pb-prompt: edits reach the state and the URL after the debounce; bad ids are reported inline', async () => {
    const corrupt = page.locator('#toy pb-prompt[for=corrupt] input[part=input]');
    const original = await corrupt.inputValue();
    const changed = page.evaluate(() => new Promise<unknown>((resolve) => document.addEventListener('pb-prompt-change', (e) => resolve((e as CustomEvent).detail), { once: true })));
    await corrupt.fill('0, 374, 411');
    const chips = () => page.evaluate(() => [...document.querySelector('#toy pb-prompt[for=corrupt]')!.shadowRoot!.querySelectorAll('.chip .text')].map((e) => e.textContent));
    expect(await chips()).toEqual(['0', '374', '411']); // tokenized at once
    expect(await changed).toEqual({ for: 'corrupt', text: '0, 374, 411', ids: [0, 374, 411] });
    expect(query().get('toy.corrupt')).toBe('0, 374, 411');
    // The patching figure explains why it cannot run.
    await page.waitForFunction(
      () => /same number of tokens \(17 and 3\)/.test(document.querySelector('#toy pb-patching')!.shadowRoot!.querySelector('[part=error]')?.textContent ?? ''),
      undefined,
      WAIT,
    );

    await corrupt.fill('0, 374, banana, 9999');
    const error = () => page.evaluate(() => document.querySelector('#toy pb-prompt[for=corrupt]')!.shadowRoot!.querySelector('[part=error]')!.textContent);
    expect(await error()).toBe('"banana" is not a token id (this model takes ids 0 .. 511)');
    await page.waitForTimeout(400);
    expect(query().get('toy.corrupt')).toBe('0, 374, 411'); // the last good prompt stays

    await corrupt.fill(original);
    await corrupt.press('Enter'); // commits at once
    expect(await error()).toBe('');
    // Back to the author's prompt: the link no longer needs to carry it.
    expect(query().get('toy.corrupt')).toBeNull();
    await page.waitForFunction(() => window.fixture.heatmaps('pb-patching')[0]?.site === 'resid_pre', undefined, WAIT);
  });

  test("pb-head-grid: 'Compute every head's effect' fills every cell with the fixture's ablation effect", async () => {
    await page.locator('#toy pb-head-grid button.compute').click();
    // Before, cells hold 0 (and their head's name); after, each head's effect.
    await page.waitForFunction(() => window.fixture.heatmaps('pb-head-grid')[0].values.every((v) => v !== 0), undefined, WAIT);
    const [grid] = await heatmaps('pb-head-grid');
    expect(grid.values).toHaveLength(8);
    expect(grid.cellText[2]).toBe('−9.99copy'); // the effect, and the role badge
    for (const h of cases.head_zero_ablation_on_clean) {
      const effect = grid.values[h.layer * 4 + h.head];
      expect(Math.abs(effect - (h.logit_diff - cases.clean_logit_diff)), `head ${h.layer}.${h.head}`).toBeLessThan(1e-3);
    }
  });

  test("pb-patching draws the fixture's resid_pre grid and shows progress while it computes", async () => {
    await page.waitForFunction(() => window.fixture.heatmaps('pb-patching')[0]?.site === 'resid_pre', undefined, WAIT);
    const [resid] = await heatmaps('pb-patching');
    expect(resid.rowLabels).toEqual(['0', '1']);
    expect(resid.colLabels).toEqual(clean.map((id, i) => `${i} ${id}`));
    const want = cases.resid_pre_patch_corrupt_from_clean.flat();
    expect(resid.values).toHaveLength(want.length);
    expect(Math.max(...resid.values.map((v, i) => Math.abs(v - want[i])))).toBeLessThan(1e-3);

    // Another site: a new sweep, with its progress bar, written to the URL.
    await page.evaluate(() => (window.progressWatch = window.fixture.watchProgress('pb-patching')));
    await page.locator('#toy pb-patching select[part=site]').selectOption('attn_out');
    await page.waitForFunction(() => window.fixture.heatmaps('pb-patching')[0]?.site === 'attn_out', undefined, WAIT);
    const seen = await page.evaluate(() => window.progressWatch!.stop());
    expect(seen.length).toBeGreaterThan(0);
    expect(query().get('toy.site')).toBe('attn_out');
    await page.locator('#toy pb-patching select[part=site]').selectOption('resid_pre');
    await page.waitForFunction(() => window.fixture.heatmaps('pb-patching')[0]?.site === 'resid_pre', undefined, WAIT);
  });

  test('pb-patching draws TransformerLens-ordered grids: [layer, pos, head] as heads x positions per layer, [5, layer, head] as five maps', async () => {
    const select = page.locator('#toy pb-patching select[part=site]');
    await select.selectOption('z_by_pos');
    await page.waitForFunction(() => window.fixture.heatmaps('pb-patching')[0]?.site === 'z_by_pos', undefined, WAIT);
    const want = await page.evaluate(() => window.fixture.patchGrid('z_by_pos')); // [layer, pos, head]
    expect(want.shape).toEqual([2, T, 4]);
    const [layer0] = await heatmaps('pb-patching');
    expect(layer0.rowLabels).toEqual(['0', '1', '2', '3']); // heads down
    expect(layer0.colLabels).toEqual(clean.map((id, i) => `${i} ${id}`)); // positions (and their tokens) across
    const transposed = Array.from({ length: 4 * T }, (_, i) => want.values[(i % T) * 4 + Math.floor(i / T)]); // layer 0, [head, pos]
    expect(Math.max(...layer0.values.map((v, i) => Math.abs(v - transposed[i])))).toBeLessThan(1e-6);

    await select.selectOption('head_all_pos_every');
    await page.waitForFunction(() => window.fixture.heatmaps('pb-patching')[0]?.site === 'head_all_pos_every', undefined, WAIT);
    const maps = await heatmaps('pb-patching');
    expect(maps.map((m) => m.caption)).toEqual(['z', 'q', 'k', 'v', 'pattern']);
    expect(maps.every((m) => m.values.length === 8)).toBe(true); // layers x heads
    await select.selectOption('resid_pre');
    await page.waitForFunction(() => window.fixture.heatmaps('pb-patching')[0]?.site === 'resid_pre', undefined, WAIT);
  });

  test('pb-top-tokens and pb-logit-lens show the ablated model’s prediction', async () => {
    await idle();
    const want = await page.evaluate(() => window.fixture.nextToken(['0.2']));
    const top = await page.evaluate(() =>
      [...document.querySelector('#toy pb-top-tokens')!.shadowRoot!.querySelectorAll('li')].map((li) => ({
        id: Number(li.dataset.id),
        p: Number(li.dataset.p),
      })),
    );
    expect(top).toHaveLength(5);
    expect(top[0].id).toBe(want.id);
    expect(Math.abs(top[0].p - want.p)).toBeLessThan(1e-4);

    const [lens] = await heatmaps('pb-logit-lens');
    expect(lens.rowLabels).toEqual(['resid_pre 0', 'resid_pre 1', 'final']);
    expect(lens.values).toHaveLength(3 * T);
    // The final row is the model's own output: the same top token and probability.
    expect(lens.cellText[2 * T + T - 1]).toBe(String(want.id));
    expect(Math.abs(lens.values[2 * T + T - 1] - want.p)).toBeLessThan(1e-4);
  });

  test('embed code carries each figure as it is now: a script-set property, a markup attribute, JSON roles escaped', async () => {
    const tags = await page.evaluate(() => {
      type Tagged = HTMLElement & { exportTag(): string };
      const q = (sel: string) => document.querySelector(`#toy ${sel}`) as Tagged & Record<string, unknown>;
      const top = q('pb-top-tokens');
      const attention = q('pb-attention');
      attention.hidePicker = true; // set by a script: no attribute in the markup
      const out = { top: top.exportTag(), attention: attention.exportTag(), grid: q('pb-head-grid').exportTag(), lens: q('pb-logit-lens').exportTag() };
      attention.hidePicker = false;
      return out;
    });
    expect(tags.top).toBe('<pb-top-tokens k="5"></pb-top-tokens>');
    expect(tags.attention).toBe('<pb-attention hide-picker></pb-attention>');
    expect(tags.grid).toBe('<pb-head-grid roles="{&quot;0.2&quot;:&quot;copy&quot;,&quot;0.3&quot;:&quot;copy&quot;,&quot;1.3&quot;:&quot;helper&quot;}"></pb-head-grid>');
    expect(tags.lens).toBe('<pb-logit-lens></pb-logit-lens>');
    // The roles parse back to the same object through an HTML parser.
    const roles = await page.evaluate((t) => new DOMParser().parseFromString(t, 'text/html').querySelector('pb-head-grid')!.getAttribute('roles'), tags.grid);
    expect(JSON.parse(roles!)).toEqual({ '0.2': 'copy', '0.3': 'copy', '1.3': 'helper' });
  });

  test('token text that looks like markup renders literally', async () => {
    const input = page.locator('#fake pb-prompt input[part=input]');
    await input.fill('<img src=x onerror=alert(1)> <b>bold</b><script>alert(2)</script>');
    const chips = await page.evaluate(() => [...document.querySelector('#fake pb-prompt')!.shadowRoot!.querySelectorAll('.chip .text')].map((e) => e.textContent));
    expect(chips).toEqual(['<img·src=x·onerror=alert(1)>', '·<b>bold</b>', '<script>alert(2)</script>']);
    const labels = await page.evaluate(() => [...document.getElementById('markup-heatmap')!.shadowRoot!.querySelectorAll('.label')].map((e) => e.getAttribute('title')));
    expect(labels).toContain('<img·src=x·onerror=alert(1)>');
    expect(labels).toContain('<script>alert(2)</script>');
    expect(await page.evaluate(() => window.fixture.markupInShadow())).toBe(0);
    await page.waitForTimeout(300); // a handler would have run by now
    expect(dialogs).toEqual([]);
  });

  test('the page looks right and logged no errors', async () => {
    await idle();
    await page.screenshot({ path: '/tmp/components.png', fullPage: true });
    // tokenizer="none": the toy model's folder is not asked for a tokenizer.json it does not have,
    // so there is no 404 in the console (there was one on every load before).
    expect(errors).toEqual([]);
  });
});
