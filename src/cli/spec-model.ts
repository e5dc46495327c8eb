/**
 * Where the CLI finds a spec's model: a preset (`induction-2l` ships in demos/models/, the Hub
 * presets come from the Hugging Face Hub), a folder path or URL (a relative path is relative to
 * the spec file), or a Hub repository at a revision. Also the reverse, for `--spec-out`: the
 * model argument of a command, written relative to the spec file it goes in.
 */
import { isAbsolute, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_HUB, PRESETS } from '../model/presets.ts';
import type { ModelRef } from '../experiments/spec.ts';
import { UsageError } from './args.ts';

/** The repository's demos/models/ folder, where the local presets live. */
const LOCAL_MODELS = fileURLToPath(new URL('../../demos/models/', import.meta.url));

const isUrl = (s: string) => /^https?:\/\//i.test(s);

/** A folder path or an http(s) URL for the model argument of `withModel`. */
export function modelLocation(ref: ModelRef, specDir: string, hub = process.env.PATCHBAY_HUB ?? DEFAULT_HUB): string {
  if ('preset' in ref) {
    const p = PRESETS[ref.preset];
    if (!p) throw new UsageError(`spec.model.preset: unknown preset "${ref.preset}" (presets: ${Object.keys(PRESETS).join(', ')})`);
    if (p.local) return resolve(LOCAL_MODELS, p.local);
    return `${hub.replace(/\/+$/, '')}/${p.repo}/resolve/main/`;
  }
  if ('url' in ref) return isUrl(ref.url) ? ref.url : resolve(specDir, ref.url);
  return `${hub.replace(/\/+$/, '')}/${ref.hub}/resolve/${encodeURIComponent(ref.revision ?? 'main')}/`;
}

/** Where the CLI finds a spec's SAE (`spec.sae.url`): a URL or hf:// path as it is, a relative folder relative to the spec file. */
export function saeLocation(url: string, specDir: string): string {
  return /^(https?|hf):\/\//i.test(url) ? url : resolve(specDir, url);
}

/** The spec's `model` for a command's model argument, relative to the folder the spec is written in. */
export function modelRefFor(modelArg: string, specDir: string): ModelRef {
  if (isUrl(modelArg)) {
    const m = /^https:\/\/huggingface\.co\/([\w.-]+\/[\w.-]+)\/resolve\/([^/]+)\/?$/.exec(modelArg);
    return m ? { hub: m[1], revision: decodeURIComponent(m[2]) } : { url: modelArg };
  }
  const abs = resolve(modelArg);
  for (const [name, p] of Object.entries(PRESETS)) if (p.local && resolve(LOCAL_MODELS, p.local) === abs) return { preset: name };
  const rel = relative(specDir, abs) || '.';
  return { url: isAbsolute(rel) ? rel : rel.startsWith('.') ? rel : `./${rel}` };
}

/** A spec's `sae.url` for a command's --sae argument: URLs and hf:// paths as they are, a folder relative to the spec's folder. */
export function saeRefFor(saeArg: string, specDir: string): string {
  if (/^(https?|hf):\/\//i.test(saeArg)) return saeArg;
  const rel = relative(specDir, resolve(saeArg)) || '.';
  return isAbsolute(rel) ? rel : rel.startsWith('.') ? rel : `./${rel}`;
}
