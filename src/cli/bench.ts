/**
 * `patchbay bench`: time plain forwards of a model. Loads the weights once, runs one untimed
 * warm-up forward (pipelines, plan, scratch), then N timed forwards, each including the read
 * back of its logits.
 */
import { UsageError, parseArgs, parsePositiveInt, DTYPE_HELP, parseDtypeFlag, PROCESSING_HELP, parseProcessingFlag } from './args.ts';
import { describeModel, withModel } from './experiment.ts';

export const BENCH_USAGE = `usage: patchbay bench <model-dir-or-url> --batch B --pos T [--reps N] [--processing P] [--json]

Times plain forwards: loads the model once, runs one untimed warm-up forward, then N forwards of
B rows × T positions, each timed from the call until its logits are read back to the CPU. The
token ids are deterministic: row b, position i holds (i * 7 + b) % d_vocab.

  <model-dir-or-url>  a Hugging Face GPT-2 folder or an http(s) URL of one (as for patchbay cache)
  --batch B           batch rows (a positive integer)
  --pos T             positions per row (1 .. the model's n_ctx)
  --reps N            timed forwards (default 5)
  --json              print {"adapter": ..., "batch": B, "pos": T, "median_ms": ..., "min_ms": ...}
${DTYPE_HELP}
${PROCESSING_HELP}
  --help              this text`;

const FLAGS = {
  batch: { required: true },
  pos: { required: true },
  reps: {},
  json: { boolean: true },
  dtype: {},
  processing: {},
  help: { boolean: true },
} as const;

export async function benchCommand(argv: readonly string[], print: (line: string) => void): Promise<void> {
  const { positionals, flags } = parseArgs(argv, FLAGS, 'bench');
  if (flags.has('help')) {
    print(BENCH_USAGE);
    return;
  }
  if (positionals.length === 0) throw new UsageError('bench needs a model folder or URL (see patchbay bench --help)');
  if (positionals.length > 1) throw new UsageError(`bench takes one model, got also: ${positionals.slice(1).join(' ')}`);
  const [modelArg] = positionals;
  const batch = parsePositiveInt(flags.get('batch')![0], '--batch');
  const pos = parsePositiveInt(flags.get('pos')![0], '--pos');
  const reps = parsePositiveInt(flags.get('reps')?.[0] ?? '5', '--reps');
  const json = flags.has('json');
  const f16 = parseDtypeFlag(flags);
  const processing = parseProcessingFlag(flags);

  await withModel(
    modelArg,
    (c) => {
      if (pos > c.n_ctx) throw new UsageError(`--pos ${pos} is more than the model's context: n_ctx ${c.n_ctx}`);
    },
    async ({ model, gpu, source, loadMs }) => {
      const V = model.config.d_vocab;
      const tokens = Array.from({ length: batch }, (_, b) => Array.from({ length: pos }, (_, i) => (i * 7 + b) % V));
      const warm = await model.run(tokens);
      try {
        await warm.logits.read();
      } finally {
        warm.release();
      }
      const times: number[] = [];
      for (let r = 0; r < reps; r++) {
        const t0 = performance.now();
        const out = await model.run(tokens);
        try {
          await out.logits.read();
        } finally {
          out.release();
        }
        times.push(performance.now() - t0);
      }
      const sorted = [...times].sort((a, b) => a - b);
      const median = sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
      const round = (x: number) => Math.round(x * 1000) / 1000;
      if (json) {
        print(JSON.stringify({ adapter: gpu.adapterName, batch, pos, median_ms: round(median), min_ms: round(sorted[0]) }));
        return;
      }
      print(`patchbay bench: ${source.describe}`);
      print(`  model    ${describeModel(model.config)}`);
      print(`  adapter  ${gpu.adapterName}`);
      print(`  input    ${batch} × ${pos} tokens (batch × pos), ${reps} timed forwards after one warm-up, logits read back`);
      print(`  time     median ${median.toFixed(2)} ms, min ${sorted[0].toFixed(2)} ms (load ${loadMs.toFixed(0)} ms)`);
    },
    { f16, processing },
  );
}
