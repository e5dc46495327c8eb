/**
 * The SAE a spec splices (`spec.sae`), loaded for `patchbay run` and `patchbay snapshot` on the
 * model's GPU: a folder relative to the spec file, a URL, or an hf:// path.
 */
import type { Gpu } from '../gpu/device.ts';
import type { Sae } from '../features/sae.ts';
import { loadSae } from '../features/sae-load.ts';
import type { ExperimentSpec } from '../experiments/spec.ts';
import { nodeSaeSource } from './sae-source.ts';
import { saeLocation } from './spec-model.ts';

/** Runs `fn` with the spec's SAE loaded (null when the spec has none), and frees it however `fn` ends. */
export async function withSpecSae<T>(gpu: Gpu, spec: ExperimentSpec, specDir: string, fn: (sae: Sae | null) => Promise<T>): Promise<T> {
  if (!spec.sae) return fn(null);
  const sae = await loadSae(gpu, await nodeSaeSource(saeLocation(spec.sae.url, specDir)));
  try {
    return await fn(sae);
  } finally {
    sae.destroy();
  }
}
