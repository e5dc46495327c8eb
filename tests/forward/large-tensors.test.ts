/**
 * Matrices larger than one storage binding. GPT-2 small's token embedding (154 MB) exceeds
 * WebGPU's default 128 MiB binding limit; the engine splits it by rows, and splits the logits
 * into row blocks when they exceed a binding too.
 */
import { describe, it, expect } from 'vitest';
import { loadModel, modelFromWeights } from '../../src/hooks/load.ts';
import { forwardCpu } from '../../src/model/forward.cpu.ts';
import { expectClose } from '../helpers/compare.ts';
import { fixtureActivations, fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';
import { gpt2Config, randomWeights } from '../helpers/synthetic.ts';

describe('split-by-rows weights and row-blocked logits', () => {
  it('tiny-gpt2-random matches Hugging Face with a 64 KiB binding limit (embedding in 4 chunks, logits in row blocks)', async () => {
    // 64 KiB: the largest other weight (W_in, 64 x 256 x 4 B) just fits; W_E (256 KB) and the
    // logits (2 x 12 x 1000 x 4 B = 96 KB) do not.
    const name = 'tiny-gpt2-random';
    const gpu = await testGpu({ maxBindingBytes: 64 * 1024 });
    const model = await loadModel(gpu, await fixtureSource(name));
    const { d_vocab, d_model } = model.config;
    // The embedding no longer fits one binding, so it must be in several chunks.
    expect(d_vocab * d_model * 4).toBeGreaterThan(gpu.maxBinding);
    expect(2 * 12 * d_vocab * 4).toBeGreaterThan(gpu.maxBinding);
    expect(model.embeddingChunks).toBe(4);
    const ref = fixtureActivations(name);
    const result = await model.run(fixtureCases(name).prompts, { cache: ['hook_embed'] });
    expectClose('hook_embed', await result.cache.read('hook_embed'), ref.float32('hook_embed'));
    expectClose('logits', await result.logits.read(), ref.float32('logits'));
    result.release();
    model.destroy();
  });

  it('a synthetic model whose embedding exceeds the real 128 MiB binding limit', async () => {
    const gpu = await testGpu();
    // d_model 32: 1,050,000 rows x 32 x 4 B = 134.4 MB > 128 MiB (134,217,728 B), lavapipe's cap.
    const cfg = gpt2Config({ d_model: 32, n_heads: 4, d_mlp: 64, n_layers: 1, n_ctx: 8, d_vocab: 1_050_000 });
    expect(cfg.d_vocab * cfg.d_model * 4).toBeGreaterThan(gpu.limits.maxStorageBufferBindingSize);
    const host = randomWeights(cfg, 7);
    const model = await modelFromWeights(gpu, cfg, host);
    expect(model.embeddingChunks).toBe(2);
    const tokens = [[0, 1_049_999, 524_288, 3, 900_001]]; // ids in the first, last and middle chunks
    const result = await model.run(tokens, { cache: ['hook_embed'] });
    const ref = forwardCpu(cfg, host, tokens);
    expectClose('hook_embed', await result.cache.read('hook_embed'), ref.get('hook_embed')!);
    expectClose('logits', await result.logits.read(), ref.get('logits')!);
    result.release();
    model.destroy();
  });
});
