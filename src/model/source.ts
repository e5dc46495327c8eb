/**
 * Where model bytes come from: in-memory buffers, Blobs / Files (a dropped folder), or HTTP.
 * Host-neutral: uses only `fetch`, `Blob`, `ReadableStream` and `URL`, which both browsers and
 * Node 20 provide.
 */

/** Progress of a read. `total` is 0 while unknown. */
export type ProgressFn = (p: { loaded: number; total: number; file?: string }) => void;

export interface ReadOptions {
  onProgress?: ProgressFn;
  /** Replaces the global `fetch` (tests, auth headers, caching). */
  fetch?: typeof fetch;
  /** Name for progress reports (`file`) and errors; defaults to the URL or File name. */
  label?: string;
}

export type ByteSource = ArrayBuffer | Uint8Array | Blob | string | URL;

/** Fetching a file failed: the network, an HTTP status, or a body cut short. (Not: a file that arrived but is invalid.) */
export class DownloadError extends Error {
  override name = 'DownloadError';
}

function resolveFetch(f: typeof fetch | undefined): typeof fetch {
  if (f) return f;
  if (typeof globalThis.fetch !== 'function') {
    throw new Error('no fetch on this host: pass a fetch implementation to read URLs');
  }
  // Bound: browsers throw "Illegal invocation" when fetch is called off its global.
  return globalThis.fetch.bind(globalThis);
}

async function fetchOrThrow(url: string, f: typeof fetch): Promise<Response> {
  try {
    return await f(url);
  } catch (e) {
    throw new DownloadError(`fetching ${url} failed: ${(e as Error).message ?? String(e)}`, { cause: e });
  }
}

/**
 * Drain a stream into one exact-length Uint8Array, reporting progress. `expected` (bytes, 0 if
 * unknown) sizes the buffer up front; a stream that delivers more (e.g. a content-length of a
 * compressed body) still reads correctly.
 */
async function drain(stream: ReadableStream<Uint8Array>, expected: number, label: string | undefined, onProgress: ProgressFn | undefined): Promise<Uint8Array> {
  const report = (loaded: number, total: number) => onProgress?.({ loaded, total, ...(label ? { file: label } : {}) });
  const reader = stream.getReader();
  let buf = new Uint8Array(expected > 0 ? expected : 1 << 16);
  let loaded = 0;
  report(0, expected);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!value || value.length === 0) continue;
      if (loaded + value.length > buf.length) {
        const grown = new Uint8Array(Math.max(buf.length * 2, loaded + value.length));
        grown.set(buf.subarray(0, loaded));
        buf = grown;
      }
      buf.set(value, loaded);
      loaded += value.length;
      // Never report a total below what has arrived.
      report(loaded, expected > 0 ? Math.max(expected, loaded) : 0);
    }
  } finally {
    reader.releaseLock();
  }
  report(loaded, loaded);
  return loaded === buf.length ? buf : buf.slice(0, loaded);
}

/** Read a response body (already checked OK) with progress from content-length. */
export async function readResponse(res: Response, url: string, opts: ReadOptions): Promise<Uint8Array> {
  const len = Number(res.headers.get('content-length') ?? 0);
  const expected = Number.isSafeInteger(len) && len > 0 ? len : 0;
  const label = opts.label ?? url;
  try {
    if (!res.body) {
      const b = new Uint8Array(await res.arrayBuffer());
      opts.onProgress?.({ loaded: b.length, total: b.length, file: label });
      return b;
    }
    return await drain(res.body, expected, label, opts.onProgress);
  } catch (e) {
    throw new DownloadError(`reading ${url} failed: ${(e as Error).message ?? String(e)}`, { cause: e });
  }
}

/** Fetch `url` and return its bytes; any non-OK status throws naming the URL and status. */
async function readUrl(url: string, opts: ReadOptions): Promise<Uint8Array> {
  const res = await fetchOrThrow(url, resolveFetch(opts.fetch));
  if (!res.ok) throw new DownloadError(`fetching ${url} failed: HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`);
  return readResponse(res, url, opts);
}

