/**
 * Serving the repository with Vite and driving Debian's Chromium through playwright-core, for
 * the tests that run in a real browser (WebGPU there runs on SwiftShader: no display, no GPU).
 *
 *   const server = await startViteServer({ entries: ['tests/browser/forward.html'] });
 *   const browser = await launchChromium();
 *
 * or both at once, with pages that collect their console errors:
 *
 *   const b = await openBrowser({ entries: ['tests/components/fixture.html'] });
 *   const { page, errors } = await b.newPage('/tests/components/fixture.html');
 *   await b.close();
 */
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createServer, type ViteDevServer } from 'vite';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CHROMIUM = '/usr/bin/chromium';

// What gives headless Chromium a WebGPU adapter here (SwiftShader; no display, no GPU).
// --enable-unsafe-webgpu: WebGPU is blocklisted on Linux without it. The rest keep a CI run
// from reaching for the network or background services.
export const CHROMIUM_ARGS = [
  '--no-sandbox', // CI runs as root, where Chromium's sandbox refuses to start
  '--enable-unsafe-webgpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface TestServer {
  /** e.g. http://127.0.0.1:41234 */
  origin: string;
  server: ViteDevServer;
  close(): Promise<void>;
}

/** Vite on the repository, on a free port; it scans only `entries` for dependencies, so they are optimized before it answers. */
export async function startViteServer(options: { entries: string[] }): Promise<TestServer> {
  const server = await createServer({
    root: ROOT,
    configFile: resolve(ROOT, 'vite.config.ts'),
    logLevel: 'warn',
    optimizeDeps: { entries: options.entries },
    // No SPA fallback: a missing file (a toy model's tokenizer.json) must be a 404, not index.html.
    appType: 'mpa',
    server: { port: 0, host: '127.0.0.1', hmr: false, watch: null },
  });
  await server.listen();
  const { port } = server.httpServer!.address() as AddressInfo;
  return { origin: `http://127.0.0.1:${port}`, server, close: () => server.close() };
}

/** Headless Debian Chromium with WebGPU. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run sudo bash scripts/setup-system.sh`);
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

export interface TestBrowser {
  origin: string;
  browser: Browser;
  /** A page at `path` (relative to the origin), with its console errors and page errors collected. */
  newPage(path: string, options?: { viewport?: { width: number; height: number } }): Promise<{ page: Page; errors: string[] }>;
  close(): Promise<void>;
}

/** A Vite server and a Chromium together. */
export async function openBrowser(options: { entries: string[] }): Promise<TestBrowser> {
  const server = await startViteServer(options);
  let browser: Browser;
  try {
    browser = await launchChromium();
  } catch (e) {
    await server.close();
    throw e;
  }
  return {
    origin: server.origin,
    browser,
    async newPage(path, opts = {}) {
      const page = await browser.newPage(opts.viewport ? { viewport: opts.viewport } : {});
      const errors: string[] = [];
      // The page's own errors are the only clue when it fails: keep them and pass them through.
      page.on('console', (msg) => {
        if (msg.type() === 'error') errors.push(`${msg.text()}${msg.location().url ? ` (${msg.location().url})` : ''}`);
        if (msg.type() === 'error' || msg.type() === 'warning') console.error(`[page ${msg.type()}] ${msg.text()}`);
      });
      page.on('pageerror', (err) => {
        errors.push(err.message);
        console.error(`[page error] ${err.message}`);
      });
      await page.goto(`${server.origin}${path}`);
      return { page, errors };
    },
    async close() {
      await browser.close();
      await server.close();
    },
  };
}
