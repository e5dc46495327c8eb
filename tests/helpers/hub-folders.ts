/**
 * Stand-ins for Hugging Face Hub repositories that a page test serves itself: a synthetic
 * checkpoint (./checkpoints.ts) written as `save_pretrained` would write it, next to the committed
 * GPT-2 tokenizer (tests/fixtures/gpt2-tokenizer), so text prompts tokenize whatever the family
 * (the checkpoint needs `vocab_size` 50257). And what the engine itself computes for such a
 * folder in Node, to check a page's figures against.
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../../src/hooks/load.ts';
import { blobModelSource } from '../../src/model/source.ts';
import { checkpointFiles, type Checkpoint } from './checkpoints.ts';
import { FIXTURES } from './fixtures.ts';
import { testGpu } from './gpu.ts';

/** Writes config.json, model.safetensors (every tensor as `dtype`), tokenizer.json and tokenizer_config.json into `dir`. */
export function writeCheckpointHub(dir: string, c: Checkpoint, dtype: 'F32' | 'F16' | 'BF16'): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, bytes] of Object.entries(checkpointFiles(c, dtype))) writeFileSync(join(dir, name), bytes);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(FIXTURES, 'gpt2-tokenizer', f), join(dir, f));
}

/**
 * The next-token distribution after the last of `ids` (softmax over the whole vocabulary of the
 * last position's logits), from the model folder `dir`, loaded and run by the engine in Node.
 */
export async function nextTokenProbs(dir: string, ids: readonly number[]): Promise<Float64Array> {
  const files = Object.fromEntries(['config.json', 'model.safetensors'].map((f) => [f, new Uint8Array(readFileSync(join(dir, f)))]));
  const model = await loadModel(await testGpu(), blobModelSource(files, dir));
  try {
    const run = await model.run([ids]);
    try {
      const V = model.config.d_vocab;
      const logits = (await run.logits.read()).subarray((ids.length - 1) * V, ids.length * V);
      let max = -Infinity;
      for (const x of logits) max = Math.max(max, x);
      const p = Float64Array.from(logits, (x) => Math.exp(x - max));
      const sum = p.reduce((a, b) => a + b, 0);
      return p.map((x) => x / sum);
    } finally {
      run.release();
    }
  } finally {
    model.destroy();
  }
}
