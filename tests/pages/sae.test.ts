/**
 * The SAE page as a reader gets it (built site, static server, headless Chromium on SwiftShader):
 * it loads induction-attn-2l from the site, caches blocks.0.hook_resid_post, trains a small TopK
 * SAE (60 steps, from the address), evaluates it and shows its latents. Checked: the model-alone
 * recall loss equals the CPU forward on the page's held-out sequences (regenerated here from the
 * same seed), the SAE's L0 is its k, the files offered are SAELens' cfg.json and
 * sae_weights.safetensors with the trained shapes, and the feature cards show top contexts.
 */
import { openAsBlob, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { loadCheckpoint } from '../../src/model/checkpoint.ts';
import { forwardCpu } from '../../src/model/forward.cpu.ts';
import { hostWeightsFor } from '../../src/model/host-weights-for.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { blobModelSource } from '../../src/model/source.ts';
import { recallBatch } from '../../src/train/induction-data.ts';
import { SeededRandom } from '../../src/util/random.ts';
import { meanLoss } from '../../src/train/sae-eval.ts';
import { ROOT, launchChromium } from '../helpers/browser.ts';
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

test('trains a TopK SAE on induction-attn-2l, evaluates it as SAELens does and offers it in its format', async () => {
  const { context, problems } = await recordingContext(browser, server.origin);
  const page = await context.newPage();
  await page.goto(`${server.origin}/demos/sae/?autostart&architecture=topk&dsae=64&k=5&steps=60&batch=128`);
  await page.waitForFunction(
    () => {
      const s = document.querySelector<HTMLElement>('#sae-status')!;
      if (s.dataset.state === 'error') throw new Error(s.textContent ?? '');
      return s.dataset.state === 'done';
    },
    undefined,
    { timeout: 240_000, polling: 250 },
  );
  expect(await page.getAttribute('#sae-status', 'data-step')).toBe('60');
  const value = (m: string) => page.evaluate((k) => Number(document.querySelector<HTMLElement>(`#eval [data-metric=${k}]`)!.dataset.value), m);

  // The model alone on the page's held-out recall sequences, on the CPU.
  const dir = join(ROOT, 'demos/models/induction-attn-2l');
  const ck = await loadCheckpoint(blobModelSource({ 'config.json': await openAsBlob(join(dir, 'config.json')), 'model.safetensors': await openAsBlob(join(dir, 'model.safetensors')) }));
  const held = recallBatch(new SeededRandom(12), 32, { T: 48, V: 256 });
  const logits = forwardCpu(ck.config, await hostWeightsFor(ck.tensors, ck.config, ck.hfConfig), held.ids).get('logits')!;
  expect(Math.abs((await value('ce_loss_without_sae')) - meanLoss(logits, 48, 256, held.targets))).toBeLessThan(1e-3);
  const [withSae, ablated, score, l0, fvu] = await Promise.all(['ce_loss_with_sae', 'ce_loss_with_ablation', 'ce_loss_score', 'l0', 'fvu'].map(value));
  expect(l0).toBe(5);
  expect(fvu).toBeGreaterThan(0);
  expect(fvu).toBeLessThan(1);
  expect(score).toBeCloseTo((ablated! - withSae!) / (ablated! - (await value('ce_loss_without_sae'))), 6);

  // SAELens' files, downloaded through the page's links.
  const download = async (id: string) => {
    const [d] = await Promise.all([page.waitForEvent('download'), page.click(id)]);
    expect(d.suggestedFilename()).toBe(id === '#download-cfg' ? 'cfg.json' : 'sae_weights.safetensors');
    return new Uint8Array(readFileSync((await d.path())!));
  };
  const files = { cfg: new TextDecoder().decode(await download('#download-cfg')), weights: await download('#download-weights') };
  const cfg = JSON.parse(files.cfg);
  expect(cfg).toMatchObject({ architecture: 'topk', d_in: 64, d_sae: 64, k: 5, apply_b_dec_to_input: true, normalize_activations: 'none' });
  expect(cfg.metadata).toMatchObject({ model_name: 'induction-attn-2l', hook_name: 'blocks.0.hook_resid_post' });
  const st = new SafetensorsFile(files.weights, 'sae_weights.safetensors');
  expect(Object.fromEntries(st.names.map((n) => [n, st.info(n).shape]))).toEqual({ W_enc: [64, 64], b_enc: [64], W_dec: [64, 64], b_dec: [64] });

  // Feature cards: the most frequent latents, each with its top contexts ending at the firing token.
  const cards = await page.evaluate(() =>
    [...document.querySelector('sae-features')!.shadowRoot!.querySelectorAll('.card')].map((c) => ({ contexts: c.querySelectorAll('.ctx').length, fire: c.querySelectorAll('.tok.fire').length })),
  );
  expect(cards.length).toBeGreaterThan(0);
  for (const c of cards) {
    expect(c.contexts).toBe(8);
    expect(c.fire).toBe(8);
  }
  expect(problems.pageErrors).toEqual([]);
  expect(problems.cspViolations).toEqual([]);
  expect(problems.external).toEqual([]);
  expect(unexpectedErrors(problems, server)).toEqual([]);
  await context.close();
}, 300_000);
