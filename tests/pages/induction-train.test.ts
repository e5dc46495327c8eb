/**
 * The induction page's training and contrast sections as a reader gets them (built site, static
 * server, headless Chromium on SwiftShader): section 7 shows induction-attn-2l (its head 0.1 is
 * measured as a previous-token head); section 8 trains the recipe's model for 4 updates at batch 4
 * (from the address), hands it to the figures below it, and offers it as a Hugging Face folder
 * with the recipe's tensor names. The loss the page reports is the one Node's engine computes for
 * the same seed (1e-3 relative: two software adapters' fp32 rounding).
 */
import { readFileSync } from 'node:fs';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { modelFromFiles, recipeConfig, recipeInit, recipeTraining } from '../../src/train/induction-recipe.ts';
import { TransformerTraining } from '../../src/train/transformer.ts';
import { launchChromium } from '../helpers/browser.ts';
import { testGpu } from '../helpers/gpu.ts';
import { buildSiteInto, recordingContext, startStaticServer, unexpectedErrors, type StaticServer } from '../helpers/pages.ts';

let server: StaticServer;
let browser: Browser;

beforeAll(async () => {
  server = await startStaticServer({ '/': await buildSiteInto() });
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

test('train your own: 4 updates, the figures switch to the model, the folder downloads; induction-attn-2l beside', async () => {
  // The same run in Node: the loss of update 4 (the forward before it).
  const gpu = await testGpu();
  const { model, checkpoint } = await modelFromFiles(gpu, { 'config.json': JSON.stringify(recipeConfig()), 'model.safetensors': recipeInit(0) });
  const r = await recipeTraining(gpu, model, checkpoint, 'recall', 0, 4);
  let nodeLoss = NaN;
  await r.trainer.train({ until: 4, every: 4, onReport: (rep) => void (nodeLoss = TransformerTraining.objectiveValue(rep.metrics.objective!)) }).done;
  r.destroy();
  model.destroy();

  const { context, problems } = await recordingContext(browser, server.origin);
  const page = await context.newPage();
  await page.goto(`${server.origin}/demos/induction/?train-steps=4&train-batch=4`);
  const status = () => page.evaluate(() => document.querySelector('induction-trainer')!.shadowRoot!.querySelector<HTMLElement>('.status')!.dataset);
  await page.locator('induction-trainer button[name=train]').click();
  await page.waitForFunction(
    () => {
      const s = document.querySelector('induction-trainer')!.shadowRoot!.querySelector<HTMLElement>('.status')!;
      if (s.dataset.state === 'error') throw new Error(s.textContent ?? '');
      return s.dataset.state === 'done';
    },
    undefined,
    { timeout: 240_000, polling: 250 },
  );
  expect((await status()).step).toBe('4');
  const pageLoss = await page.evaluate(() => {
    const curve = document.querySelector('induction-trainer')!.shadowRoot!.querySelector('loss-curve') as HTMLElement & { series: { points: [number, number][] }[] };
    return curve.series[0]!.points.at(-1)!;
  });
  expect(pageLoss[0]).toBe(4);
  expect(Math.abs(pageLoss[1] - nodeLoss) / nodeLoss).toBeLessThan(1e-3);

  // The figures below now run the trained model.
  await page.waitForFunction(() => (document.getElementById('trained-model') as HTMLElement & { session: { status: string } }).session.status === 'ready', undefined, { timeout: 60_000 });
  await page.locator('#trained-model pb-attention').first().scrollIntoViewIfNeeded();
  await page.waitForFunction(() => !!document.querySelector('#trained-model pb-attention')?.shadowRoot?.querySelector('pb-heatmap'), undefined, { timeout: 120_000 });

  // The Hugging Face folder.
  const [d] = await Promise.all([page.waitForEvent('download'), page.locator('induction-trainer a[download="model.safetensors"]').click()]);
  const st = new SafetensorsFile(new Uint8Array(readFileSync((await d.path())!)), 'model.safetensors');
  expect(st.names).toEqual(new SafetensorsFile(recipeInit(0), 'init').names);

  // Section 7: induction-attn-2l, whose head 0.1 attends to the previous token.
  await page.locator('#textbook induction-scores').scrollIntoViewIfNeeded();
  await page.waitForFunction(() => document.querySelector('#textbook induction-scores tr[data-head="0.1"]'), undefined, { timeout: 180_000 });
  const prev01 = await page.evaluate(() => Number(document.querySelector('#textbook induction-scores tr[data-head="0.1"] td')!.textContent));
  expect(prev01).toBeGreaterThan(0.95);

  expect(problems.pageErrors).toEqual([]);
  expect(problems.cspViolations).toEqual([]);
  expect(problems.external).toEqual([]);
  expect(unexpectedErrors(problems, server)).toEqual([]);
  await context.close();
}, 400_000);
