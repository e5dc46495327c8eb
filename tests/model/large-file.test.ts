/**
 * Weights files are read header first and tensors by byte range. A 5 GiB checkpoint on disk (a
 * sparse file made here: induction-2l's tensors after a 4.8 GiB causal-mask buffer the GPT-2
 * loader ignores, so the real tensors sit past the 4 GiB mark) loads while reading only the
 * header and the tensors in use, where reading it whole failed ("Invalid typed array length");
 * and the same file under the config of another architecture is refused after reading only
 * its header.
 */
import { closeSync, mkdirSync, openSync, readFileSync, ftruncateSync, symlinkSync, writeFileSync, writeSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import type { ModelSource } from '../../src/model/source.ts';
import { nodeModelSource } from '../../src/cli/node-source.ts';
import { FIXTURES, fixtureActivations, fixtureCases } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';
import { expectClose } from '../helpers/compare.ts';

const MASK_SIDE = 36_000; // [1, 1, 36000, 36000] F32 = 5.18e9 bytes (4.83 GiB)
const dir = mkdtempSync(join(tmpdir(), 'patchbay-large-'));
const path = join(dir, 'model.safetensors');
let fileSize = 0;
let headerEnd = 0;

beforeAll(() => {
  const src = new SafetensorsFile(new Uint8Array(readFileSync(join(FIXTURES, 'induction-2l', 'model.safetensors'))), 'induction-2l');
  const maskBytes = MASK_SIDE * MASK_SIDE * 4;
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  header['transformer.h.0.attn.bias'] = { dtype: 'F32', shape: [1, 1, MASK_SIDE, MASK_SIDE], data_offsets: [0, maskBytes] };
  let at = maskBytes;
  const parts: Array<[number, Uint8Array]> = [];
  for (const name of src.names) {
    const b = src.bytes(name);
    header[name] = { dtype: src.info(name).dtype, shape: src.info(name).shape, data_offsets: [at, at + b.length] };
    parts.push([at, b]);
    at += b.length;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = new Uint8Array(Math.ceil(json.length / 8) * 8).fill(0x20);
  padded.set(json);
  json = padded;
  headerEnd = 8 + json.length;
  fileSize = headerEnd + at;
  const fd = openSync(path, 'w');
  try {
    const len = new Uint8Array(8);
    new DataView(len.buffer).setUint32(0, json.length, true);
    writeSync(fd, len, 0, 8, 0);
    writeSync(fd, json, 0, json.length, 8);
    for (const [offset, b] of parts) writeSync(fd, b, 0, b.length, headerEnd + offset);
    ftruncateSync(fd, fileSize); // the mask stays a hole: nothing is allocated for it
  } finally {
    closeSync(fd);
  }
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

let folders = 0;

/**
 * A model folder (the CLI's local-folder source) with `config` and the large file, counting
 * every byte read from the weights, whichever way they are read.
 */
async function countingSource(config: unknown): Promise<{ source: ModelSource; bytesRead: () => number }> {
  let bytes = 0;
  const folder = join(dir, `model-${folders++}`);
  mkdirSync(folder);
  writeFileSync(join(folder, 'config.json'), JSON.stringify(config));
  symlinkSync(path, join(folder, 'model.safetensors'));
  const inner = await nodeModelSource(folder);
  const source: ModelSource = {
    describe: inner.describe,
    async file(name, onProgress) {
      const b = await inner.file(name, onProgress);
      if (name === 'model.safetensors' && b) bytes += b.length;
      return b;
    },
  };
  if (inner.open) {
    source.open = async (name, onProgress) => {
      const f = await inner.open!(name, onProgress);
      if (!f || name !== 'model.safetensors') return f;
      return {
        size: f.size,
        async read(offset, length) {
          const b = await f.read(offset, length);
          bytes += b.length;
          return b;
        },
      };
    };
  }
  return { source, bytesRead: () => bytes };
}

const gpt2Config = () => JSON.parse(readFileSync(join(FIXTURES, 'induction-2l', 'config.json'), 'utf8')) as Record<string, unknown>;

describe('a 5 GiB weights file', () => {
  it('loads, reading only its header and the tensors in use, and runs as the fixture', async () => {
    expect(fileSize).toBeGreaterThan(5 * 2 ** 30 - 2 ** 28); // > 4.75 GiB: past any 4 GiB typed-array limit
    const { source, bytesRead } = await countingSource(gpt2Config());
    const rss0 = process.memoryUsage().rss;
    const model = await loadModel(await testGpu(), source);
    const rssGrowth = process.memoryUsage().rss - rss0;
    const used = fileSize - headerEnd - MASK_SIDE * MASK_SIDE * 4; // the real tensors' bytes
    console.log(`read ${bytesRead()} of ${fileSize} bytes (header ${headerEnd}, tensors ${used}); RSS grew ${(rssGrowth / 2 ** 20).toFixed(0)} MiB`);
    expect(bytesRead()).toBe(headerEnd + used);
    expect(rssGrowth).toBeLessThan(512 * 2 ** 20);
    const r = await model.run(fixtureCases('induction-2l').prompts);
    expectClose('logits', await r.logits.read(), fixtureActivations('induction-2l').float32('logits'));
    r.release();
    model.destroy();
  });

  it('under the config of another architecture is refused after reading only its header', async () => {
    const llama = {
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      hidden_size: 128,
      intermediate_size: 256,
      num_attention_heads: 4,
      num_hidden_layers: 2,
      vocab_size: 512,
      max_position_embeddings: 64,
    };
    const { source, bytesRead } = await countingSource(llama);
    await expect(loadModel(await testGpu(), source)).rejects.toThrow(/not a LlamaForCausalLM checkpoint: "model\.embed_tokens\.weight" is missing/);
    expect(bytesRead()).toBe(headerEnd);
    // GPT-2's config with other sizes: refused at the first tensor's shape, before its bytes.
    const wide = await countingSource({ ...gpt2Config(), n_embd: 256 });
    await expect(loadModel(await testGpu(), wide.source)).rejects.toThrow(/expected shape \[256, 768\] from the config, got \[128, 384\]/);
    expect(wide.bytesRead()).toBe(headerEnd);
  });
});
