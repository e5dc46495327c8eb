/**
 * Forward-pass benchmark (a program, not a test): `npm run bench -- [options]`.
 *
 *   --model DIR        a Hugging Face GPT-2 folder (default: GPT-2-small-shaped random weights)
 *   --shape small|toy  random weights: GPT-2 small (12 x 768, vocab 50257) or a 2-layer toy
 *   --pos 15,128       sequence lengths to time (batch 1 unless --batch)
 *   --batch B          batch rows
 *   --reps N           timed repetitions per length (after one untimed warm-up)
 *
 * Prints JSON: adapter, and per length the median and min ms of a forward with logits read back.
 */
import { openAsBlob, existsSync } from 'node:fs';
import { join } from 'node:path';
import { acquireGpu } from '../src/gpu/device.ts';
import { loadModel, modelFromWeights } from '../src/model/load.ts';
import { blobModelSource } from '../src/model/source.ts';
import type { ModelConfig } from '../src/model/config.ts';
import type { HostMatrix, HostWeights } from '../src/model/host-weights.ts';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

function randomGpt2(cfg: ModelConfig): HostWeights {
  let s = 1;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.04;
  const m = (shape: number[], center = 0): HostMatrix => ({ shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b) }, () => center + rnd()) });
  const C = cfg.d_model;
  return {
    W_E: m([cfg.d_vocab, C]),
    W_pos: m([cfg.n_ctx, C]),
    lnf_w: m([C], 1),
    lnf_b: m([C]),
    layers: Array.from({ length: cfg.n_layers }, () => ({
      ln1_w: m([C], 1), ln1_b: m([C]),
      W_Q: m([C, C]), b_Q: m([C]), W_K: m([C, C]), b_K: m([C]), W_V: m([C, C]), b_V: m([C]),
      W_O: m([C, C]), b_O: m([C]),
      ln2_w: m([C], 1), ln2_b: m([C]),
      W_in: m([C, cfg.d_mlp]), b_in: m([cfg.d_mlp]), W_out: m([cfg.d_mlp, C]), b_out: m([C]),
    })),
  };
}

const SHAPES: Record<string, Partial<ModelConfig>> = {
  small: { d_model: 768, n_layers: 12, n_heads: 12, d_head: 64, d_mlp: 3072, n_ctx: 1024, d_vocab: 50257 },
  toy: { d_model: 128, n_layers: 2, n_heads: 4, d_head: 32, d_mlp: 512, n_ctx: 64, d_vocab: 512 },
};

async function main() {
  const gpu = await acquireGpu();
  const dir = arg('model', '');
  let model;
  if (dir) {
    const files: Record<string, Blob> = {};
    for (const f of ['config.json', 'model.safetensors']) if (existsSync(join(dir, f))) files[f] = await openAsBlob(join(dir, f));
    model = await loadModel(gpu, blobModelSource(files, dir));
  } else {
    const shape = arg('shape', 'small');
    const cfg: ModelConfig = { architecture: 'GPT2LMHeadModel', family: 'gpt2', act_fn: 'gelu_new', eps: 1e-5, tied_embeddings: true, ...SHAPES[shape] } as ModelConfig;
    model = await modelFromWeights(gpu, cfg, randomGpt2(cfg));
  }
  const batch = Number(arg('batch', '1'));
  const reps = Number(arg('reps', '5'));
  const lengths = arg('pos', '15').split(',').map(Number);
  const results = [];
  for (const T of lengths) {
    const tokens = Array.from({ length: batch }, (_, b) => Array.from({ length: T }, (_, i) => (i * 7 + b) % model.config.d_vocab));
    (await model.run(tokens)).release(); // warm-up: pipelines, plan
    const times: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      const out = await model.run(tokens);
      await out.logits.read();
      times.push(performance.now() - t0);
      out.release();
    }
    times.sort((a, b) => a - b);
    results.push({ batch, pos: T, median_ms: +times[Math.floor(times.length / 2)].toFixed(2), min_ms: +times[0].toFixed(2) });
  }
  console.log(JSON.stringify({ adapter: gpu.adapterName, layers: model.config.n_layers, d_model: model.config.d_model, results }, null, 1));
  process.exit(0);
}

main().catch((e) => {
  console.error(`bench: ${(e as Error).message}`);
  process.exit(1);
});
