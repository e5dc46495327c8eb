/**
 * Reading and writing spec files for the CLI: `patchbay run|export|snapshot SPEC` read one, and
 * the experiment commands' `--spec-out FILE` writes the spec of what they just ran.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { SPEC_VERSION, SpecError, parseSpecText, type ExperimentSpec } from '../experiments/spec.ts';
import { UsageError } from './args.ts';
import { modelRefFor, saeRefFor } from './spec-model.ts';

/** The spec in `path`, checked; errors name the file. */
export async function readSpecFile(path: string): Promise<ExperimentSpec> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(code === 'ENOENT' ? `no such spec file: ${path}` : `cannot read spec file ${path}: ${(e as Error).message}`);
  }
  try {
    return parseSpecText(text, path);
  } catch (e) {
    if (e instanceof SpecError) throw new UsageError(`${path}: ${e.message}`);
    throw e;
  }
}

/**
 * Writes the spec of a command's run to `path` (its folder is created): the model argument
 * becomes the spec's model, relative to the file (and --sae its SAE, likewise).
 */
export async function writeSpecOut(path: string, modelArg: string, rest: Omit<ExperimentSpec, 'patchbay' | 'model' | '$schema' | 'sae'>, sae?: { arg: string; errorTerm: boolean }): Promise<void> {
  const dir = dirname(resolve(path));
  const spec: ExperimentSpec = { patchbay: SPEC_VERSION, model: modelRefFor(modelArg, dir), ...rest };
  if (sae) spec.sae = sae.errorTerm ? { url: saeRefFor(sae.arg, dir) } : { url: saeRefFor(sae.arg, dir), error_term: false };
  await mkdir(dir, { recursive: true });
  await writeFile(path, `${JSON.stringify(spec, null, 2)}\n`);
}
