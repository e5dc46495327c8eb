/**
 * For the tests of the demo pages (tests/pages/): the built site served as any static host would
 * serve it (node:http, no Vite), with extra folders mounted at URL prefixes (a fake Hugging Face
 * Hub, broken model folders, test pages), a log of every request the server answered, and
 * browser contexts that record what a page complained about and refuse to leave the server.
 * Chromium itself comes from ./browser.ts.
 */
import { createReadStream, existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize, resolve, sep } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { build } from 'vite';
import { ROOT } from './browser.ts';

/** URL prefix (starting and ending with "/") → folder on disk served under it. */
export type Mounts = Record<string, string>;

export interface StaticServer {
  /** e.g. http://127.0.0.1:41234 */
  origin: string;
  /** Paths (with query) of every request the server answered, in order. */
  requests: string[];
  /** Paths of the requests it answered with 404. */
  notFound: string[];
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/** A slow link for some files: their bytes go out `bytes` at a time, one chunk every `everyMs`. */
export interface Throttle {
  match: RegExp;
  bytes: number;
  everyMs: number;
}

/**
 * Answers `req` from the mounted folders (longest matching prefix; a folder serves its
 * index.html). `no-store`, so a page that avoids the network did it with the Cache API, not the
 * HTTP cache. Files `throttle` matches are sent slowly, with their Content-Length.
 */
function serve(mounts: Mounts, req: IncomingMessage, res: ServerResponse, throttle?: Throttle): void {
  const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
  const prefix = Object.keys(mounts)
    .filter((p) => path.startsWith(p))
    .sort((a, b) => b.length - a.length)[0];
  if (prefix === undefined) {
    res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${path}`);
    return;
  }
  const base = resolve(mounts[prefix]);
  let file = normalize(join(base, path.slice(prefix.length)));
  if (file !== base && !file.startsWith(base + sep)) {
    res.writeHead(403).end();
    return;
  }
  if (existsSync(file) && statSync(file).isDirectory()) {
    if (!path.endsWith('/')) {
      res.writeHead(301, { location: path + '/' }).end();
      return;
    }
    file = join(file, 'index.html');
  }
  if (!existsSync(file) || !statSync(file).isFile()) {
    res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${path}`);
    return;
  }
  res.writeHead(200, {
    'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
    'content-length': String(statSync(file).size),
    'cache-control': 'no-store',
  });
  if (req.method === 'HEAD') res.end();
  else if (throttle?.match.test(path)) {
    const data = readFileSync(file);
    let at = 0;
    const send = () => {
      if (res.destroyed) return;
      res.write(data.subarray(at, (at += throttle.bytes)));
      if (at >= data.length) res.end();
      else setTimeout(send, throttle.everyMs);
    };
    send();
  } else createReadStream(file).pipe(res);
}

