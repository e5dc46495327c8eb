/**
 * Turns the CLI's `--sae` argument into a `ModelSource` for `loadSae`: an http(s) URL or an
 * `hf://owner/repo/folder` path is fetched, anything else is a local folder whose SAE files
 * (cfg.json, sae_weights.safetensors, config.json, params.safetensors, params.npz) are read
 * lazily through `fs.openAsBlob`.
 */
import { openAsBlob } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { saeSource } from '../features/sae-load.ts';
import { blobModelSource, type ModelSource } from '../model/source.ts';
import { UsageError } from './args.ts';

const SAE_FILES = new Set(['cfg.json', 'sae_weights.safetensors', 'config.json', 'params.safetensors', 'params.npz']);

export async function nodeSaeSource(arg: string): Promise<ModelSource> {
  if (/^(https?|hf):\/\//i.test(arg)) return saeSource(arg, { token: process.env.HF_TOKEN || undefined });
  const info = await stat(arg).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') throw new UsageError(`no such SAE folder: ${arg}`);
    throw new Error(`cannot read SAE folder ${arg}: ${e.message}`);
  });
  if (!info.isDirectory()) throw new UsageError(`${arg} is a file, not an SAE folder: pass the folder holding cfg.json + sae_weights.safetensors (or params.npz, or config.json + params.safetensors)`);
  const files = new Map<string, Blob>();
  for (const entry of await readdir(arg, { withFileTypes: true })) {
    if (!SAE_FILES.has(entry.name)) continue;
    const path = join(arg, entry.name);
    if ((await stat(path)).isFile()) files.set(entry.name, await openAsBlob(path));
  }
  // The describe string carries the path, so a Gemma Scope params.npz's hook is read from it.
  return blobModelSource(files, arg.replace(/\/+$/, '') || arg);
}
