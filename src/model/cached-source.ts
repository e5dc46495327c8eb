/**
 * A URL model folder whose files are kept in the browser's Cache API, so a second visit reads
 * the weights from disk instead of downloading them again. Where there is no Cache API (Node,
 * insecure origins) it is a plain URL source. Files that do not exist are not cached.
 */
import { joinUrl, readResponse, urlModelSource, type ModelSource } from './source.ts';

export const MODEL_CACHE = 'patchbay-models-v1';

export interface CachedModelSource extends ModelSource {
  /** Names of the files this source served from the cache. */
  readonly fromCache: Set<string>;
}

async function openCache(name: string): Promise<Cache | null> {
  try {
    return typeof caches === 'undefined' ? null : await caches.open(name);
  } catch {
    return null; // e.g. a SecurityError on an opaque origin
  }
}

export function cachedUrlModelSource(baseUrl: string, options: { cacheName?: string; fetch?: typeof fetch } = {}): CachedModelSource {
  const inner = urlModelSource(baseUrl, options.fetch);
  const fromCache = new Set<string>();
  return {
    describe: baseUrl,
    fromCache,
    async file(name, onProgress) {
      const url = joinUrl(baseUrl, name);
      const cache = await openCache(options.cacheName ?? MODEL_CACHE);
      const hit = await cache?.match(url);
      if (hit) {
        fromCache.add(name);
        return readResponse(hit, url, { label: name, ...(onProgress ? { onProgress } : {}) });
      }
      const bytes = await inner.file(name, onProgress);
      if (bytes && cache) {
        const body = new Uint8Array(bytes); // the cache keeps its own copy
        // A full disk or quota only costs the next visit a download.
        await cache.put(url, new Response(body, { headers: { 'content-length': String(body.length) } })).catch(() => undefined);
      }
      return bytes;
    },
  };
}
