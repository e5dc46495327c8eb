/**
 * demos/explore/, the "pick a model and look inside" page, as a reader gets it: the built site
 * served by a plain static server and opened in headless Chromium (WebGPU on SwiftShader). The
 * Hugging Face Hub is replaced (`?hub=`) by folders the test writes: a random GPT-2, a GPT-NeoX
 * with parallel residual and partial rotary (stored F16) and a Llama with grouped-query attention
 * and tied embeddings (stored BF16), each tiny but with GPT-2's 50257-token vocabulary and the
 * committed GPT-2 tokenizer, so the page's text prompt tokenizes for all three. Every request to
 * another origin is aborted and fails the test.
 *
 * The next-token probabilities each figure shows are checked against what the engine computes
 * in Node for the same files and token ids, so the figures are shown to recompute for each model.
 */
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ROOT, launchChromium } from '../helpers/browser.ts';
import { llamaCheckpoint, neoxCheckpoint } from '../helpers/checkpoints.ts';
import { nextTokenProbs, writeCheckpointHub } from '../helpers/hub-folders.ts';
import { buildSiteInto, recordingContext, startStaticServer, unexpectedErrors, type PageProblems, type StaticServer } from '../helpers/pages.ts';
import { GPT2_VOCAB, writeRandomGpt2Hub } from '../helpers/random-gpt2-hub.ts';

// "The capital of France is", as GPT-2 tokenizes it.
const PROMPT_IDS = [464, 3139, 286, 4881, 318];
const K = 10; // <pb-top-tokens k="10">
const TIMEOUT = 60_000;
const SHOTS = join(ROOT, 'test-results', 'pages');

interface Hub {
  path: string;
  /** The status line names it so (PRESETS' title). */
  title: RegExp;
  layers: number;
  heads: number;
  /** p(token) after the prompt, from the engine in Node. */
  probs?: Float64Array;
}

const HUBS: Record<string, Hub> = {
  gpt2: { path: '/openai-community/gpt2/resolve/main/', title: /^GPT-2 small/, layers: 2, heads: 4 },
  'pythia-70m': { path: '/EleutherAI/pythia-70m/resolve/main/', title: /^Pythia-70M \(GPT-NeoX\)/, layers: 2, heads: 4 },
  'smollm2-135m': { path: '/HuggingFaceTB/SmolLM2-135M/resolve/main/', title: /^SmolLM2-135M \(Llama-style, BF16\)/, layers: 2, heads: 4 },
};

let server: StaticServer;
let browser: Browser;
let page: Page;
let problems: PageProblems;
let explore: string;

