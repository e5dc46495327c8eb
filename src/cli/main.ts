/**
 * The `patchbay` command: subcommand dispatch and the error contract. Any failure prints ONE
 * line, `patchbay: <message>`, to stderr and returns a non-zero code (2 for bad usage, 1 for
 * everything else); PATCHBAY_DEBUG=1 adds the stack. bin/patchbay.js exits with the code.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { UsageError } from './args.ts';
import { ablateCommand } from './ablate.ts';
import { cacheCommand } from './cache.ts';
import { benchCommand } from './bench.ts';
import { patchCommand } from './patch.ts';
import { gradCommand } from './grad.ts';
import { attributeCommand } from './attribute.ts';
import { runCommand } from './run.ts';
import { exportCommand } from './export.ts';
import { snapshotCommand } from './snapshot.ts';
import { sweepAblateCommand } from './sweep-ablate.ts';
import { trainCommand } from './train.ts';
import { featuresCommand } from './features.ts';

const USAGE = `patchbay: run GPT-2-style models on WebGPU and read their activations

usage:
  patchbay cache <model-dir-or-url> --ids 0,5,9 [--ids ...] --out FILE.safetensors [--names REGEX] [--sae DIR]
  patchbay ablate <model-dir-or-url> --ids 0,5,9 [--ids ...] --heads L.H[,L.H...] [--mode zero|mean]
                  --metric METRIC [--json]
  patchbay patch <model-dir-or-url> --clean IDS --corrupt IDS --site SITE --metric METRIC
                 [--normalize] [--json]
  patchbay sweep-ablate <model-dir-or-url> --ids IDS --metric METRIC [--mode zero|mean] [--json]
  patchbay grad <model-dir-or-url> --ids IDS [--ids ...] --metric METRIC --out FILE.safetensors
                [--names REGEX] [--weights-out FILE.safetensors]
  patchbay attribute <model-dir-or-url> --clean IDS --corrupt IDS --site SITE --metric METRIC
                     [--method atp|atp*] [--verify K] [--normalize] [--json]
                     (--site features --sae DIR [--top K]: AtP over an SAE's features)
  patchbay features <model-dir-or-url> --sae DIR --ids IDS [--top K] [--json]
  patchbay bench <model-dir-or-url> --batch B --pos T [--reps N] [--json]
  patchbay train <model-dir> --ids IDS [--ids ...] --steps N [--optimizer adamw|sgd] [--lr 1e-3]
                 [--weight-decay 0.01] [--metric METRIC] --out DIR [--json]
  patchbay run SPEC.json [--json]
  patchbay export SPEC.json --to transformers|nnsight|transformer-lens [--out FILE.py]
  patchbay snapshot SPEC.json --out SNAPSHOT.json [--heads L.H,...]
  patchbay <command> --help
  patchbay --version

  METRIC: logit-diff:POS:GOOD:BAD, logprob:POS:TOKEN, prob:POS:TOKEN or loss:START:END
  Every command that loads a model takes --processing none|transformer-lens (TransformerLens'
  from_pretrained weight processing; none, the checkpoint as it is, by default).

commands:
  cache         run token ids through a model; write every hook activation and the logits to a
                safetensors file
  ablate        run token ids with attention heads zero- or mean-ablated; print the metric and
                the logits at its position
  patch         patch the clean run into the corrupted one at every cell of a site's grid
                (layer × position, layer × head, ...) in a few batched passes; print the grid
  sweep-ablate  ablate each attention head alone, in a few batched passes; print the
                [layer, head] grid of the metric
  grad          run forward and backward; write the gradient of the metric at every hook point
                (and with --weights-out every weight's) to safetensors files
  attribute     attribution patching (AtP, AtP*): estimate every cell of a patching grid from
                gradients, in one backward; optionally verify the top cells exactly
  features      run token ids with an SAE spliced in; print the most active features at every
                position
  bench         time plain forwards of a model (median and min ms, logits read back)
  train         train a model on token rows (AdamW or SGD on the rows' loss or a metric) and
                write it as a Hugging Face folder, tensor names and dtypes as the checkpoint's
  run           run an experiment spec (model, prompts, interventions, sweep, metric)
  export        write a Python script (transformers, nnsight or TransformerLens) that runs a
                spec's experiment and prints the same JSON as patchbay run --json
  snapshot      compute what a page's figures show for a spec, for readers without WebGPU

The experiment commands (ablate, patch, sweep-ablate, attribute) take --spec-out FILE to write the spec of
what they ran.

Set PATCHBAY_DEBUG=1 to print stack traces with errors.`;

type Command = (argv: readonly string[], print: (line: string) => void) => Promise<void>;

const COMMANDS: Record<string, Command> = {
  cache: cacheCommand,
  ablate: ablateCommand,
  patch: patchCommand,
  'sweep-ablate': sweepAblateCommand,
  grad: gradCommand,
  attribute: attributeCommand,
  features: featuresCommand,
  bench: benchCommand,
  train: trainCommand,
  run: runCommand,
  export: exportCommand,
  snapshot: snapshotCommand,
};

/** The version in Patchbay's package.json: two folders up from src/cli/, three from lib/src/cli/. */
function version(): string {
  for (const up of ['../../package.json', '../../../package.json']) {
    const url = new URL(up, import.meta.url);
    if (!existsSync(url)) continue;
    const pkg = JSON.parse(readFileSync(url, 'utf8')) as { name?: string; version: string };
    if (pkg.name === 'patchbay') return pkg.version;
  }
  throw new Error(`Patchbay's package.json was not found above ${fileURLToPath(import.meta.url)}`);
}

/** Runs the CLI on `argv` (without node and the script path); returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const print = (line: string) => process.stdout.write(`${line}\n`);
  try {
    const [first, ...rest] = argv;
    if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
      print(USAGE);
      return first === undefined ? 2 : 0;
    }
    if (first === '--version') {
      print(version());
      return 0;
    }
    const command = Object.hasOwn(COMMANDS, first) ? COMMANDS[first] : undefined;
    if (!command) {
      throw new UsageError(first.startsWith('-') ? `unknown option ${first} (see patchbay --help)` : `unknown command "${first}" (commands: ${Object.keys(COMMANDS).join(', ')})`);
    }
    await command(rest, print);
    return 0;
  } catch (e) {
    process.stderr.write(`patchbay: ${oneLine(e)}\n`);
    if (process.env.PATCHBAY_DEBUG === '1') process.stderr.write(`${debugTrace(e)}\n`);
    return e instanceof UsageError ? 2 : 1;
  }
}

/** The error's message on one line: the contract is one line per failure. */
function oneLine(e: unknown): string {
  const msg = e instanceof Error ? e.message || e.name : String(e);
  return msg.replace(/\s*\n\s*/g, ' ').trim();
}

/** Stack plus the `cause` chain, for PATCHBAY_DEBUG=1. */
function debugTrace(e: unknown): string {
  const parts: string[] = [];
  for (let cur: unknown = e, depth = 0; cur !== undefined && depth < 5; depth++) {
    parts.push(depth === 0 ? '' : 'caused by:', cur instanceof Error ? (cur.stack ?? cur.message) : String(cur));
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return parts.filter(Boolean).join('\n');
}
