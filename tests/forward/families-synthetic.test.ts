/**
 * Configurations no Hugging Face fixture covers, against the CPU reference forward: Qwen2's
 * q/k/v biases with grouped-query attention and tied embeddings, Mistral's sliding window,
 * sequential-residual GPT-NeoX with half-rotary heads, F16 and BF16 checkpoints; and the config
 * errors for what Patchbay cannot run.
 */
import { describe, it, expect } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import { loadCheckpoint } from '../../src/model/checkpoint.ts';
import { hostWeightsFor } from '../../src/model/host-weights-for.ts';
import { forwardCpu } from '../../src/model/forward.cpu.ts';
import { normalizeConfig } from '../../src/model/normalize-config.ts';
import { inverseFrequencies } from '../../src/model/rotary-tables.ts';
import type { ModelSource } from '../../src/model/source.ts';
import { expectClose, maxAbsDiff } from '../helpers/compare.ts';
import { checkpointSource, llamaCheckpoint, neoxCheckpoint, type Checkpoint } from '../helpers/checkpoints.ts';
import { testGpu } from '../helpers/gpu.ts';

const tokens = [
  [5, 17, 99, 3, 42, 7, 150, 8, 61],
  [1, 2, 3, 4, 5, 6, 7, 8, 9],
];

/** Every hook point of the GPU run against the CPU forward on the checkpoint's own (widened) weights. */
async function checkAgainstCpu(source: ModelSource) {
  const gpu = await testGpu();
  const model = await loadModel(gpu, source);
  const ckpt = await loadCheckpoint(source);
  const cpu = forwardCpu(ckpt.config, await hostWeightsFor(ckpt.tensors, ckpt.config, ckpt.hfConfig), tokens);
  const run = await model.run(tokens, { cache: (n) => !n.endsWith('hook_attn_scores') && !n.endsWith('hook_result') });
  for (const n of run.cache.names) expectClose(n, await run.cache.read(n), cpu.get(n)!);
  const logits = await run.logits.read();
  expectClose('logits', logits, cpu.get('logits')!);
  run.release();
  model.destroy();
  return { config: ckpt.config, logits };
}

describe('synthetic checkpoints against the CPU reference', () => {
  it('Qwen2: q/k/v biases, 6 query heads on 2 key/value heads, tied embeddings, rope_theta 1e6', async () => {
    const c = llamaCheckpoint({ tie_word_embeddings: true, rope_theta: 1_000_000 }, 'Qwen2ForCausalLM');
    const { config, logits } = await checkAgainstCpu(checkpointSource(c));
    expect(config.n_key_value_heads).toBe(2);
    expect(config.tied_embeddings).toBe(true);
    // The biases matter: without them the logits differ.
    const noBias: Checkpoint = { config: c.config, tensors: c.tensors.map((t) => (t.name.endsWith('.bias') ? { ...t, data: new Float32Array(t.data.length) } : t)) };
    const model = await loadModel(await testGpu(), checkpointSource(noBias));
    const r = await model.run(tokens);
    expect(maxAbsDiff(await r.logits.read(), logits)).toBeGreaterThan(1e-2);
    r.release();
    model.destroy();
  });

  it('Mistral: the sliding window caps the context', async () => {
    const c = llamaCheckpoint({ sliding_window: 16 }, 'MistralForCausalLM');
    const { config } = await checkAgainstCpu(checkpointSource(c));
    expect(config.n_ctx).toBe(16);
  });

  it('Llama with head_dim given and llama3 rope scaling', async () => {
    const c = llamaCheckpoint({
      head_dim: 10,
      rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8 },
    });
    const { config } = await checkAgainstCpu(checkpointSource(c));
    expect(config.d_head).toBe(10);
    expect(config.rope_scaling?.type).toBe('llama3');
  });

  it('GPT-NeoX, sequential residual, rotary on half of each head', async () => {
    const { config } = await checkAgainstCpu(checkpointSource(neoxCheckpoint()));
    expect(config.parallel_attn_mlp).toBe(false);
    expect(config.rotary_dim).toBe(4);
  });

  it.each(['F16', 'BF16'] as const)('%s weights load (widened exactly) and match the CPU forward', async (dtype) => {
    await checkAgainstCpu(checkpointSource(llamaCheckpoint({}, 'LlamaForCausalLM', 5), dtype));
  });
});

describe('rotary frequencies', () => {
  it('llama3 scaling: long wavelengths divided by the factor, short ones kept, a blend between', () => {
    const base = inverseFrequencies(64, 500000, null);
    const scaled = inverseFrequencies(64, 500000, { type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 });
    base.forEach((w, i) => {
      const wavelen = (2 * Math.PI) / w;
      if (wavelen < 8192 / 4) expect(scaled[i]).toBe(w);
      else if (wavelen > 8192) expect(scaled[i]).toBeCloseTo(w / 32, 12);
      else expect(scaled[i] > w / 32 && scaled[i] < w).toBe(true);
    });
    const linear = inverseFrequencies(16, 10000, { type: 'linear', factor: 4 });
    inverseFrequencies(16, 10000, null).forEach((w, i) => expect(linear[i]).toBeCloseTo(w / 4, 12));
  });

  it('unsupported rope_scaling types and configs are named', () => {
    const cfg = llamaCheckpoint().config;
    expect(() => normalizeConfig({ ...cfg, rope_scaling: { type: 'yarn', factor: 4 } })).toThrow(/rope_scaling type "yarn" is not supported; supported: default, linear, llama3/);
    expect(() => normalizeConfig({ ...cfg, num_key_value_heads: 4 })).toThrow(/num_attention_heads 6 is not a multiple of num_key_value_heads 4/);
    expect(() => normalizeConfig({ ...cfg, hidden_act: 'gelu_fast' })).toThrow(/hidden_act "gelu_fast" is not supported/);
    expect(() => normalizeConfig({ ...cfg, architectures: ['GemmaForCausalLM'] })).toThrow(
      /unsupported model .*GemmaForCausalLM.*supported: GPT2LMHeadModel, GPT2Model, GPTNeoXForCausalLM, LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM/,
    );
  });
});