beforeAll(async () => {
  const t0 = performance.now();
  const hub = mkdtempSync(join(tmpdir(), 'patchbay-hub-'));
  const dir = (name: string) => join(hub, name);
  writeRandomGpt2Hub(dir('gpt2'), { d_model: 32, n_layers: 2, n_heads: 4, n_ctx: 64 });
  const small = { vocab_size: GPT2_VOCAB, hidden_size: 32, intermediate_size: 64, num_attention_heads: 4, num_hidden_layers: 2 };
  writeCheckpointHub(dir('pythia-70m'), neoxCheckpoint({ ...small, use_parallel_residual: true, rotary_pct: 0.25 }), 'F16');
  writeCheckpointHub(dir('smollm2-135m'), llamaCheckpoint({ ...small, num_key_value_heads: 2, tie_word_embeddings: true }), 'BF16');
  const [site] = await Promise.all([buildSiteInto(), ...Object.entries(HUBS).map(async ([name, h]) => (h.probs = await nextTokenProbs(dir(name), PROMPT_IDS)))]);
  server = await startStaticServer({ '/': site, ...Object.fromEntries(Object.entries(HUBS).map(([name, h]) => [h.path, dir(name)])) });
  explore = `${server.origin}/demos/explore/`;
  browser = await launchChromium();
  const rec = await recordingContext(browser, server.origin);
  problems = rec.problems;
  // Every model the page finishes loading, in order.
  await rec.context.addInitScript(() => {
    const w = window as unknown as { loaded: string[] };
    w.loaded = [];
    document.addEventListener('pb-model-loaded', (e) => w.loaded.push((e as CustomEvent<{ name: string }>).detail.name));
  });
  page = await rec.context.newPage();
  mkdirSync(SHOTS, { recursive: true });
  console.log(`site built, hubs written, references computed, Chromium up in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}, 120_000);

afterAll(async () => {
  await page?.context().close();
  await browser?.close();
  await server?.close();
});

/** What the page shows: the model's state and every figure's content. */
interface Shown {
  name: string;
  status: string;
  sessionStatus: string;
  ids: number[];
  top: { id: number; p: number }[];
  attentionCells: number;
  lensRows: number;
  lensCells: number;
  busy: boolean;
  errors: string[];
}

const shown = (p: Page): Promise<Shown> =>
  p.evaluate(() => {
    const model = document.querySelector('pb-model') as HTMLElement & { session: { status: string; name: string } };
    const root = (sel: string) => document.querySelector(sel)!.shadowRoot!;
    const lens = root('pb-logit-lens').querySelector('pb-heatmap');
    const figures = ['pb-prompt', 'pb-top-tokens', 'pb-attention', 'pb-logit-lens'];
    return {
      name: model.session.name,
      sessionStatus: model.session.status,
      status: model.shadowRoot!.querySelector('[part=status]')?.textContent?.replace(/\s+/g, ' ').trim() ?? '',
      ids: [...root('pb-prompt').querySelectorAll('.chip')].map((c) => Number(/token id (\d+)/.exec(c.getAttribute('title') ?? '')?.[1])),
      top: [...root('pb-top-tokens').querySelectorAll('[data-id]')].map((r) => ({ id: Number(r.getAttribute('data-id')), p: Number(r.getAttribute('data-p')) })),
      attentionCells: root('pb-attention').querySelector('pb-heatmap')?.values.length ?? 0,
      lensRows: lens?.rows ?? 0,
      lensCells: lens?.values.length ?? 0,
      busy: figures.some((f) => document.querySelector(f)!.getAttribute('aria-busy') === 'true'),
      errors: figures.flatMap((f) => [...root(f).querySelectorAll('.error:not([hidden])')].map((e) => e.textContent!.trim())).filter(Boolean),
    };
  });

/** |p - reference| within 1e-4 of the reference: the probabilities are ~1e-4 here, so relative, not absolute. */
const close = (p: number, ref: number) => Math.abs(p - ref) <= 1e-4 * ref;

/**
 * Waits until `name` is loaded and every figure shows its numbers (the first listed token's
 * probability is the reference's largest), then checks them all.
 */
async function expectModelShown(name: string): Promise<Shown> {
  const h = HUBS[name];
  const probs = h.probs!;
  const pMax = probs.reduce((a, b) => Math.max(a, b), 0);
  const deadline = performance.now() + TIMEOUT;
  // The page defines its components once ?hub= is applied, after the load event: wait for them.
  await page.waitForFunction(() => ['pb-model', 'pb-prompt', 'pb-top-tokens', 'pb-attention', 'pb-logit-lens'].every((f) => document.querySelector(f)?.shadowRoot), undefined, { timeout: TIMEOUT });
  let s = await shown(page);
  while (!(s.name === name && s.sessionStatus === 'ready' && !s.busy && s.top.length && close(s.top[0].p, pMax) && s.lensRows === h.layers + 1 && s.attentionCells)) {
    if (s.sessionStatus === 'error' || s.errors.length || performance.now() > deadline) break;
    await page.waitForTimeout(100);
    s = await shown(page);
  }
  expect(s.errors).toEqual([]);
  expect(s.sessionStatus, s.status).toBe('ready');
  expect(s.name).toBe(name);
  expect(s.status).toMatch(h.title);
  expect(s.status).toContain(`${h.layers} layers × ${h.heads} heads`);
  expect(s.ids).toEqual(PROMPT_IDS);
  // Top tokens: the k most probable under the engine's own distribution, with its probabilities.
  expect(s.top).toHaveLength(K);
  for (const t of s.top) expect(close(t.p, probs[t.id]), `token ${t.id}: shown ${t.p}, engine ${probs[t.id]}`).toBe(true);
  const ref = [...probs].sort((a, b) => b - a);
  s.top.forEach((t, i) => expect(close(t.p, ref[i]), `rank ${i}`).toBe(true));
  // Attention: a query × key heatmap over the prompt. Logit lens: one row per layer, plus the final one.
  const T = PROMPT_IDS.length;
  expect(s.attentionCells).toBe(T * T);
  expect(s.lensRows).toBe(h.layers + 1);
  expect(s.lensCells).toBe((h.layers + 1) * T);
  return s;
}

const loaded = (): Promise<string[]> => page.evaluate(() => (window as unknown as { loaded: string[] }).loaded);
const pick = (name: string) => page.locator('pb-model-picker select').selectOption(name);

test('GPT-2, Pythia and SmolLM2 from the (local) Hub, switched with the picker; the figures show what the engine computes', async () => {
  const t0 = performance.now();
  await page.goto(`${explore}?hub=${encodeURIComponent(server.origin)}`);
  await expectModelShown('gpt2');
  const gpt2 = performance.now();

  await pick('pythia-70m');
  await expectModelShown('pythia-70m');
  expect(new URL(page.url()).searchParams.get('explore.model')).toBe('pythia-70m');

  await pick('smollm2-135m');
  await expectModelShown('smollm2-135m'); // BF16 weights: loaded, ready, no error
  const url = new URL(page.url());
  expect(url.searchParams.get('explore.model')).toBe('smollm2-135m');
  expect(url.searchParams.get('hub')).toBe(server.origin);
  await page.screenshot({ path: join(SHOTS, 'explore.png'), fullPage: true });

  // Each model's weights and tokenizer came from its own "Hub" folder, and nothing from elsewhere.
  for (const h of Object.values(HUBS)) {
    expect(
      server.requests.some((r) => r.startsWith(`${h.path}model.safetensors`)),
      h.path,
    ).toBe(true);
    expect(
      server.requests.some((r) => r.startsWith(`${h.path}tokenizer.json`)),
      h.path,
    ).toBe(true);
  }
  expect(await loaded()).toEqual(['gpt2', 'pythia-70m', 'smollm2-135m']);
  console.log(`explore: GPT-2 shown ${((gpt2 - t0) / 1000).toFixed(1)} s after navigation; Pythia and SmolLM2 ${((performance.now() - gpt2) / 1000).toFixed(1)} s more`);
  expect(problems.external).toEqual([]);
}, 120_000);

test('a link with ?model=pythia-70m opens on Pythia, and the toy model gets a token-id prompt', async () => {
  await page.goto(`${explore}?explore.model=pythia-70m&hub=${encodeURIComponent(server.origin)}`);
  await expectModelShown('pythia-70m');
  expect(await loaded()).toEqual(['pythia-70m']); // GPT-2, the page's default, was never loaded
  expect(await page.locator('pb-model-picker select').inputValue()).toBe('pythia-70m');

  // induction-2l has no tokenizer: the text prompt is swapped for token ids, and back again after.
  await pick('induction-2l');
  await page.waitForFunction(() => document.querySelector('pb-top-tokens')?.shadowRoot?.querySelector('[data-id]')?.getAttribute('data-id') === '247', undefined, { timeout: TIMEOUT, polling: 100 });
  expect(new URL(page.url()).searchParams.get('explore.prompt')).toMatch(/^0,200,290,/);
  await pick('pythia-70m');
  await expectModelShown('pythia-70m');
  // Back to the author's prompt: the link no longer carries it.
  expect(new URL(page.url()).searchParams.get('explore.prompt')).toBeNull();
  expect(await loaded()).toEqual(['pythia-70m', 'induction-2l', 'pythia-70m']);

  expect(problems.pageErrors).toEqual([]);
  expect(problems.cspViolations).toEqual([]);
  expect(problems.dialogs).toEqual([]);
  expect(problems.external).toEqual([]);
  expect(unexpectedErrors(problems, server)).toEqual([]);
}, 120_000);
