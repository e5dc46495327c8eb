/**
 * Patchbay's benchmark (a program, not a test): `npm run bench -- [options]`. See bench/README.md.
 *
 *   --model DIR   a Hugging Face GPT-2 folder (default: GPT-2-small-shaped random weights)
 *   --full        on a software adapter (lavapipe, SwiftShader), run the full GPT-2-small shape and
 *                 every measurement instead of the scaled default that finishes in about a minute
 *   --reps N      timed repetitions of each forward (after one untimed warm-up)
 *   --pos LIST    forward lengths to time (default 15,128,1024; scaled: 15,128)
 *   --naive N     time N of the 180 naive patched runs and extrapolate (default: all; scaled: 12)
 *   --peer        also run ONNX Runtime Web's WebGPU backend on an ONNX export of the same weights
 *   --no-train    skip the training section (bench/train.ts: training steps/s against PyTorch CPU)
 *   --train-only  run only the training section
 *   --gradients-only  the forwards and the gradient section only (no sweeps, naive runs, kernel rates)
 *   --no-exact    the gradient section without the exact sweeps AtP is compared against (20 minutes
 *                 at the full shape on lavapipe)
 *
 * Prints one JSON object; every number in it comes from this one run. One file per measurement:
 * forwards.ts, sweeps.ts, gradients.ts, kernel-rates.ts, train.ts (and peer-setup.ts for --peer).
 */
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { acquireGpu, type Gpu } from '../src/gpu/device.ts';
import { loadModel, modelFromWeights } from '../src/hooks/load.ts';
import type { Model } from '../src/hooks/model.ts';
import type { ModelConfig } from '../src/model/config.ts';
import { nodeModelSource } from '../src/cli/node-source.ts';
import { benchForwards } from './forwards.ts';
import { benchGradients } from './gradients.ts';
import { kernelRates } from './kernel-rates.ts';
import { benchOptions, type BenchOptions } from './options.ts';
import { type OrtPeer, PeerUnavailableError, ensureOrt, findPython } from './peer/ort.ts';
import { setUpPeer } from './peer-setup.ts';
import { benchSweeps } from './sweeps.ts';
import { trainingBench } from './train.ts';
import { log, prompt, round } from './timing.ts';
import { gpt2SmallConfig, hfFolderComplete, randomGpt2, writeHfFolder } from './weights.ts';

/** The scaled default on a software adapter: GPT-2-small width, fewer layers. */
const SCALED_LAYERS = 4;
/** The sweep prompt length and the metric's position (TransformerLens' IOI-style 12 x 15 grid). */
const SWEEP_T = 15;

/** The command line (unknown flags and stray arguments are usage errors, exit 2). */
const readOptions = () =>
  benchOptions('bench', {
    model: {},
    full: { boolean: true },
    reps: {},
    pos: {},
    naive: {},
    peer: { boolean: true },
    'gradients-only': { boolean: true },
    'no-exact': { boolean: true },
    'no-train': { boolean: true },
    'train-only': { boolean: true },
  });

/** The model: a Hugging Face folder, or random weights (written as one when the peer must load them too). */
async function benchModel(gpu: Gpu, modelDir: string | undefined, scaled: boolean, wantPeer: boolean, scaledWhat: string[]): Promise<{ model: Model; hfDir: string | null; source: string }> {
  if (modelDir) {
    const hfDir = resolve(modelDir);
    return { model: await loadModel(gpu, await nodeModelSource(hfDir)), hfDir, source: hfDir };
  }
  const cfg: ModelConfig = gpt2SmallConfig(scaled ? SCALED_LAYERS : 12);
  if (scaled) scaledWhat.push(`n_layers 12 -> ${SCALED_LAYERS} (d_model, heads, d_mlp, vocab as GPT-2 small)`);
  const source = 'random GPT-2-shaped weights (seed 1)';
  if (!wantPeer) return { model: await modelFromWeights(gpu, cfg, randomGpt2(cfg, 1)), hfDir: null, source };
  // One folder both engines load, so they run the very same weights.
  const hfDir = join(tmpdir(), 'patchbay-bench', `random-L${cfg.n_layers}-C${cfg.d_model}-H${cfg.n_heads}-M${cfg.d_mlp}-V${cfg.d_vocab}-N${cfg.n_ctx}-s1`);
  if (!hfFolderComplete(hfDir)) {
    log(`writing random weights to ${hfDir}`);
    writeHfFolder(hfDir, cfg, randomGpt2(cfg, 1));
  }
  return { model: await loadModel(gpu, await nodeModelSource(hfDir)), hfDir, source };
}

/** How much of the run to do: full, or scaled down on a software adapter (each cut listed in scaledWhat). */
function plan(o: BenchOptions, cfg: ModelConfig, scaled: boolean, scaledWhat: string[]) {
  const reps = o.int('reps', scaled ? 3 : 5);
  const posList = o.ints('pos', scaled ? '15,128' : '15,128,1024');
  if (scaled && !o.opt('pos')) scaledWhat.push('forward at 1024 positions skipped');
  const positions = posList.filter((T) => T <= cfg.n_ctx);
  if (positions.length < posList.length) scaledWhat.push(`forward lengths over n_ctx ${cfg.n_ctx} skipped`);
  if (cfg.n_ctx < SWEEP_T) throw new Error(`the sweeps use ${SWEEP_T}-token prompts; this model's n_ctx is ${cfg.n_ctx}`);
  const cells = cfg.n_layers * SWEEP_T;
  const naiveN = Math.min(cells, o.int('naive', scaled ? 12 : cells));
  if (naiveN < cells) scaledWhat.push(`naive loop: ${naiveN} of ${cells} patched runs timed, total extrapolated`);
  return { reps, positions, naiveN };
}

