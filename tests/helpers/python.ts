/**
 * The Python interpreter the tests run exported scripts with: $PATCHBAY_PYTHON, or the .venv/
 * that scripts/setup-python.sh makes (called by scripts/setup-system.sh). Missing, it fails with
 * the command that makes it: these tests are never skipped.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './browser.ts';

export function pythonPath(): string {
  const fromEnv = process.env.PATCHBAY_PYTHON;
  if (fromEnv) return fromEnv;
  const venv = join(ROOT, '.venv', 'bin', 'python');
  if (existsSync(venv)) return venv;
  throw new Error('no Python for the export tests: run bash scripts/setup-python.sh (or set PATCHBAY_PYTHON)');
}

/** Runs `python args…`; resolves to stdout, rejects with stderr's tail on a non-zero exit. */
export function runPython(args: readonly string[], timeoutMs = 120_000): Promise<string> {
  return new Promise((ok, fail) => {
    execFile(pythonPath(), [...args], { cwd: ROOT, timeout: timeoutMs, maxBuffer: 64 << 20, env: { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_VERBOSITY: 'error' } }, (err, stdout, stderr) => {
      if (err) fail(new Error(`python ${args.join(' ')} failed: ${err.message}\n${stderr.slice(-3000)}`));
      else ok(stdout);
    });
  });
}
