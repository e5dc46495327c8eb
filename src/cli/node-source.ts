/**
 * Turns the CLI's model argument into a `ModelSource`: an http(s) URL is fetched, anything else
 * is a local folder read through `fs.openAsBlob` (lazy: nothing is read until the loader asks,
 * and only the files the loader asks for).
 */
import { openAsBlob } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { blobModelSource, urlModelSource, type ModelSource } from '../model/source.ts';
import { UsageError } from './args.ts';

/** Files a Hugging Face checkpoint folder may need: the config, the index, the weights, the tokenizer. */
function isModelFile(name: string): boolean {
  if (name === 'tokenizer.json' || name === 'tokenizer_config.json') return true;
  // Shards are named by the index (model-00001-of-00002.safetensors), so take every
  // .safetensors file rather than parse the index twice; the loader reports missing shards.
  return name === 'config.json' || name === 'model.safetensors.index.json' || name.endsWith('.safetensors');
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

  const files = new Map<string, Blob>();
  for (const entry of await readdir(arg, { withFileTypes: true })) {
    if (!isModelFile(entry.name)) continue;
    const path = join(arg, entry.name);
    // Follow symlinks (Hub caches link snapshot files into blobs/), but skip what is not a file.
    if (!(await stat(path)).isFile()) continue;
    files.set(entry.name, await openAsBlob(path));
  }
  // Loader messages read "<describe>/model.safetensors: ...", so describe is the path as given.
  return blobModelSource(files, arg.replace(/\/+$/, '') || arg);
}
