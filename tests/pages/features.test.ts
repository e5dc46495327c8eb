/**
 * The features demo as a reader gets it, offline: the site is built (as `npm run build` builds
 * it), served by a plain static server, and opened in headless Chromium (WebGPU on SwiftShader)
 * under the page's strict Content-Security-Policy; every request to another origin is aborted and
 * fails the test. The page runs the shipped tiny Gemma 3 with its SAE (error term on).
 *
 * Checked against the CPU reference forward (`forwardCpu`) with the SAE computed on the CPU
 * (`sae.cpu.ts`) at blocks.3.hook_resid_post: the top features at the last token and their
 * activations, a selected feature's activation across the prompt, and the next-token
 * probabilities after steering along it and after ablating it (with the error term, steering
 * adds coeff * W_dec[f] to the residual stream and ablating subtracts acts[f] * W_dec[f]); and
 * feature attribution's exact column (each feature at its position patched from the clean run
 * into the corrupted one: adds (clean - corrupted activation) * W_dec[f] there).
 */
import { openAsBlob, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadCheckpoint } from '../../src/model/checkpoint.ts';
import { forwardCpu } from '../../src/model/forward.cpu.ts';
import { hostWeightsFor } from '../../src/model/host-weights-for.ts';
import { blobModelSource } from '../../src/model/source.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { saeActivationCpu, saeEncodeCpu } from '../../src/gpu/kernels/sae.cpu.ts';
import { ROOT, launchChromium } from '../helpers/browser.ts';
import { buildSiteInto, recordingContext, startStaticServer, unexpectedErrors, type PageProblems, type StaticServer } from '../helpers/pages.ts';

const WAIT = { timeout: 90_000, polling: 100 };
const DIR = join(ROOT, 'demos/models/tiny-gemma3-random');
const PROMPT = [2, 474, 513, 755, 950, 37, 146, 823, 948, 251, 313, 869, 425, 275, 828, 259, 410, 644, 550, 88, 30];
const T = PROMPT.length;
const D = 64;
const F = 256;
const HOOK = 'blocks.3.hook_resid_post';
/** The page's corrupted prompt and metric (logit-diff:20:14:3). */
const CORRUPT = [2, 865, 754, 838, 539, 818, 331, 454, 789, 126, 305, 127, 455, 976, 136, 385, 404, 904, 205, 503, 264];
const metricOf = (logits: Float32Array) => logits[14] - logits[3];

let server: StaticServer;
let browser: Browser;
let page: Page;
let problems: PageProblems;

const w = new SafetensorsFile(new Uint8Array(readFileSync(join(DIR, 'sae-resid-post-3/sae_weights.safetensors'))), 'sae_weights');
const [W_enc, b_enc, W_dec, thr] = ['W_enc', 'b_enc', 'W_dec', 'threshold'].map((n) => w.float32(n));

/** The CPU forward of `prompt` with `edit(x, acts)` changing the SAE's hook (x [T, D], acts [T, F]). */
async function cpu(edit?: (x: Float32Array, acts: Float32Array) => void, prompt: number[] = PROMPT) {
  const source = blobModelSource({ 'config.json': await openAsBlob(join(DIR, 'config.json')), 'model.safetensors': await openAsBlob(join(DIR, 'model.safetensors')) });
  const ck = await loadCheckpoint(source);
  let acts = new Float32Array(T * F);
  const out = forwardCpu(ck.config, await hostWeightsFor(ck.tensors, ck.config, ck.hfConfig), [prompt], (name, x) => {
    if (name !== HOOK) return;
    const pre = new Float32Array(T * F);
    saeEncodeCpu(pre, x, W_enc, b_enc, T, D, F);
    acts = new Float32Array(T * F);
    saeActivationCpu('jumprelu', acts, pre, thr, T, F);
    edit?.(x, acts);
  });
  const logits = out.get('logits')!.subarray((T - 1) * 1000, T * 1000);
  const m = Math.max(...logits);
  const e = logits.map((v) => Math.exp(v - m));
  const sum = e.reduce((a, b) => a + b, 0);
  return { acts, logits, probs: e.map((v) => v / sum) };
}

