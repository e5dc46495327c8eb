/**
 * `patchbay export SPEC.json --to transformers|nnsight|transformer-lens`: prints a Python script
 * that runs the spec's experiment and prints the same JSON as `patchbay run SPEC.json --json`
 * (src/export/python/). A model folder in the spec becomes an absolute path in the script.
 */
import { writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { SpecError } from '../experiments/spec.ts';
import { PYTHON_TARGETS, pythonScript, type PythonTarget } from '../export/python/index.ts';
import { UsageError, parseArgs } from './args.ts';
import { readSpecFile } from './spec-file.ts';
import { modelLocation } from './spec-model.ts';

export const EXPORT_USAGE = `usage: patchbay export SPEC.json --to transformers|nnsight|transformer-lens [--out FILE.py]

Writes the experiment of a spec file as a Python script, to stdout (or FILE.py), that runs the
same experiment with the same hook points and metric and prints the same JSON as
patchbay run SPEC.json --json.

  --to transformers      Hugging Face transformers + PyTorch forward hooks (checked against
                         Patchbay by Patchbay's tests)
  --to nnsight           nnsight traces; set REMOTE = True in the script to run on NDIF
  --to transformer-lens  TransformerLens' HookedTransformer and its patching module
  --out FILE.py          write the script there instead of stdout
  --help                 this text`;

const FLAGS = { to: { required: true }, out: {}, help: { boolean: true } } as const;

export async function exportCommand(argv: readonly string[], print: (line: string) => void): Promise<void> {
  const { positionals, flags } = parseArgs(argv, FLAGS, 'export');
  if (flags.has('help')) {
    print(EXPORT_USAGE);
    return;
  }
  if (positionals.length !== 1) throw new UsageError('export takes one spec file (see patchbay export --help)');
  const target = flags.get('to')![0];
  if (!(PYTHON_TARGETS as readonly string[]).includes(target)) throw new UsageError(`--to ${target}: expected ${PYTHON_TARGETS.join(', ')}`);
  const path = positionals[0];
  const spec = await readSpecFile(path);
  const m = spec.model;
  const local = ('url' in m && !/^https?:/i.test(m.url)) || 'preset' in m ? modelLocation(m, dirname(resolve(path))) : undefined;
  let script: string;
  try {
    script = pythonScript(spec, target as PythonTarget, { modelPath: local && !/^https?:/i.test(local) ? local : undefined });
  } catch (e) {
    if (e instanceof SpecError) throw new UsageError(`${path}: ${e.message}`);
    throw e;
  }
  const out = flags.get('out')?.[0];
  if (out) await writeFile(out, script);
  else print(script.trimEnd());
}