/** All bytes of `src`. Buffers are returned without copying. */
export async function readBytes(src: ByteSource, opts: ReadOptions = {}): Promise<Uint8Array> {
  if (typeof src === 'string' || src instanceof URL) return readUrl(String(src), opts);
  if (src instanceof Uint8Array || src instanceof ArrayBuffer) {
    const b = src instanceof Uint8Array ? src : new Uint8Array(src);
    opts.onProgress?.({ loaded: b.length, total: b.length, ...(opts.label ? { file: opts.label } : {}) });
    return b;
  }
  if (typeof Blob !== 'undefined' && src instanceof Blob) {
    const label = opts.label ?? (typeof (src as File).name === 'string' ? (src as File).name : undefined);
    try {
      return await drain(src.stream() as ReadableStream<Uint8Array>, src.size, label, opts.onProgress);
    } catch (e) {
      throw new Error(`reading ${label ?? 'blob'} failed: ${(e as Error).message ?? String(e)}`, { cause: e });
    }
  }
  throw new TypeError(`readBytes: unsupported source ${Object.prototype.toString.call(src)}`);
}

/** A file read by byte range: weights are read one tensor at a time, never whole. */
export interface RandomAccessFile {
  /** Bytes in the file. */
  readonly size: number;
  /** Bytes [offset, offset + length), fewer only past the end of the file. */
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** Reports each read's bytes as progress through the file (reads are not repeated, so they add up). */
function progressOf(size: number, label: string | undefined, onProgress: ProgressFn | undefined): (n: number) => void {
  let loaded = 0;
  return (n) => {
    loaded = Math.min(size, loaded + n);
    onProgress?.({ loaded, total: size, ...(label ? { file: label } : {}) });
  };
}

/** Bytes in memory as a random-access file. */
export function bytesFile(bytes: Uint8Array, label?: string, onProgress?: ProgressFn): RandomAccessFile {
  const advance = progressOf(bytes.length, label, onProgress);
  return {
    size: bytes.length,
    async read(offset, length) {
      const b = bytes.subarray(offset, offset + length);
      advance(b.length);
      return b;
    },
  };
}

/** A Blob (a File, a dropped file, `fs.openAsBlob`) as a random-access file: each read slices it, so only what is read is loaded. */
export function blobFile(blob: Blob, label?: string, onProgress?: ProgressFn): RandomAccessFile {
  const advance = progressOf(blob.size, label, onProgress);
  return {
    size: blob.size,
    async read(offset, length) {
      try {
        const b = new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
        advance(b.length);
        return b;
      } catch (e) {
        throw new Error(`reading ${label ?? 'blob'} bytes ${offset} .. ${offset + length} failed: ${(e as Error).message ?? String(e)}`, { cause: e });
      }
    },
  };
}

/**
 * A response body as a Blob of its chunks, with progress (no single array of the whole file,
 * which V8 caps at 4 GiB; a browser may keep a large Blob on disk).
 */
export async function responseBlob(res: Response, url: string, opts: ReadOptions): Promise<Blob> {
  const len = Number(res.headers.get('content-length') ?? 0);
  const expected = Number.isSafeInteger(len) && len > 0 ? len : 0;
  const label = opts.label ?? url;
  const report = (loaded: number, total: number) => opts.onProgress?.({ loaded, total, file: label });
  try {
    if (!res.body) {
      const b = await res.blob();
      report(b.size, b.size);
      return b;
    }
    const chunks: Uint8Array[] = [];
    let loaded = 0;
    report(0, expected);
    const reader = res.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (!value || value.length === 0) continue;
        chunks.push(value);
        loaded += value.length;
        report(loaded, expected > 0 ? Math.max(expected, loaded) : 0);
      }
    } finally {
      reader.releaseLock();
    }
    report(loaded, loaded);
    // A body shorter than its content-length (not re-encoded, which changes the length) was cut short.
    if (expected > 0 && loaded < expected && !res.headers.get('content-encoding')) {
      throw new Error(`the download stopped after ${loaded} of its ${expected} bytes`);
    }
    return new Blob(chunks as BlobPart[]);
  } catch (e) {
    throw new DownloadError(`reading ${url} failed: ${(e as Error).message ?? String(e)}`, { cause: e });
  }
}

/** A folder of model files. */
export interface ModelSource {
  /** For messages, e.g. "https://host/models/gpt2" or "3 dropped files". */
  describe: string;
  /** The named file's bytes, or `null` when it does not exist. Other failures throw. */
  file(name: string, onProgress?: ProgressFn): Promise<Uint8Array | null>;
  /**
   * The named file for reading by byte range (weights), or `null` when it does not exist; its
   * reads report progress. Without it, the loader reads the file whole through `file`.
   */
  open?(name: string, onProgress?: ProgressFn): Promise<RandomAccessFile | null>;
}

/**
 * A file name from a model folder's index (a weights shard), checked to be a plain name inside
 * that folder: not absolute, no scheme or host, no `..` or `.` segment, no backslash. Throws
 * naming `what`.
 */
