/**
 * The browser cache keeps only files that check out. A download cut short or a truncated file
 * is refused with what is wrong with it (not "Download failed") and is not stored; a damaged
 * entry already in the cache is evicted and downloaded again, once, with a notice; a bad file
 * on the server after that is an error, and the cache stays empty. Node has no Cache API, so
 * the test gives the source a small in-memory one with the same methods.
 */
import { describe, expect, it } from 'vitest';
import { cachedUrlModelSource } from '../../src/model/cached-source.ts';
import { loadModel } from '../../src/hooks/load.ts';
import { DownloadError } from '../../src/model/source.ts';
import { describeLoadError } from '../../src/components/load-error.ts';
import { fixtureBytes } from './fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';

const BASE = 'https://models.example/toy';
const NAME = 'tiny-gpt2-random';

/** An in-memory CacheStorage: one Cache, responses stored as bytes and headers. */
function memoryCaches() {
  const entries = new Map<string, { body: Uint8Array; headers: [string, string][] }>();
  const cache = {
    async match(url: string) {
      const e = entries.get(url);
      return e ? new Response(e.body as Uint8Array<ArrayBuffer>, { headers: e.headers }) : undefined;
    },
    async put(url: string, res: Response) {
      entries.set(url, { body: new Uint8Array(await res.arrayBuffer()), headers: [...res.headers] });
    },
    async delete(url: string) {
      return entries.delete(url);
    },
  };
  return { caches: { open: async () => cache } as unknown as CacheStorage, entries };
}

/** Serves the fixture's files; `weights` replaces model.safetensors' bytes; `cut` sends only that many bytes under the full content-length. */
function server(weights?: Uint8Array, cut?: number) {
  const requested: string[] = [];
  const f = (async (input: RequestInfo | URL) => {
    const url = String(input);
    requested.push(url);
    const name = url.slice(BASE.length + 1);
    const body = name === 'config.json' ? fixtureBytes(NAME, 'config.json') : name === 'model.safetensors' ? (weights ?? fixtureBytes(NAME, 'model.safetensors')) : null;
    if (!body) return new Response('', { status: 404 });
    const sent = cut === undefined || name !== 'model.safetensors' ? body : body.subarray(0, cut);
    const stream = new ReadableStream<Uint8Array>({
      start(ctl) {
        ctl.enqueue(sent.slice());
        ctl.close();
      },
    });
    return new Response(stream, { headers: { 'content-length': String(body.length) } });
  }) as typeof fetch;
  return { fetch: f, weightRequests: () => requested.filter((u) => u.endsWith('/model.safetensors')).length };
}

const good = () => fixtureBytes(NAME, 'model.safetensors');
const truncated = () => good().slice(0, good().length - 1000);

describe('the cached URL source', () => {
  it('stores a good download, and serves the next load from the cache', async () => {
    const { caches, entries } = memoryCaches();
    const a = server();
    const first = cachedUrlModelSource(BASE, { fetch: a.fetch, caches });
    (await loadModel(await testGpu(), first)).destroy();
    expect(entries.has(`${BASE}/model.safetensors`)).toBe(true);
    const b = server();
    const second = cachedUrlModelSource(BASE, { fetch: b.fetch, caches });
    (await loadModel(await testGpu(), second)).destroy();
    expect(b.weightRequests()).toBe(0);
    expect(second.fromCache.has('model.safetensors')).toBe(true);
    expect(second.notices).toEqual([]);
  });

  it('a truncated file is refused for what it is and not stored', async () => {
    const { caches, entries } = memoryCaches();
    const source = cachedUrlModelSource(BASE, { fetch: server(truncated()).fetch, caches });
    const err = await loadModel(await testGpu(), source).catch((e: Error) => e);
    expect(String(err)).toMatch(/toy\/model\.safetensors: .*(past the data section|gap|bytes after the last tensor)/);
    expect(describeLoadError(err, 'toy')).toMatch(/^Could not load "toy": /);
    expect(entries.has(`${BASE}/model.safetensors`)).toBe(false);
  });

  it('a download cut short (fewer bytes than its content-length) is a download error, and not stored', async () => {
    const { caches, entries } = memoryCaches();
    const source = cachedUrlModelSource(BASE, { fetch: server(undefined, 5000).fetch, caches });
    const err = await loadModel(await testGpu(), source).catch((e: Error) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect(String(err)).toMatch(/the download stopped after 5000 of its \d+ bytes/);
    expect(describeLoadError(err, 'toy')).toMatch(/^Download failed for "toy": /);
    expect(entries.has(`${BASE}/model.safetensors`)).toBe(false);
  });

  it('a damaged cache entry is evicted and downloaded again, once, saying so', async () => {
    const { caches, entries } = memoryCaches();
    entries.set(`${BASE}/model.safetensors`, { body: truncated(), headers: [['content-length', String(truncated().length)]] });
    const seen: string[] = [];
    const srv = server();
    const source = cachedUrlModelSource(BASE, { fetch: srv.fetch, caches, onNotice: (m) => seen.push(m) });
    (await loadModel(await testGpu(), source)).destroy();
    expect(srv.weightRequests()).toBe(1);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatch(/the copy of model\.safetensors in this browser's cache was damaged \(.*\); it was removed and model\.safetensors is downloaded again/);
    expect(source.notices).toEqual(seen);
    expect(entries.get(`${BASE}/model.safetensors`)!.body).toEqual(good());
  });

  it("a damaged entry and a bad file on the server: one download, the file's problem, nothing stored", async () => {
    const { caches, entries } = memoryCaches();
    entries.set(`${BASE}/model.safetensors`, { body: truncated(), headers: [] });
    const srv = server(truncated());
    const source = cachedUrlModelSource(BASE, { fetch: srv.fetch, caches, onNotice: () => undefined });
    await expect(loadModel(await testGpu(), source)).rejects.toThrow(/model\.safetensors: /);
    expect(srv.weightRequests()).toBe(1);
    expect(entries.has(`${BASE}/model.safetensors`)).toBe(false);
  });
});
