/**
 * Turns the CLI's model argument into a `ModelSource`: an http(s) URL is fetched, anything else
 * is a local folder whose files are read lazily: small ones (config, index) whole when the
 * loader asks, weights by byte range through a file handle, one tensor at a time. (Not
 * `fs.openAsBlob`: in Node 20 its Blob reports a file over 4 GiB with its size modulo 2^32.)
 */
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { urlModelSource, type ModelSource, type ProgressFn, type RandomAccessFile } from '../model/source.ts';
import { UsageError } from './args.ts';

/** Files a Hugging Face checkpoint folder may need: the config, the index, the weights, the tokenizer. */
function isModelFile(name: string): boolean {
  if (name === 'tokenizer.json' || name === 'tokenizer_config.json') return true;
  // Shards are named by the index (model-00001-of-00002.safetensors), so take every
  // .safetensors file rather than parse the index twice; the loader reports missing shards.
  return name === 'config.json' || name === 'model.safetensors.index.json' || name.endsWith('.safetensors');
}

/** A local file read by byte range: each read opens, reads and closes it (no handle outlives a read). */
export function nodeFile(path: string, size: number, label: string, onProgress?: ProgressFn): RandomAccessFile {
  let loaded = 0;
  return {
    size,
    async read(offset, length) {
      const n = Math.max(0, Math.min(length, size - offset));
      const out = new Uint8Array(n);
      const fh = await open(path, 'r');
      try {
        for (let got = 0; got < n;) {
          const { bytesRead } = await fh.read(out, got, n - got, offset + got);
          if (bytesRead === 0) throw new Error(`${path} ended at byte ${offset + got}; it was ${size} bytes when opened (changed on disk?)`);
          got += bytesRead;
        }
      } finally {
        await fh.close();
      }
      loaded = Math.min(size, loaded + n);
      onProgress?.({ loaded, total: size, file: label });
      return out;
    },
  };
}

export async function nodeModelSource(arg: string): Promise<ModelSource> {
  if (/^https?:\/\//i.test(arg)) return urlModelSource(arg);

  const info = await stat(arg).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') throw new UsageError(`no such model folder: ${arg}`);
    throw new Error(`cannot read model folder ${arg}: ${e.message}`);
  });
  if (!info.isDirectory()) {
    throw new UsageError(`${arg} is a file, not a model folder: pass the folder holding config.json and model.safetensors`);
  }

  const files = new Map<string, { path: string; size: number }>();
  for (const entry of await readdir(arg, { withFileTypes: true })) {
    if (!isModelFile(entry.name)) continue;
    const path = join(arg, entry.name);
    // Follow symlinks (Hub caches link snapshot files into blobs/), but skip what is not a file.
    const s = await stat(path);
    if (s.isFile()) files.set(entry.name, { path, size: s.size });
  }
  return {
    // Loader messages read "<describe>/model.safetensors: ...", so describe is the path as given.
    describe: arg.replace(/\/+$/, '') || arg,
    async file(name, onProgress) {
      const f = files.get(name);
      if (!f) return null;
      const bytes = new Uint8Array(await readFile(f.path));
      onProgress?.({ loaded: bytes.length, total: bytes.length, file: name });
      return bytes;
    },
    async open(name, onProgress) {
      const f = files.get(name);
      return f ? nodeFile(f.path, f.size, name, onProgress) : null;
    },
  };
}