export function checkFolderFileName(name: string, what: string): void {
  const segments = name.split('/');
  const bad =
    name.length === 0 ||
    name.startsWith('/') ||
    name.includes('\\') ||
    /^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(name) || // a scheme: https:, data:, file:
    segments.some((s) => s === '' || s === '.' || s === '..' || /%2e%2e|%2f|%5c/i.test(s));
  if (bad) {
    throw new Error(`${what}: ${JSON.stringify(name)} is not a file name inside the model's folder (no "..", absolute paths, URLs or other hosts)`);
  }
}

/** `base` + '/' + `name`, with exactly one slash between them; path segments of `name` are escaped. */
export function joinUrl(base: string, name: string): string {
  const path = name
    .replace(/^\/+/, '')
    .split('/')
    .map((s) => encodeURIComponent(s))
    .join('/');
  return `${base.replace(/\/+$/, '')}/${path}`;
}

/** `baseUrl` without its trailing slashes, for messages ("<base>/model.safetensors: ..."). */
function trimSlashes(baseUrl: string): string {
  return baseUrl.replace(/\/+$/, '') || baseUrl;
}

/**
 * `joinUrl(base, name)`, refusing a name that would leave the base folder (`..`, an absolute
 * path or URL, another origin): a model folder's index must not send the loader elsewhere.
 */
function urlInFolder(baseUrl: string, name: string): string {
  checkFolderFileName(name, trimSlashes(baseUrl));
  const url = joinUrl(baseUrl, name);
  const folder = `${trimSlashes(baseUrl)}/`;
  // Resolution (relative to an arbitrary origin for path-only bases) must keep the prefix.
  const origin = 'http://base.invalid';
  const resolved = new URL(url, origin).href;
  if (!resolved.startsWith(new URL(folder, origin).href)) {
    throw new Error(`${trimSlashes(baseUrl)}: ${JSON.stringify(name)} resolves outside the model's folder (${resolved})`);
  }
  return url;
}

async function fetchFile(baseUrl: string, name: string, fetchImpl: typeof fetch | undefined): Promise<{ url: string; res: Response } | null> {
  const url = urlInFolder(baseUrl, name);
  const res = await fetchOrThrow(url, resolveFetch(fetchImpl));
  if (res.status === 404) {
    await res.body?.cancel().catch(() => undefined);
    return null;
  }
  if (!res.ok) throw new DownloadError(`fetching ${url} failed: HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`);
  return { url, res };
}

/** `name` in the folder at `baseUrl`, downloaded whole into a Blob (null on 404), with progress. */
export async function downloadBlob(baseUrl: string, name: string, fetchImpl?: typeof fetch, onProgress?: ProgressFn): Promise<Blob | null> {
  const got = await fetchFile(baseUrl, name, fetchImpl);
  return got && responseBlob(got.res, got.url, { label: name, ...(onProgress ? { onProgress } : {}) });
}

/**
 * Files served over HTTP under `baseUrl`. HTTP 404 means "absent". Names stay inside the
 * folder. `open` downloads a file whole (into a Blob of its chunks), then reads it by range.
 */
export function urlModelSource(baseUrl: string, fetchImpl?: typeof fetch): ModelSource {
  return {
    describe: trimSlashes(baseUrl),
    async file(name, onProgress) {
      const got = await fetchFile(baseUrl, name, fetchImpl);
      return got && readResponse(got.res, got.url, { label: name, ...(onProgress ? { onProgress } : {}) });
    },
    async open(name, onProgress) {
      const blob = await downloadBlob(baseUrl, name, fetchImpl, onProgress);
      return blob && blobFile(blob, name); // the download reported the progress
    },
  };
}

/** Files held in memory or picked by the user, keyed by file name (e.g. "config.json"). */
export function blobModelSource(files: Map<string, Blob> | Record<string, Blob | ArrayBuffer | Uint8Array>, describe = 'files'): ModelSource {
  const map: Map<string, Blob | ArrayBuffer | Uint8Array> = files instanceof Map ? files : new Map(Object.entries(files));
  return {
    describe,
    async file(name, onProgress) {
      const f = map.get(name);
      if (f === undefined) return null;
      return readBytes(f, { label: name, ...(onProgress ? { onProgress } : {}) });
    },
    async open(name, onProgress) {
      const f = map.get(name);
      if (f === undefined) return null;
      if (f instanceof Uint8Array) return bytesFile(f, name, onProgress);
      if (f instanceof ArrayBuffer) return bytesFile(new Uint8Array(f), name, onProgress);
      return blobFile(f, name, onProgress);
    },
  };
}
