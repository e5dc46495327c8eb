/**
 * A URL model folder whose files are kept in the browser's Cache API, so a second visit reads
 * the weights from disk instead of downloading them again. Where there is no Cache API (Node,
 * insecure origins) it is a plain URL source. Files that do not exist are not cached.
 *
 * Only a file that checks out is stored: JSON files must parse, and a safetensors file's header
 * must be valid and account for every byte of the file (so a truncated or padded download is
 * caught). A stored entry is checked the same way when it is read; a bad one (a download cut
 * short by an older version, a damaged disk cache) is evicted and downloaded again, once, and
 * the source says so (`notices`, `onNotice`). If the fresh copy is bad too, the error says what
 * is wrong with the file, and nothing is stored.
 */
import { SafetensorsReader } from './safetensors.ts';
import { blobFile, downloadBlob, joinUrl, urlModelSource, type ModelSource, type ProgressFn, type RandomAccessFile } from './source.ts';

export const MODEL_CACHE = 'patchbay-models-v1';

export interface CachedModelSource extends ModelSource {
  /** Names of the files this source served from the cache. */
  readonly fromCache: Set<string>;
  /** What the source had to repair, one sentence each (a damaged cache entry downloaded again). */
  readonly notices: string[];
}

export interface CachedSourceOptions {
  cacheName?: string;
  fetch?: typeof fetch;
  /** The Cache API to use (tests); default the page's `caches`. */
  caches?: CacheStorage;
  /** Called with each notice as it happens (default: `console.warn`). */
  onNotice?: (message: string) => void;
}

async function openCache(storage: CacheStorage | undefined, name: string): Promise<Cache | null> {
  try {
    return storage ? await storage.open(name) : null;
  } catch {
    return null; // e.g. a SecurityError on an opaque origin
  }
}

/** Throws (naming `name` and the problem) unless the file's bytes are what its name promises. */
async function validate(name: string, file: RandomAccessFile, where: string): Promise<void> {
  if (name.endsWith('.safetensors')) {
    // Header and layout: the tensors must tile the data section up to the file's last byte.
    await SafetensorsReader.open(file, where);
  } else if (name.endsWith('.json')) {
    const bytes = await file.read(0, file.size);
    try {
      JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    } catch (e) {
      throw new Error(`${where} is not valid JSON (${(e as Error).message})`, { cause: e });
    }
  }
}

export function cachedUrlModelSource(baseUrl: string, options: CachedSourceOptions = {}): CachedModelSource {
  const inner = urlModelSource(baseUrl, options.fetch);
  const storage = options.caches ?? (typeof caches === 'undefined' ? undefined : caches);
  const fromCache = new Set<string>();
  const notices: string[] = [];
  const notice = (message: string) => {
    notices.push(message);
    (options.onNotice ?? ((m: string) => console.warn(`patchbay: ${m}`)))(message);
  };
  const where = (name: string) => `${inner.describe}/${name}`;

  /** The file as a Blob: from the cache if a valid copy is there, else downloaded, validated and stored. */
  async function get(name: string, onProgress?: ProgressFn): Promise<Blob | null> {
    const url = joinUrl(baseUrl, name);
    const cache = await openCache(storage, options.cacheName ?? MODEL_CACHE);
    const hit = await cache?.match(url);
    if (hit) {
      let problem: string | null = null;
      let blob: Blob | null = null;
      try {
        blob = await hit.blob();
        const stored = Number(hit.headers.get('content-length') ?? blob.size);
        if (stored !== blob.size) throw new Error(`${blob.size} of its ${stored} bytes are there`);
        await validate(name, blobFile(blob), where(name));
      } catch (e) {
        problem = (e as Error).message;
      }
      if (problem === null && blob) {
        fromCache.add(name);
        onProgress?.({ loaded: blob.size, total: blob.size, file: name });
        return blob;
      }
      await cache!.delete(url).catch(() => undefined);
      notice(`the copy of ${name} in this browser's cache was damaged (${problem}); it was removed and ${name} is downloaded again`);
    }
    const blob = await downloadBlob(baseUrl, name, options.fetch, onProgress);
    if (!blob) return null;
    await validate(name, blobFile(blob), where(name)); // a bad download is reported as what it is, and not stored
    if (cache) {
      // A full disk or quota only costs the next visit a download.
      await cache.put(url, new Response(blob, { headers: { 'content-length': String(blob.size) } })).catch(() => undefined);
    }
    return blob;
  }

  return {
    describe: inner.describe,
    fromCache,
    notices,
    async file(name, onProgress) {
      const blob = await get(name, onProgress);
      return blob && new Uint8Array(await blob.arrayBuffer());
    },
    async open(name, onProgress) {
      const blob = await get(name, onProgress);
      return blob && blobFile(blob, name);
    },
  };
}
