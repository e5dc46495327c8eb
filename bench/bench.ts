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
 * Prints one JSON object; every number in it comes from this one run.
 */
import { kernelRates } from './kernel-rates.ts';
import { benchGradients } from './gradients.ts';
import { existsSync, openAsBlob } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { acquireGpu, type Gpu } from '../src/gpu/device.ts';
import { loadModel, modelFromWeights } from '../src/model/load.ts';
import { blobModelSource } from '../src/model/source.ts';
import type { Model } from '../src/model/model.ts';
import type { ModelConfig } from '../src/model/config.ts';
import { patchFrom } from '../src/hooks/interventions.ts';
import { patchingSweep, type Grid, type PatchSite } from '../src/experiments/patching.ts';
import { logitDiffMetric } from '../src/experiments/metric.ts';
import { gpt2SmallConfig, hfFolderComplete, randomGpt2, writeHfFolder } from './weights.ts';
import { OrtPeer, PeerUnavailableError, ensureOnnx, ensureOrt, findPython } from './peer/ort.ts';
import { trainingBench } from './train.ts';

// ---------------------------------------------------------------------------------------------
// Options

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(`--${name}`);
function opt(name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const v = argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`--${name} needs a value`);
  return v;
}
const KNOWN = new Set(['--model', '--full', '--reps', '--pos', '--naive', '--peer', '--gradients-only', '--no-exact', '--no-train', '--train-only']);
function checkArgs(): void {
  for (const [i, a] of argv.entries()) {
    if (a.startsWith('--') && !KNOWN.has(a)) throw new Error(`unknown option ${a}; options: ${[...KNOWN].join(' ')}`);
    if (!a.startsWith('--') && !['--model', '--reps', '--pos', '--naive'].includes(argv[i - 1])) throw new Error(`unexpected argument "${a}"`);
  }
}
function positiveInt(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got "${v}"`);
  return n;
}

/** The scaled default on a software adapter: GPT-2-small width, fewer layers. */
const SCALED_LAYERS = 4;
/** The sweep prompt length and the metric's position (TransformerLens' IOI-style 12 x 15 grid). */
const SWEEP_T = 15;

// ---------------------------------------------------------------------------------------------
// Timing helpers

const round = (x: number, d = 2) => +x.toFixed(d);
function summary(times: number[]) {
  const s = [...times].sort((a, b) => a - b);
  const median = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return { median_ms: round(median), min_ms: round(s[0]), reps: s.length };
}
async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}
const log = (msg: string) => process.stderr.write(`bench: ${msg}\n`);

/** Token ids for a length-T prompt (deterministic, spread over the vocabulary). */
const prompt = (T: number, V: number, salt = 0) => Array.from({ length: T }, (_, i) => (i * 7919 + 13 + salt * 104729) % V);

// ---------------------------------------------------------------------------------------------
// Measurements

async function forwardOnce(model: Model, ids: number[][]): Promise<Float32Array> {
  const out = await model.run(ids);
  try {
    return await out.logits.read();
  } finally {
    out.release();
  }
}

/** A sweep timed `reps` times after a warm-up sweep on a 3-token prompt (pipelines, hook kernels). */
async function timeSweep(model: Model, site: PatchSite, clean: number[], corrupt: number[], a: number, b: number, reps: number) {
  const V = model.config.d_vocab;
  await patchingSweep(model, prompt(3, V, 1), prompt(3, V, 2), site, logitDiffMetric(2, a, b));
  const times: number[] = [];
  let grid: Grid | null = null;
  for (let r = 0; r < reps; r++) {
    const t = await timed(() => patchingSweep(model, clean, corrupt, site, logitDiffMetric(SWEEP_T - 1, a, b)));
    times.push(t.ms);
    grid = t.value;
  }
  return { times, grid: grid! };
}

async function main() {
  const started = performance.now();
  checkArgs();
  const full = flag('full');
  const wantPeer = flag('peer');
  const modelDir = opt('model');

  // Check what the peer needs before spending minutes on Patchbay's side.
  let python = '';
  let ortVersion = '';
  if (wantPeer) {
    python = findPython();
    ortVersion = ensureOrt(log).version;
  }

  const gpu = await acquireGpu();
  if (flag('train-only')) {
    const training = await trainingBench(gpu);
    console.log(JSON.stringify({ adapter: gpu.adapterName, training, wall_s: round((performance.now() - started) / 1000, 1) }, null, 1));
    process.exit(0);
  }
  const soft = /llvmpipe|swiftshader|lavapipe/i.test(gpu.adapterName);
  const scaled = soft && !full;
  const scaledWhat: string[] = [];

  // The model: a HF folder, or random weights (written as a HF folder when the peer needs them).
  let cfg: ModelConfig;
  let model: Model;
  let hfDir: string | null = null;
  let source: string;
  const tLoad = performance.now();
  if (modelDir) {
    hfDir = resolve(modelDir);
    model = await loadFolder(gpu, hfDir);
    cfg = model.config;
    source = hfDir;
  } else {
    cfg = gpt2SmallConfig(scaled ? SCALED_LAYERS : 12);
    if (scaled) scaledWhat.push(`n_layers 12 -> ${SCALED_LAYERS} (d_model, heads, d_mlp, vocab as GPT-2 small)`);
    source = 'random GPT-2-shaped weights (seed 1)';
    if (wantPeer) {
      // One folder both engines load, so they run the very same weights.
      hfDir = join(tmpdir(), 'patchbay-bench', `random-L${cfg.n_layers}-C${cfg.d_model}-H${cfg.n_heads}-M${cfg.d_mlp}-V${cfg.d_vocab}-N${cfg.n_ctx}-s1`);
      if (!hfFolderComplete(hfDir)) {
        log(`writing random weights to ${hfDir}`);
        writeHfFolder(hfDir, cfg, randomGpt2(cfg, 1));
      }
      model = await loadFolder(gpu, hfDir);
    } else {
      model = await modelFromWeights(gpu, cfg, randomGpt2(cfg, 1));
    }
  }
  const loadMs = performance.now() - tLoad;
  const V = cfg.d_vocab;
  const L = cfg.n_layers;
  const H = cfg.n_heads;

  const reps = opt('reps') ? positiveInt('reps', opt('reps')!) : scaled ? 3 : 5;
  const posList = (opt('pos') ?? (scaled ? '15,128' : '15,128,1024')).split(',').map((s) => positiveInt('pos', s));
  if (scaled && !opt('pos')) scaledWhat.push('forward at 1024 positions skipped');
  const positions = posList.filter((T) => T <= cfg.n_ctx);
  if (positions.length < posList.length) scaledWhat.push(`forward lengths over n_ctx ${cfg.n_ctx} skipped`);
  if (cfg.n_ctx < SWEEP_T) throw new Error(`the sweeps use ${SWEEP_T}-token prompts; this model's n_ctx is ${cfg.n_ctx}`);
  const cells = L * SWEEP_T;
  const naiveN = opt('naive') ? Math.min(cells, positiveInt('naive', opt('naive')!)) : scaled ? Math.min(cells, 12) : cells;
  if (naiveN < cells) scaledWhat.push(`naive loop: ${naiveN} of ${cells} patched runs timed, total extrapolated`);
  // On a software adapter one sweep already takes seconds to minutes: time it once.
  const sweepReps = soft ? 1 : reps;
  const notes: string[] = [];
  if (soft) notes.push('software adapter: sweeps timed once; timings are noisy when other work shares the CPU');

  if (wantPeer && cfg.family !== 'gpt2') throw new PeerUnavailableError(`the ONNX exporter (bench/peer/export_gpt2_onnx.py) handles GPT-2 only, not ${cfg.architecture}`);

  // ---- The peer: export, fixture check, session on the same weights.
  let peer: OrtPeer | null = null;
  let peerInfo: Record<string, unknown> | null = null;
  if (wantPeer) {
    log('peer: checking the ONNX export against Patchbay on tests/fixtures/induction-2l');
    const fixtureErr = await fixtureCheck(gpu, python);
    log(`peer: exporting ${hfDir} to ONNX (skipped when cached)`);
    const dirKey = createHash('sha256').update(hfDir!).digest('hex').slice(0, 12);
    const onnx = await ensureOnnx(python, hfDir!, join(tmpdir(), 'patchbay-bench', `onnx-${dirKey}`));
    const tCreate = performance.now();
    peer = await OrtPeer.create(gpu.hostGpu, onnx.path);
    peerInfo = {
      engine: `onnxruntime-web ${ortVersion} (WebGPU EP)`,
      adapter: await peer.adapterName(),
      onnx: onnx.path,
      exported_now: onnx.exported,
      export_ms: round(onnx.exportMs, 0),
      session_create_ms: round(performance.now() - tCreate, 0),
      fixture_max_abs_err: fixtureErr,
    };
  }

  // ---- Forwards (logits read back). With the peer, Patchbay and ORT alternate rep by rep so
  // that both see the same machine load.
  const forwards: Record<string, unknown>[] = [];
  for (const T of positions) {
    const ids = [prompt(T, V)];
    log(`forward ${T} positions: warm-up + ${reps} reps${peer ? ' (and the peer)' : ''}`);
    const pbLogits = await forwardOnce(model, ids); // warm-up: pipelines, plan
    // The peer at this length: a failure (e.g. a buffer over the adapter's binding limit) is
    // recorded in the row and the peer skipped there, not fatal to the run.
    let peerHere = peer;
    let peerWarmMs = 0;
    let peerErr = NaN;
    let peerFailed = '';
    if (peerHere) {
      try {
        const w = await timed(() => peerHere!.logits(ids));
        peerWarmMs = w.ms;
        peerErr = maxAbsDiff(pbLogits, w.value);
      } catch (e) {
        peerFailed = (e as Error).message.split('\n')[0];
        log(`peer failed at ${T} positions: ${peerFailed}`);
        peerHere = null;
      }
    }
    const pb: number[] = [];
    const ort: number[] = [];
    for (let r = 0; r < reps; r++) {
      pb.push((await timed(() => forwardOnce(model, ids))).ms);
      if (peerHere) ort.push((await timed(() => peerHere!.logits(ids))).ms);
    }
    const row: Record<string, unknown> = { pos: T, batch: 1, ...summary(pb) };
    if (peerHere) {
      const p = summary(ort);
      row.peer = { ...p, warmup_ms: round(peerWarmMs, 0), logits_max_abs_diff: peerErr };
      row.peer_over_patchbay = round(p.median_ms / (row.median_ms as number), 2);
    } else if (peerFailed) {
      row.peer = { error: peerFailed };
    }
    forwards.push(row);
  }
  const forwardPeak = gpu.pool.peakBytes;

  if (flag('gradients-only')) {
    const gradients = await benchGradients(gpu, model, { positions, sweepT: SWEEP_T, reps, log, prompt, exact: !flag('no-exact') });
    const shape = { n_layers: L, n_heads: H, d_model: cfg.d_model, d_mlp: cfg.d_mlp, d_vocab: V, n_ctx: cfg.n_ctx };
    console.log(JSON.stringify({ adapter: gpu.adapterName, model: source, shape, scaled: scaledWhat.length > 0, ...(scaledWhat.length ? { scaled_what: scaledWhat } : {}), forward: forwards, gradients, wall_s: round((performance.now() - started) / 1000, 1) }, null, 1));
    process.exit(0);
  }

  // ---- Sweeps: 12 x 15 resid_pre, and the 144-head output (z) grid.
  const clean = prompt(SWEEP_T, V);
  const corrupt = clean.slice();
  for (const p of [2, 5, 9]) corrupt[p] = (clean[p] + 101) % V;
  const good = clean[3] % V;
  const bad = corrupt[5] % V;

  log(`resid_pre sweep ${L} x ${SWEEP_T}`);
  gpu.pool.peakBytes = gpu.pool.liveBytes;
  const resid = await timeSweep(model, 'resid_pre', clean, corrupt, good, bad, sweepReps);
  // The same grid on a pair that differs at every position: no cell can be skipped as unchanged.
  const corruptAll = clean.map((t) => (t + 7) % V);
  log(`resid_pre sweep ${L} x ${SWEEP_T}, every position different`);
  const residAll = await timeSweep(model, 'resid_pre', clean, corruptAll, good, bad, sweepReps);
  const residPeak = gpu.pool.peakBytes;
  gpu.pool.peakBytes = gpu.pool.liveBytes;

  // ---- The same 180 patched runs, naively: one full forward each, logits read back.
  log(`naive patched runs: ${naiveN} of ${cells}`);
  const cleanRun = await model.run([clean], { cache: /^blocks\.\d+\.hook_resid_pre$/ });
  const order = Array.from({ length: naiveN }, (_, i) => Math.floor(((i + 0.5) * cells) / naiveN)); // spread over the grid
  const naiveTimes: number[] = [];
  let naiveErr = 0;
  try {
    const patched = async (cell: number) => {
      const l = Math.floor(cell / SWEEP_T);
      const p = cell % SWEEP_T;
      const out = await model.runWithHooks([corrupt], [patchFrom(`blocks.${l}.hook_resid_pre`, cleanRun.cache, { pos: p })]);
      try {
        return await out.logits.read();
      } finally {
        out.release();
      }
    };
    await patched(0); // warm-up: the intervention kernel
    for (const cell of order) {
      const t = await timed(() => patched(cell));
      naiveTimes.push(t.ms);
      const at = (SWEEP_T - 1) * V;
      naiveErr = Math.max(naiveErr, Math.abs(t.value[at + good] - t.value[at + bad] - resid.grid.values[cell]));
    }
  } finally {
    cleanRun.release();
  }
  const naivePeak = gpu.pool.peakBytes;
  const naiveTotal = naiveTimes.reduce((a, b) => a + b, 0);
  const naiveMs = naiveN === cells ? naiveTotal : (naiveTotal / naiveN) * cells;
  const residMs = summary(resid.times);

  log(`head output (z) sweep ${L} x ${H}`);
  gpu.pool.peakBytes = gpu.pool.liveBytes;
  const heads = await timeSweep(model, 'z', clean, corrupt, good, bad, sweepReps);
  const headPeak = gpu.pool.peakBytes;

  // ---- Gradients: backward against forward, AtP over every site against the exact sweeps, bytes.
  gpu.pool.peakBytes = gpu.pool.liveBytes;
  const gradients = await benchGradients(gpu, model, { positions, sweepT: SWEEP_T, reps, log, prompt, exact: !flag('no-exact') });
  const gradientPeak = gpu.pool.peakBytes;

  log('kernel rates: FMA peak and the matmul');
  const kernels = await kernelRates(gpu, soft);

  const result = {
    adapter: gpu.adapterName,
    model: source,
    shape: { n_layers: L, n_heads: H, d_model: cfg.d_model, d_mlp: cfg.d_mlp, d_vocab: V, n_ctx: cfg.n_ctx },
    scaled: scaledWhat.length > 0,
    ...(scaledWhat.length ? { scaled_what: scaledWhat } : {}),
    ...(notes.length ? { notes } : {}),
    load_ms: round(loadMs, 0),
    forward: forwards,
    resid_pre_sweep: {
      grid: [L, SWEEP_T],
      runs: cells,
      ...residMs,
      passes: resid.grid.stats.passes,
      unchanged_cells: resid.grid.stats.unchanged,
      work_over_naive_work: round(resid.grid.stats.work / resid.grid.stats.naiveWork, 3),
      naive: {
        runs_timed: naiveN,
        ms: round(naiveMs, 0),
        extrapolated: naiveN < cells,
        per_run_median_ms: summary(naiveTimes).median_ms,
        max_abs_diff_vs_sweep: +naiveErr.toExponential(2),
      },
      naive_over_sweep: round(naiveMs / residMs.median_ms, 2),
      every_position_differs: {
        ...summary(residAll.times),
        passes: residAll.grid.stats.passes,
        unchanged_cells: residAll.grid.stats.unchanged,
        work_over_naive_work: round(residAll.grid.stats.work / residAll.grid.stats.naiveWork, 3),
        naive_over_sweep: round(naiveMs / summary(residAll.times).median_ms, 2),
      },
    },
    head_sweep: {
      site: 'z',
      grid: [L, H],
      runs: L * H,
      ...summary(heads.times),
      passes: heads.grid.stats.passes,
      unchanged_cells: heads.grid.stats.unchanged,
      work_over_naive_work: round(heads.grid.stats.work / heads.grid.stats.naiveWork, 3),
    },
    memory: {
      weight_bytes: gpu.pool.weightBytes,
      peak_pool_bytes: Math.max(forwardPeak, residPeak, naivePeak, headPeak),
      peak_total_bytes: Math.max(forwardPeak, residPeak, naivePeak, headPeak) + gpu.pool.weightBytes,
      pool_peak_bytes_by_phase: { forward: forwardPeak, resid_pre_sweep: residPeak, naive_runs: naivePeak, head_sweep: headPeak, gradients: gradientPeak },
    },
    gradients,
    kernels,
    ...(peerInfo ? { peer: peerInfo } : {}),
    ...(flag('no-train') ? {} : { training: await trainingBench(gpu) }),
    wall_s: round((performance.now() - started) / 1000, 1),
  };
  await peer?.release();
  console.log(JSON.stringify(result, null, 1));
  process.exit(0);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`logit arrays differ in length: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return +m.toExponential(2);
}

async function loadFolder(gpu: Gpu, dir: string): Promise<Model> {
  const files: Record<string, Blob> = {};
  for (const f of ['config.json', 'model.safetensors', 'model.safetensors.index.json']) if (existsSync(join(dir, f))) files[f] = await openAsBlob(join(dir, f));
  if (!files['config.json']) throw new Error(`${dir} has no config.json (a Hugging Face GPT-2 folder is expected)`);
  return loadModel(gpu, blobModelSource(files, dir));
}

/**
 * The peer's sanity check: the exporter and ORT-web against Patchbay on the toy fixture
 * (2 layers, tests/fixtures/induction-2l), max |logit difference| over its first prompt.
 */
async function fixtureCheck(gpu: Gpu, python: string): Promise<number> {
  const dir = resolve(import.meta.dirname, '../tests/fixtures/induction-2l');
  const cases = JSON.parse(await readFile(join(dir, 'cases.json'), 'utf8')) as { prompts: number[][] };
  const onnx = await ensureOnnx(python, dir, join(tmpdir(), 'patchbay-bench', 'onnx-induction-2l'));
  const model = await loadFolder(gpu, dir);
  const peer = await OrtPeer.create(gpu.hostGpu, onnx.path);
  try {
    const ids = [cases.prompts[0]];
    return maxAbsDiff(await forwardOnce(model, ids), await peer.logits(ids));
  } finally {
    model.destroy();
    await peer.release();
  }
}

main().catch((e) => {
  const err = e as Error;
  const plain = err instanceof PeerUnavailableError || /^(--|unknown option|unexpected argument)/.test(err.message);
  console.error(err instanceof PeerUnavailableError ? `bench: the peer cannot run here: ${err.message}` : `bench: ${plain ? err.message : (err.stack ?? err.message)}`);
  process.exit(err instanceof PeerUnavailableError ? 2 : 1);
});