beforeAll(async () => {
  const site = await buildSiteInto();
  server = await startStaticServer({ '/': site });
  browser = await launchChromium();
  const rec = await recordingContext(browser, server.origin);
  problems = rec.problems;
  page = await rec.context.newPage();
  await page.goto(`${server.origin}/demos/features/`);
  await page.waitForFunction(() => document.querySelector('pb-features')?.shadowRoot?.querySelector('tr[data-pos] .cell'), undefined, WAIT);
}, 180_000);

afterAll(async () => {
  await page?.context().close();
  await browser?.close();
  await server?.close();
});

/** [feature, activation] of the cells of one position in <pb-features>. */
const cellsAt = (p: number) =>
  page.evaluate(
    (pos) =>
      [...document.querySelector('pb-features')!.shadowRoot!.querySelectorAll(`tr[data-pos="${pos}"] .cell`)].map((c) => [Number(c.getAttribute('data-feature')), Number(c.getAttribute('data-act'))]),
    p,
  );

/** [token id, p] rows of <pb-steer>'s list. */
const steerRows = (page: Page) =>
  page.evaluate(() => [...document.querySelector('pb-steer')!.shadowRoot!.querySelectorAll('li[data-id]')].map((r) => [Number(r.getAttribute('data-id')), Number(r.getAttribute('data-p'))]));

