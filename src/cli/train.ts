/**
 * `patchbay train`: train a model on a few token rows and write the result as a Hugging Face
 * folder. The objective is the sum over rows of each row's mean next-token cross-entropy
 * (`loss:0:T-1`), or of `--metric`; the optimizer AdamW (betas 0.9 / 0.999, eps 1e-8, as
 * torch.optim.AdamW) or SGD; every weight the checkpoint holds is trained, in fp32.
 */
import { mkdir, readdir, copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { acquireGpu } from '../gpu/device.ts';
import { loadCheckpoint } from '../model/checkpoint.ts';
import { loadModel } from '../hooks/load.ts';
import type { Model } from '../hooks/model.ts';
import { TrainClock } from '../train/clock.ts';
import { Optimizer } from '../train/optimizer.ts';
import { checkpointFiles } from '../train/save-checkpoint.ts';
import { Trainer } from '../train/trainer.ts';
import { TransformerTraining, lossTargets } from '../train/transformer.ts';
import { UsageError, parseArgs, parseIdRows, parsePositiveInt } from './args.ts';
import { checkTokenRows } from './experiment.ts';
import { checkMetric, metricHelp, parseMetric, toMetric } from './metric.ts';
import { nodeModelSource } from './node-source.ts';

export const TRAIN_USAGE = `usage: patchbay train <model-dir> --ids 0,5,9 [--ids ...] --steps N [--optimizer adamw|sgd]
                     [--lr 1e-3] [--weight-decay 0.01] [--metric METRIC] --out DIR [--json]

Trains the model on the token rows (every update on all of them) and writes the trained
checkpoint to DIR as a Hugging Face folder: config.json as it was, model.safetensors with the
checkpoint's own tensor names, shapes and dtypes. The weights train in fp32 on the GPU.

  <model-dir>         a Hugging Face folder (config.json + model.safetensors, or shards)
  --ids 0,5,9         one batch row of token ids; repeat the flag for more rows (equal lengths)
  --steps N           optimizer updates
  --optimizer adamw   torch.optim.AdamW: betas 0.9, 0.999, eps 1e-8, decoupled weight decay (default)
  --optimizer sgd     torch.optim.SGD without momentum, weight decay added to the gradient
  --lr 1e-3           learning rate (default 1e-3)
  --weight-decay W    default 0.01 for adamw, 0 for sgd
${metricHelp('the objective: its sum over rows is minimized (default: loss:0:T-1, every next token)', "each row's own tokens")}
  --out DIR           the folder to write (created; files in it are replaced; tokenizer files of
                      <model-dir> are copied along)
  --json              print {"loss": [objective before each update], "out": DIR} at the end
                      instead of a line per update
  --help              this text`;

const FLAGS = {
  ids: { repeated: true, required: true },
  steps: { required: true },
  optimizer: {},
  lr: {},
  'weight-decay': {},
  metric: {},
  out: { required: true },
  json: { boolean: true },
  help: { boolean: true },
} as const;

function parseNumber(text: string, flag: string, min: number): number {
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v) || v < min) throw new UsageError(`${flag} ${text}: expected a number >= ${min}`);
  return v;
}

export async function trainCommand(argv: readonly string[], print: (line: string) => void): Promise<void> {
  const { positionals, flags } = parseArgs(argv, FLAGS, 'train');
  if (flags.has('help')) {
    print(TRAIN_USAGE);
    return;
  }
  if (positionals.length !== 1) throw new UsageError(`expected one model folder, got ${positionals.length} (see patchbay train --help)`);
  const ids = parseIdRows(flags.get('ids')!);
  const steps = parsePositiveInt(flags.get('steps')![0]!, '--steps');
  const kind = flags.get('optimizer')?.[0] ?? 'adamw';
  if (kind !== 'adamw' && kind !== 'sgd') throw new UsageError(`--optimizer ${kind}: expected adamw or sgd`);
  const lr = parseNumber(flags.get('lr')?.[0] ?? '1e-3', '--lr', 0);
  const weightDecay = parseNumber(flags.get('weight-decay')?.[0] ?? (kind === 'adamw' ? '0.01' : '0'), '--weight-decay', 0);
  const spec = flags.has('metric') ? parseMetric(flags.get('metric')![0]!) : null;
  const out = flags.get('out')![0]!;
  const T = ids[0]!.length;

  const source = await nodeModelSource(positionals[0]!);
  const ck = await loadCheckpoint(source);
  checkTokenRows(ids, ck.config, '--ids');
  if (T < 2) throw new UsageError('--ids rows need at least 2 tokens: the loss predicts each next token');
  if (spec) checkMetric(spec, T, ck.config.d_vocab);
  const gpu = await acquireGpu();
  let model: Model | undefined;
  let training: TransformerTraining | undefined;
  try {
    model = await loadModel(gpu, source, { f16: false, processing: 'none', tokenizer: false });
    const loss = spec?.kind === 'loss' ? lossTargets(ids, spec.start, spec.end) : lossTargets(ids, 0, T - 1);
    const metric = spec && spec.kind !== 'loss' ? toMetric(spec, ids[0]!) : undefined;
    const clock = new TrainClock(gpu);
    training = new TransformerTraining(gpu, model, { batch: ids.length, pos: T, data: () => loss, checkpointNames: ck.tensors.names, ...(metric ? { metric } : {}) });
    const opt = new Optimizer(gpu, clock, training.entries, kind === 'adamw' ? { kind, lr, betas: [0.9, 0.999], eps: 1e-8, weightDecay } : { kind, lr, weightDecay });
    const trainer = new Trainer(gpu, clock, training.task, opt);
    const losses: number[] = [];
    try {
      await trainer.train({
        until: steps,
        every: 1,
        onReport: (r) => {
          const v = TransformerTraining.objectiveValue(r.metrics.objective!);
          losses.push(v);
          if (!flags.has('json')) print(`update ${r.step}: objective before it ${v.toFixed(6)}`);
        },
      }).done;
      const shapes = new Map(training.grads.tensors().map((t) => [t.name, t.shape]));
      const files = await checkpointFiles(gpu, model.config, model.gpuWeights, shapes, ck.tensors, ck.hfConfig);
      await mkdir(out, { recursive: true });
      await writeFile(join(out, 'config.json'), files['config.json']);
      await writeFile(join(out, 'model.safetensors'), files['model.safetensors']);
      const dir = positionals[0]!;
      if (!/^https?:/.test(dir)) {
        for (const f of await readdir(dir)) if (/^(tokenizer.*\.json|special_tokens_map\.json|vocab\.json|merges\.txt)$/.test(f)) await copyFile(join(dir, f), join(out, f));
      }
      if (flags.has('json')) print(JSON.stringify({ loss: losses, out }));
      else print(`wrote ${join(out, 'model.safetensors')} (${ck.tensors.names.length} tensors) and ${join(out, 'config.json')}`);
    } finally {
      trainer.destroy();
      opt.destroy();
      clock.destroy();
    }
  } finally {
    training?.destroy();
    model?.destroy();
    gpu.destroy();
  }
}
