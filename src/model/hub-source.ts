/**
 * Files of a Hugging Face Hub repository (or a folder inside one), with an optional access token
 * for gated repositories, and a message that says what to do when the Hub refuses.
 *
 *   hubSource('google/gemma-scope-2-270m-pt', { path: 'resid_post/layer_12_width_16k_l0_medium' })
 *   parseHubPath('hf://google/gemma-scope-2-270m-pt/resid_post/layer_12_width_16k_l0_medium@main')
 *
 * The Hub answers 401 (anonymous) or 403 (signed in, licence not accepted) for a gated or private
 * repository, and 401 for one that does not exist, so the message names all three.
 */
import { joinUrl, urlModelSource, type ModelSource } from './source.ts';

export const DEFAULT_HUB = 'https://huggingface.co';

export interface HubOptions {
  /** A folder inside the repository. */
  path?: string;
  /** Branch, tag or commit (default "main"). */
  revision?: string;
  /** A Hugging Face access token, sent as `Authorization: Bearer …` (gated repositories). */
  token?: string;
  /** The Hub's address (mirrors, tests). */
  hub?: string;
  fetch?: typeof fetch;
}

/** The Hub refused a file: gated, private, or absent. */
export class HubAccessError extends Error {
  override name = 'HubAccessError';
}

/** `hf://owner/repo[/folder][@revision]` as its parts, or null for anything else. */
export function parseHubPath(s: string): { repo: string; path: string; revision?: string } | null {
  const m = /^hf:\/\/([^/@]+\/[^/@]+)(?:\/([^@]*))?(?:@(.+))?$/.exec(s);
  if (!m) return null;
  return { repo: m[1], path: (m[2] ?? '').replace(/\/+$/, ''), ...(m[3] ? { revision: m[3] } : {}) };
}

/** The URL of the repository folder's files: `{hub}/{repo}/resolve/{revision}/{path}`. */
export function hubFolderUrl(repo: string, options: HubOptions = {}): string {
  const base = `${(options.hub ?? DEFAULT_HUB).replace(/\/+$/, '')}/${repo}/resolve/${encodeURIComponent(options.revision ?? 'main')}`;
  return options.path ? joinUrl(base, options.path) : base;
}

export function hubSource(repo: string, options: HubOptions = {}): ModelSource {
  const inner = options.fetch ?? globalThis.fetch?.bind(globalThis);
  if (!inner) throw new Error('no fetch on this host: pass a fetch implementation to read the Hub');
  const authed: typeof fetch = async (input, init) => {
    const headers = new Headers(init?.headers);
    if (options.token) headers.set('Authorization', `Bearer ${options.token}`);
    const res = await inner(input, { ...init, headers });
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel().catch(() => undefined);
      const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
      throw new HubAccessError(
        `the Hugging Face Hub refused ${url} (HTTP ${res.status}): ${repo} is gated or private` +
          (options.token
            ? `, and this token has no access to it: accept its licence at https://huggingface.co/${repo} with the token's account`
            : `, or does not exist. If it is gated, accept its licence at https://huggingface.co/${repo} and supply an access token (https://huggingface.co/settings/tokens), or use an ungated copy of the same files`),
      );
    }
    return res;
  };
  const src = urlModelSource(hubFolderUrl(repo, options), authed);
  return { ...src, describe: `hf://${repo}${options.path ? `/${options.path}` : ''}${options.revision ? `@${options.revision}` : ''}` };
}