describe('features demo (tiny Gemma 3 + its SAE, offline, strict CSP)', () => {
  test('the top features at the last token, and a feature across the prompt, match the CPU', async () => {
    const ref = await cpu();
    const row = Array.from(ref.acts.subarray((T - 1) * F, T * F));
    const top = [...row.keys()]
      .filter((f) => row[f] > 0)
      .sort((a, b) => row[b] - row[a])
      .slice(0, 4);
    const shown = await cellsAt(T - 1);
    expect(shown.map(([f]) => f)).toEqual(top);
    for (const [f, a] of shown) expect(Math.abs(a - row[f])).toBeLessThan(1e-3 * Math.max(1, row[f]));

    // Select the most active one: <pb-feature-acts> shows it at every token.
    const f = top[0];
    await page.locator(`pb-features .cell[data-feature="${f}"] button.feature`).first().click();
    await page.waitForFunction((n) => document.querySelector('pb-feature-acts')?.shadowRoot?.querySelectorAll('.ftok[data-pos]').length === n, T, WAIT);
    const across = await page.evaluate(() => [...document.querySelector('pb-feature-acts')!.shadowRoot!.querySelectorAll('.ftok[data-pos]')].map((t) => Number(t.getAttribute('data-act'))));
    // Position 0 (BOS) holds JumpReLU gates the fixture leaves to rounding (sae-fixture.test.ts); compare the rest.
    for (let p = 1; p < T; p++) expect(Math.abs(across[p] - ref.acts[p * F + f]), `position ${p}`).toBeLessThan(1e-3 * Math.max(1, ref.acts[p * F + f]));
  }, 120_000);

  test('steering along the selected feature and ablating it move the next-token prediction as on the CPU', async () => {
    const f = Number(await page.evaluate(() => document.querySelector('pb-features')!.shadowRoot!.querySelector('button.feature[aria-pressed="true"]')!.textContent!.trim().slice(1)));
    const before = await steerRows(page);
    // Drag the slider to 12.5: the list recomputes on the input event.
    await page.evaluate(() => {
      const r = document.querySelector('pb-steer')!.shadowRoot!.querySelector<HTMLInputElement>('input[type=range]')!;
      r.value = '12.5';
      r.dispatchEvent(new Event('input', { bubbles: true, composed: true }));
    });
    await page.waitForFunction(() => document.querySelector('pb-steer')?.shadowRoot?.textContent?.includes('steered by 12.500'), undefined, WAIT);
    await page.waitForFunction(() => !document.querySelector('pb-steer')!.hasAttribute('aria-busy') || document.querySelector('pb-steer')!.getAttribute('aria-busy') === 'false', undefined, WAIT);
    const steered = await steerRows(page);
    const refSteer = await cpu((x) => {
      for (let p = 0; p < T; p++) for (let j = 0; j < D; j++) x[p * D + j] += 12.5 * W_dec[f * D + j];
    });
    expect(steered).not.toEqual(before);
    for (const [id, p] of steered) expect(Math.abs(p - refSteer.probs[id]), `token ${id}`).toBeLessThan(1e-3);

    // Back to 0, then ablate the feature: zero it at every position.
    await page.locator('pb-steer button', { hasText: 'reset' }).click();
    await page.locator(`pb-features .cell[data-feature="${f}"] button.ablate`).first().click();
    await page.waitForFunction((n) => document.querySelector('pb-steer')?.shadowRoot?.textContent?.includes(`#${n} ablated`), f, WAIT);
    await page.waitForFunction(() => document.querySelector('pb-steer')!.getAttribute('aria-busy') === 'false', undefined, WAIT);
    const ablated = await steerRows(page);
    const refAblate = await cpu((x, acts) => {
      for (let p = 0; p < T; p++) for (let j = 0; j < D; j++) x[p * D + j] -= acts[p * F + f] * W_dec[f * D + j];
    });
    for (const [id, p] of ablated) expect(Math.abs(p - refAblate.probs[id]), `token ${id}`).toBeLessThan(1e-3);

    expect(problems.pageErrors).toEqual([]);
    expect(problems.cspViolations).toEqual([]);
    expect(problems.external).toEqual([]);
    expect(unexpectedErrors(problems, server)).toEqual([]);
  }, 120_000);

  test('feature attribution: the largest AtP estimates, each beside the exact effect of patching that feature, as the CPU gives it', async () => {
    await page.waitForFunction(() => document.querySelector('pb-feature-attribution')?.shadowRoot?.querySelector('tr[data-feature]'), undefined, WAIT);
    const rows = await page.evaluate(() =>
      [...document.querySelector('pb-feature-attribution')!.shadowRoot!.querySelectorAll('tr[data-feature]')].map((r) =>
        ['data-pos', 'data-feature', 'data-estimate', 'data-exact'].map((a) => Number(r.getAttribute(a))),
      ),
    );
    expect(rows).toHaveLength(8);
    const mags = rows.map(([, , e]) => Math.abs(e));
    expect(mags).toEqual([...mags].sort((a, b) => b - a));
    const clean = await cpu();
    const corrupt = await cpu(undefined, CORRUPT);
    const m0 = metricOf(corrupt.logits);
    for (const [pos, f, , exact] of rows) {
      const delta = clean.acts[pos * F + f] - corrupt.acts[pos * F + f];
      expect(delta, `pos ${pos} feature ${f} differs between the runs`).not.toBe(0);
      const patched = await cpu((x) => {
        for (let j = 0; j < D; j++) x[pos * D + j] += delta * W_dec[f * D + j];
      }, CORRUPT);
      expect(Math.abs(exact - (metricOf(patched.logits) - m0)), `pos ${pos} feature ${f}`).toBeLessThan(1e-3);
    }
    const r = Number(await page.evaluate(() => document.querySelector('pb-feature-attribution')!.shadowRoot!.querySelector('[part=summary]')!.getAttribute('data-correlation')));
    // Node's run of the same grid (tests/features/feature-attribution.test.ts, k = 4) gives r = 0.93.
    expect(r).toBeGreaterThan(0.7);
    expect(problems.pageErrors).toEqual([]);
  }, 120_000);

  test('a link carries the feature experiment; without WebGPU the figures draw the snapshot, which is what the live page computes', async () => {
    const snap = JSON.parse(readFileSync(join(ROOT, 'demos/snapshots/features.json'), 'utf8'));
    const { selected, steer, ablated } = snap.features;
    expect([selected, steer, ablated]).toEqual([25, { feature: 25, coeff: 8 }, [77]]);
    // Live, from a link with the snapshot spec's state.
    const live = await recordingContext(browser, server.origin);
    const p1 = await live.context.newPage();
    await p1.goto(`${server.origin}/demos/features/?model.feature=25&model.steer=8&model.features=77`);
    await p1.waitForFunction(
      () => document.querySelector('pb-steer')?.shadowRoot?.textContent?.includes('#77 ablated') && document.querySelector('pb-steer')!.getAttribute('aria-busy') === 'false',
      undefined,
      WAIT,
    );
    const liveRows = await steerRows(p1);
    expect(await p1.evaluate(() => document.querySelector('pb-steer')!.shadowRoot!.textContent!.includes('feature #25 steered by 8'))).toBe(true);
    expect(await p1.evaluate(() => document.querySelector('pb-features')!.shadowRoot!.querySelector('.cell[data-feature="77"] button.ablate')?.getAttribute('aria-pressed'))).toBe('true');
    await live.context.close();

    // Without WebGPU: the snapshot, beside the message, read-only.
    const off = await recordingContext(browser, server.origin, { noWebGPU: true });
    const p2 = await off.context.newPage();
    await p2.goto(`${server.origin}/demos/features/`);
    await p2.waitForFunction(
      () => document.querySelector('pb-steer')?.shadowRoot?.querySelector('li[data-id]') && document.querySelector('pb-feature-acts')?.shadowRoot?.querySelector('.ftok'),
      undefined,
      WAIT,
    );
    const message = await p2.evaluate(() => document.querySelector('pb-model')!.shadowRoot!.querySelector('[part=no-webgpu]')?.textContent?.replace(/\s+/g, ' ') ?? '');
    expect(message).toMatch(/This browser has no WebGPU.*snapshot computed ahead of time/);
    const drawn = await steerRows(p2);
    expect(drawn.map(([id]) => id)).toEqual(liveRows.map(([id]) => id));
    drawn.forEach(([, pr], i) => expect(Math.abs(pr - liveRows[i][1])).toBeLessThan(1e-5));
    // The top features at the last token, as on the CPU; the selected feature across the prompt.
    const ref = await cpu();
    const shown = await p2.evaluate(
      (pos) =>
        [...document.querySelector('pb-features')!.shadowRoot!.querySelectorAll(`tr[data-pos="${pos}"] .cell`)].map((c) => [
          Number(c.getAttribute('data-feature')),
          Number(c.getAttribute('data-act')),
        ]),
      T - 1,
    );
    expect(shown.length).toBe(4);
    for (const [f, a] of shown) expect(Math.abs(a - ref.acts[(T - 1) * F + f])).toBeLessThan(1e-3 * Math.max(1, a));
    const across = await p2.evaluate(() => [...document.querySelector('pb-feature-acts')!.shadowRoot!.querySelectorAll('.ftok[data-pos]')].map((t) => Number(t.getAttribute('data-act'))));
    for (let pos = 1; pos < T; pos++) expect(Math.abs(across[pos] - ref.acts[pos * F + 25])).toBeLessThan(1e-3 * Math.max(1, ref.acts[pos * F + 25]));
    expect(await p2.evaluate(() => document.querySelector('pb-steer')!.shadowRoot!.querySelector<HTMLInputElement>('input[type=range]')!.disabled)).toBe(true);
    // Feature attribution from the snapshot: the rows the live page computed (the first page, same prompts and metric).
    const attrRows = (pg: Page) =>
      pg.evaluate(() =>
        [...document.querySelector('pb-feature-attribution')!.shadowRoot!.querySelectorAll('tr[data-feature]')].map((r) =>
          ['data-pos', 'data-feature', 'data-estimate', 'data-exact'].map((a) => Number(r.getAttribute(a))),
        ),
      );
    await p2.waitForFunction(() => document.querySelector('pb-feature-attribution')?.shadowRoot?.querySelector('tr[data-feature]'), undefined, WAIT);
    const [snapRows, liveAttr] = [await attrRows(p2), await attrRows(page)];
    expect(snapRows.map(([pos, f]) => [pos, f])).toEqual(liveAttr.map(([pos, f]) => [pos, f]));
    snapRows.forEach((r, i) => [2, 3].forEach((j) => expect(Math.abs(r[j] - liveAttr[i][j])).toBeLessThan(1e-5)));
    expect(await p2.evaluate(() => [...document.querySelector('pb-features')!.shadowRoot!.querySelectorAll<HTMLButtonElement>('button.ablate')].every((b) => b.disabled))).toBe(true);
    expect(off.problems.pageErrors).toEqual([]);
    expect(off.problems.external).toEqual([]);
    await off.context.close();
  }, 180_000);
});
