/**
 * The induction recipe trained in full on the engine, as `<induction-trainer>` trains it in a
 * page: `npm run bench:induction -- [--steps 4000] [--every 250] [--task recall|repeated]
 * [--batch 64] [--seed 0] [--engine attn-only|general] [--submit-ms 250]`. A program, like the bench. Prints one JSON line per report (every
 * `--every` updates, as make/train_induction_pairs.py prints: the batch loss, the loss on a
 * repeat, layer 0's previous-token and layer 1's induction score per head, seconds so far) and a
 * last line with the phase change (the first report at which the best layer-1 induction score
 * passes 0.5, the page's marker), the wall time and `warmup_s` (the kernels' compile, before the
 * clock starts: one update of a throwaway copy), to set against PyTorch's run of the same
 * recipe (the fixture's README: phase change at steps 2,750-3,250, 8,000 steps in about 4 minutes
 * on 2 CPU cores).
 */
import { acquireGpu } from '../src/gpu/device.ts';
import { RECIPE, headScores, modelFromFiles, recipeConfig, recipeInit, recipeTraining } from '../src/train/induction-recipe.ts';
import type { InductionTask } from '../src/train/induction-data.ts';
import { TransformerTraining } from '../src/train/transformer.ts';

const argv = process.argv.slice(2);
const KNOWN = new Set(['--steps', '--every', '--task', '--batch', '--seed', '--engine', '--submit-ms']);
for (let i = 0; i < argv.length; i += 2) if (!KNOWN.has(argv[i]!)) throw new Error(`bench:induction: unknown flag ${argv[i]} (known: ${[...KNOWN].join(', ')})`);
const opt = (name: string, dflt: string) => {
  const i = argv.indexOf(`--${name}`);
  return i < 0 ? dflt : argv[i + 1]!;
};
const steps = Number(opt('steps', '4000'));
const every = Number(opt('every', '250'));
const batch = Number(opt('batch', String(RECIPE.batch)));
const seed = Number(opt('seed', '0'));
const task = opt('task', 'recall') as InductionTask;
if (task !== 'recall' && task !== 'repeated') throw new Error(`bench:induction: --task is recall or repeated, not ${task}`);
const engine = opt('engine', 'attn-only') as 'attn-only' | 'general';
// Updates are grouped into submits of about this many ms (the page uses 50 to stay at ~20 fps).
const submitMs = Number(opt('submit-ms', '250'));
if (engine !== 'attn-only' && engine !== 'general') throw new Error(`bench:induction: --engine is attn-only or general, not ${engine}`);

const gpu = await acquireGpu();
const files = () => ({ 'config.json': JSON.stringify(recipeConfig()), 'model.safetensors': recipeInit(seed) });

// Lavapipe compiles each kernel at its first dispatch (a GPU driver at pipeline creation, in well
// under a second): one update of a throwaway copy, and its scores, compile them all before the
// clock starts (the pipelines are cached by source). With a cold Mesa shader cache this is
// where a first run's compile time goes; `warmup_s` reports it.
const w0 = performance.now();
{
  const copy = await modelFromFiles(gpu, files());
  const w = await recipeTraining(gpu, copy.model, copy.checkpoint, task, seed, batch, engine);
  await w.trainer.train({ until: 1 }).done;
  await headScores(copy.model, 0);
  w.destroy();
  copy.model.destroy();
}
const warmupS = (performance.now() - w0) / 1000;

const { model, checkpoint } = await modelFromFiles(gpu, files());
const r = await recipeTraining(gpu, model, checkpoint, task, seed, batch, engine);
const round = (x: number) => +x.toFixed(3);
let phaseChange = 0;
let trainMs = 0;
const t0 = performance.now();
const end = await r.trainer.train({
  until: steps,
  every,
  targetSubmitMs: submitMs,
  onReport: async (rep) => {
    trainMs = rep.elapsedMs;
    // The scores' forward is not training time: the page draws them too, but PyTorch's figure is the run's.
    const s = await headScores(model, 1000 + rep.step);
    if (!phaseChange && Math.max(...s.induction) > 0.5) phaseChange = rep.step;
    const line = {
      step: rep.step,
      loss: round(TransformerTraining.objectiveValue(rep.metrics.objective!)),
      repeat_loss: round(s.repeatLoss),
      prev_token: s.prevToken.map(round),
      induction: s.induction.map(round),
      train_s: round(rep.elapsedMs / 1000),
      wall_s: round((performance.now() - t0) / 1000),
    };
    console.log(JSON.stringify(line));
  },
}).done;
console.log(
  JSON.stringify({
    adapter: gpu.adapterName,
    task,
    engine,
    submit_ms: submitMs,
    batch,
    seed,
    steps: end.step,
    phase_change: phaseChange || null,
    train_s: round(trainMs / 1000),
    steps_per_s: round(end.step / (trainMs / 1000)),
    warmup_s: round(warmupS),
    wall_s: round((performance.now() - t0) / 1000),
  }),
);
r.destroy();
model.destroy();
process.exit(0);
