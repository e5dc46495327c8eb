/** What `<pb-model>` says when a model cannot be loaded: a message a reader can act on, for each way loading fails. */
import { NoWebGPUError } from '../gpu/errors.ts';
import { UnsupportedArchitectureError } from '../model/normalize-config.ts';
import { DownloadError } from '../model/source.ts';
import { PRESETS } from '../model/presets.ts';

export function describeLoadError(e: unknown, src: string): string {
  const msg = e instanceof Error ? e.message : String(e);
  if (e instanceof NoWebGPUError) return `This browser cannot run the model: ${msg}.`;
  if (e instanceof UnsupportedArchitectureError) return `Unsupported model "${src}": ${msg}`;
  // The Hub answers 401 / 403 for a gated or private repository: say which, and what to do.
  if (e instanceof DownloadError && /HTTP 40[13]\b/.test(msg)) {
    return (
      `Download refused for "${src}": ${msg}. ` +
      (PRESETS[src]?.access ??
        "The Hugging Face Hub refuses gated or private repositories to anonymous readers: accept the licence on the repository's page and give <pb-model> an access token (its token property), or use an ungated copy of the same files.")
    );
  }
  // Only a failed transfer is a failed download; a file that arrived but is invalid says what is wrong with it.
  if (e instanceof DownloadError) return `Download failed for "${src}": ${msg}`;
  return `Could not load "${src}": ${msg}`;
}
