/**
 * `patchbay grad`: one forward and one backward (`model.runWithGrad`) on a batch of token ids;
 * writes d(sum over rows of each row's metric) / d(every hook activation) under TransformerLens
 * names, and with --weights-out the weight gradients of the same objective under the
 * checkpoint's own names and layouts (what PyTorch's `param.grad` holds).
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { formatBytes } from '../gpu/errors.ts';
import { writeSafetensors } from '../model/safetensors.ts';
import { UsageError, parseArgs, parseIdRows, parseNamesRegex } from './args.ts';
import { describeModel, withModel } from './experiment.ts';
import { checkMetric, describeMetric, metricHelp, parseMetric, toMetric } from './metric.ts';

export const GRAD_USAGE = `usage: patchbay grad <model-dir-or-url> --ids 0,5,9 [--ids ...] --metric METRIC
                    --out GRADS.safetensors [--names REGEX] [--weights-out WGRADS.safetensors]

Runs the model forward and backward on a batch of token ids and writes the gradient of the sum
over rows of each row's metric with respect to every hook activation (TransformerLens names,
activation-shaped, batch first, fp32) to GRADS.safetensors.

  <model-dir-or-url>  a Hugging Face model folder or an http(s) URL of one (as for patchbay cache)
  --ids 0,5,9         one batch row of token ids; repeat the flag for more rows (equal lengths)
${metricHelp('the metric each row contributes', "each row's own tokens")}
  --out FILE          the safetensors file of hook gradients (its folder is created if needed)
  --names REGEX       keep only hook points whose name matches (JavaScript regex, unanchored)
  --weights-out FILE  also write every weight's gradient of the same objective, under the
                      checkpoint's names and layouts (a tied embedding gets both shares)
  --help              this text`;

const FLAGS = {
  ids: { repeated: true, required: true },
  metric: { required: true },
  out: { required: true },
  names: {},
  'weights-out': {},
  help: { boolean: true },
} as const;

export async function gradCommand(argv: readonly string[], print: (line: string) => void): Promise<void> {
  const { positionals, flags } = parseArgs(argv, FLAGS, 'grad');
  if (flags.has('help')) {
    print(GRAD_USAGE);
    return;
  }
  if (positionals.length === 0) throw new UsageError('grad needs a model folder or URL (see patchbay grad --help)');
  if (positionals.length > 1) throw new UsageError(`grad takes one model, got also: ${positionals.slice(1).join(' ')}`);
  const [modelArg] = positionals;
  const ids = parseIdRows(flags.get('ids')!);
  const metricOpt = parseMetric(flags.get('metric')![0]);
  const outPath = flags.get('out')![0];
  const weightsOut = flags.get('weights-out')?.[0];
  const namesFlag = flags.get('names')?.[0];
  const names = namesFlag === undefined ? undefined : parseNamesRegex(namesFlag);
  const T = ids[0].length;

  await withModel(
    modelArg,
    (c) => checkMetric(metricOpt, T, c.d_vocab),
    async ({ model, gpu, source, loadMs }) => {
      const t0 = performance.now();
      // Each row's metric; a loss predicts that row's own next tokens.
      const metrics = ids.map((row) => toMetric(metricOpt, row));
      const r = await model.runWithGrad(ids, metrics, { grads: names ?? (() => true), weights: weightsOut !== undefined });
      try {
        const runMs = performance.now() - t0;
        const tensors: Array<{ name: string; shape: number[]; data: Float32Array }> = [];
        for (const name of r.grads.names) tensors.push({ name, shape: [...r.grads.get(name).shape], data: await r.grads.read(name) });
        const meta = { producer: 'patchbay grad', model: source.describe, metric: metricOpt.text, of: "d(sum over rows of each row's metric) / d(activation)" };
        const bytes = writeSafetensors(tensors, meta);
        await writeAtomically(outPath, bytes);
        let wLine = '';
        if (weightsOut !== undefined) {
          const w = await r.weightGrads!.toCheckpoint();
          const wBytes = writeSafetensors(
            [...w].map(([name, t]) => ({ name, shape: t.shape, data: t.data })),
            { ...meta, of: "d(sum over rows of each row's metric) / d(weight), checkpoint names and layouts" },
          );
          await writeAtomically(weightsOut, wBytes);
          wLine = `${weightsOut}: ${w.size} weight gradients, ${formatBytes(wBytes.length)}`;
          r.weightGrads!.release();
        }
        print(`patchbay grad: ${source.describe}`);
        print(`  model    ${describeModel(model.config)}`);
        print(`  adapter  ${gpu.adapterName}`);
        print(`  input    ${ids.length} × ${T} tokens (batch × pos)`);
        print(`  metric   ${describeMetric(metricOpt)}: ${[...r.metric].map((m) => m.toFixed(4)).join(', ')} (per row)`);
        print(`  wrote    ${outPath}: ${tensors.length} hook gradients, ${formatBytes(bytes.length)}` + (names && tensors.length === 0 ? ` (--names ${namesFlag} matched no hook point)` : ''));
        if (wLine) print(`  wrote    ${wLine}`);
        print(
          `  memory   backward ${r.memory.mode === 'keep' ? 'kept every layer' : 'recomputed each layer from resid_pre'}: forward ${formatBytes(r.memory.forwardBytes)}, saved ${formatBytes(r.memory.savedBytes)}, gradients ${formatBytes(r.memory.gradScratchBytes)}`,
        );
        print(`  time     load ${loadMs.toFixed(0)} ms, forward + backward + readback ${runMs.toFixed(0)} ms`);
      } finally {
        r.release();
      }
    },
  );
}

/** Writes via a temporary file and a rename, so a failed run never leaves half a file at `path`. */
async function writeAtomically(path: string, bytes: Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, bytes);
  await rename(tmp, path);
}
