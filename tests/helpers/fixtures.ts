/** Reading the committed Hugging Face fixtures (tests/fixtures/<name>/) in Node. */
import { readFileSync, openAsBlob } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { blobModelSource, type ModelSource } from '../../src/model/source.ts';

export const FIXTURES = join(import.meta.dirname, '..', 'fixtures');
export const GPT2_FIXTURES = ['tiny-gpt2-random', 'induction-2l'] as const;
/** GPT-2 fixtures whose cases.json holds the recorded experiments (not hook_shapes or config): the GPT-2 ones and the attention-only induction model. */
export const GPT2_EXPERIMENT_FIXTURES = [...GPT2_FIXTURES, 'induction-attn-2l'] as const;

export interface Cases {
  prompts: number[][];
  metric: { kind: string; position: number; good_token: number; bad_token: number };
  clean_logit_diff: number;
  corrupt_logit_diff: number;
  /** The first 64 logits at the metric position are `logits_at_pos` (GPT-2 folders) or `logits_at_position_first64` (induction-attn-2l). */
  head_zero_ablation_on_clean: Array<{ layer: number; head: number; logit_diff: number; logits_at_pos?: number[]; logits_at_position_first64?: number[] }>;
  resid_pre_patch_corrupt_from_clean: number[][];
  hook_shapes: Record<string, number[]>;
}

export function fixtureCases(name: string): Cases {
  return JSON.parse(readFileSync(join(FIXTURES, name, 'cases.json'), 'utf8')) as Cases;
}

export function fixtureActivations(name: string): SafetensorsFile {
  return new SafetensorsFile(new Uint8Array(readFileSync(join(FIXTURES, name, 'activations.safetensors'))), 'activations.safetensors');
}

export async function fixtureSource(name: string): Promise<ModelSource> {
  const dir = join(FIXTURES, name);
  return blobModelSource(
    {
      'config.json': await openAsBlob(join(dir, 'config.json')),
      'model.safetensors': await openAsBlob(join(dir, 'model.safetensors')),
    },
    dir,
  );
}