async function main() {
  const started = performance.now();
  const o = readOptions();
  const wantPeer = o.flag('peer');

  // Check what the peer needs before spending minutes on Patchbay's side.
  const peerTools = wantPeer ? { python: findPython(), ortVersion: ensureOrt(log).version } : null;

  const gpu = await acquireGpu();
  if (o.flag('train-only')) {
    const training = await trainingBench(gpu);
    console.log(JSON.stringify({ adapter: gpu.adapterName, training, wall_s: round((performance.now() - started) / 1000, 1) }, null, 1));
    process.exit(0);
  }
  const soft = /llvmpipe|swiftshader|lavapipe/i.test(gpu.adapterName);
  const scaled = soft && !o.flag('full');
  const scaledWhat: string[] = [];
  const tLoad = performance.now();
  const { model, hfDir, source } = await benchModel(gpu, o.opt('model'), scaled, wantPeer, scaledWhat);
  const loadMs = performance.now() - tLoad;
  const cfg = model.config;
  const { reps, positions, naiveN } = plan(o, cfg, scaled, scaledWhat);
  // On a software adapter one sweep already takes seconds to minutes: time it once.
  const sweepReps = soft ? 1 : reps;
  const notes = soft ? ['software adapter: sweeps timed once; timings are noisy when other work shares the CPU'] : [];
  if (wantPeer && cfg.family !== 'gpt2') throw new PeerUnavailableError(`the ONNX exporter (bench/peer/export_gpt2_onnx.py) handles GPT-2 only, not ${cfg.architecture}`);

  let peer: OrtPeer | null = null;
  let peerInfo: Record<string, unknown> | null = null;
  if (peerTools) ({ peer, info: peerInfo } = await setUpPeer(gpu, peerTools.python, peerTools.ortVersion, hfDir!));

  const head = {
    adapter: gpu.adapterName,
    model: source,
    shape: { n_layers: cfg.n_layers, n_heads: cfg.n_heads, d_model: cfg.d_model, d_mlp: cfg.d_mlp, d_vocab: cfg.d_vocab, n_ctx: cfg.n_ctx },
    scaled: scaledWhat.length > 0,
    ...(scaledWhat.length ? { scaled_what: scaledWhat } : {}),
  };
  const forward = await benchForwards(model, positions, reps, peer);
  const forwardPeak = gpu.pool.peakBytes;
  const gradientOptions = { positions, sweepT: SWEEP_T, reps, log, prompt, exact: !o.flag('no-exact') };

  if (o.flag('gradients-only')) {
    const gradients = await benchGradients(gpu, model, gradientOptions);
    console.log(JSON.stringify({ ...head, forward, gradients, wall_s: round((performance.now() - started) / 1000, 1) }, null, 1));
    process.exit(0);
  }

  const sweeps = await benchSweeps(gpu, model, SWEEP_T, naiveN, sweepReps);
  // Gradients: backward against forward, AtP over every site against the exact sweeps, bytes.
  gpu.pool.peakBytes = gpu.pool.liveBytes;
  const gradients = await benchGradients(gpu, model, gradientOptions);
  const gradientPeak = gpu.pool.peakBytes;
  log('kernel rates: FMA peak and the matmul');
  const kernels = await kernelRates(gpu, soft);

  const peak = Math.max(forwardPeak, sweeps.peaks.resid_pre_sweep, sweeps.peaks.naive_runs, sweeps.peaks.head_sweep);
  const result = {
    ...head,
    ...(notes.length ? { notes } : {}),
    load_ms: round(loadMs, 0),
    forward,
    resid_pre_sweep: sweeps.resid_pre_sweep,
    head_sweep: sweeps.head_sweep,
    memory: {
      weight_bytes: gpu.pool.weightBytes,
      peak_pool_bytes: peak,
      peak_total_bytes: peak + gpu.pool.weightBytes,
      pool_peak_bytes_by_phase: { forward: forwardPeak, ...sweeps.peaks, gradients: gradientPeak },
    },
    gradients,
    kernels,
    ...(peerInfo ? { peer: peerInfo } : {}),
    ...(o.flag('no-train') ? {} : { training: await trainingBench(gpu) }),
    wall_s: round((performance.now() - started) / 1000, 1),
  };
  await peer?.release();
  console.log(JSON.stringify(result, null, 1));
  process.exit(0);
}

main().catch((e) => {
  const err = e as Error;
  console.error(err instanceof PeerUnavailableError ? `bench: the peer cannot run here: ${err.message}` : `bench: ${err.stack ?? err.message}`);
  process.exit(err instanceof PeerUnavailableError ? 2 : 1);
});