/** A static file server over `mounts` on 127.0.0.1 and a free port (files `throttle` matches sent slowly). */
export async function startStaticServer(mounts: Mounts, options: { throttle?: Throttle } = {}): Promise<StaticServer> {
  const requests: string[] = [];
  const notFound: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    res.on('finish', () => {
      if (res.statusCode === 404) notFound.push(req.url ?? '');
    });
    serve(mounts, req, res, options.throttle);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    notFound,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

/**
 * What `npm run build` makes (the site, then the library bundle), written to a fresh temporary
 * folder so tests running side by side do not share dist/. Returns the folder.
 */
export async function buildSiteInto(outDir = mkdtempSync(join(tmpdir(), 'patchbay-site-'))): Promise<string> {
  const configFile = resolve(ROOT, 'vite.config.ts');
  await build({ root: ROOT, configFile, logLevel: 'warn', build: { outDir } });
  await build({ root: ROOT, configFile, mode: 'lib', logLevel: 'warn', build: { outDir, emptyOutDir: false } });
  return outDir;
}

/** What a page complained about. */
export interface PageProblems {
  consoleErrors: string[];
  pageErrors: string[];
  /** Content-Security-Policy violations (the event, or Chromium's console message). */
  cspViolations: string[];
  /** alert / confirm / prompt dialogs that opened (each dismissed). */
  dialogs: string[];
  /** Requests to any origin but the allowed one (each aborted). */
  external: string[];
}

/**
 * A fresh context (empty Cache API) whose pages record their problems and whose requests to any
 * origin but `allowedOrigin` are aborted and recorded. `noWebGPU` removes `navigator.gpu` before
 * any page script runs, as in a browser without WebGPU.
 */
export async function recordingContext(
  browser: Browser,
  allowedOrigin: string,
  options: { noWebGPU?: boolean; viewport?: { width: number; height: number } } = {},
): Promise<{ context: BrowserContext; problems: PageProblems }> {
  const context = await browser.newContext({ viewport: options.viewport ?? { width: 1100, height: 900 } });
  const problems: PageProblems = { consoleErrors: [], pageErrors: [], cspViolations: [], dialogs: [], external: [] };
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(allowedOrigin + '/') || url.startsWith('data:') || url.startsWith('blob:')) return route.continue();
    problems.external.push(url);
    return route.abort('blockedbyclient');
  });
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${e.sourceFile}:${e.lineNumber})`);
    });
  });
  if (options.noWebGPU) {
    await context.addInitScript(() => {
      Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true });
    });
  }
  context.on('page', (page) => watch(page, problems));
  return { context, problems };
}

/** Text of demos/ioi/hub.ts that survives minifying: marks the built script that applies ?hub=. */
export const HUB_SCRIPT_MARKER = 'ignoring ?hub=';

/**
 * Holds back by `ms` every script from `origin` whose text contains `marker`. A page that needs
 * such a script to run before another one, and has that order only by luck of timing (say, two
 * chunks that a bundler emitted as separate module scripts), then shows it every time.
 */
export async function holdBackScripts(context: BrowserContext, origin: string, marker: string, ms: number): Promise<void> {
  await context.route(/\.js(\?|$)/, async (route) => {
    if (
      !route
        .request()
        .url()
        .startsWith(origin + '/')
    )
      return route.fallback(); // aborted and recorded
    const response = await route.fetch();
    const body = await response.text();
    if (body.includes(marker)) await new Promise((ok) => setTimeout(ok, ms));
    return route.fulfill({ response, body });
  });
}

function watch(page: Page, problems: PageProblems): void {
  page.on('console', (msg) => {
    const text = msg.text();
    if (/Content Security Policy|CSP violation/i.test(text)) problems.cspViolations.push(text);
    if (msg.type() === 'error') problems.consoleErrors.push(text);
  });
  page.on('pageerror', (err) => problems.pageErrors.push(err.message));
  page.on('dialog', (dialog) => {
    problems.dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    void dialog.dismiss();
  });
}

/** How many elements match `selector` anywhere in the page, inside shadow roots too. */
export function deepCount(page: Page, selector: string): Promise<number> {
  return page.evaluate((sel) => {
    let n = 0;
    const visit = (root: Document | ShadowRoot) => {
      n += root.querySelectorAll(sel).length;
      for (const el of root.querySelectorAll('*')) if (el.shadowRoot) visit(el.shadowRoot);
    };
    visit(document);
    return n;
  }, selector);
}

/**
 * The console errors left once Chromium's "Failed to load resource: 404" lines are accounted for
 * by 404s that are expected (`expected404` matches their paths: a toy model has no
 * tokenizer.json, and the loader asks for it to find out). Fails nothing by itself.
 */
export function unexpectedErrors(problems: PageProblems, server: StaticServer, expected404: RegExp = /\/tokenizer(_config)?\.json$/): string[] {
  const unexplained404 = server.notFound.filter((p) => !expected404.test(new URL(p, 'http://x').pathname));
  return problems.consoleErrors.filter((e) => !(/Failed to load resource: .*404/.test(e) && unexplained404.length === 0));
}
