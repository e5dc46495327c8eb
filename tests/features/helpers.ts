/** Fixture SAEs (tests/fixtures/saes/, tests/fixtures/tiny-gemma3-random/sae-resid-post-3/) in Node. */
import { openAsBlob, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { blobModelSource, type ModelSource } from '../../src/model/source.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { FIXTURES } from '../helpers/fixtures.ts';

export const SAE_FIXTURES = join(FIXTURES, 'saes');
export const GEMMA_SAE = join(FIXTURES, 'tiny-gemma3-random', 'sae-resid-post-3');

/** Every file of a fixture folder (but its reference) as a blob source described by the folder path. */
export async function saeFolder(dir: string): Promise<ModelSource> {
  const files: Record<string, Blob> = {};
  for (const f of readdirSync(dir)) if (f !== 'reference.safetensors') files[f] = await openAsBlob(join(dir, f));
  return blobModelSource(files, dir);
}

export function saeReference(dir: string): SafetensorsFile {
  return new SafetensorsFile(new Uint8Array(readFileSync(join(dir, 'reference.safetensors'))), `${dir}/reference.safetensors`);
}

/**
 * feature_patch_ref.py (float64): exact[p][f] = m(corrupted run with feature f at p patched from
 * the clean run) - m(corrupted run), for sae_grads.json's gemma_err case (sae: its folder under
 * tests/fixtures). 0 where the feature's activation is the same in both runs.
 */
export const FEATURE_PATCHING = JSON.parse(readFileSync(join(FIXTURES, 'saes', 'feature_patching.json'), 'utf8')) as {
  sae: string;
  metric_spec: string;
  clean_metric: number;
  corrupt_metric: number;
  exact: number[][];
};
