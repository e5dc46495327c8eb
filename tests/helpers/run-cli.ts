/** Runs `node bin/patchbay.js …` as a child process, the way a user runs the CLI. */
import { spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /**
   * stderr without Dawn's own startup warnings ("Warning: maxDynamic… artificially reduced …"),
   * which its native code prints on lavapipe before Patchbay runs; what remains is Patchbay's.
   */
  errorLines: string[];
}

/** `env` adds to the environment (e.g. PATCHBAY_HUB, the Hub's address). */
export function runCli(args: readonly string[], timeoutMs = 60_000, env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [resolve(projectRoot, 'bin/patchbay.js'), ...args], {
      cwd: projectRoot,
      env: { ...process.env, XDG_RUNTIME_DIR: '/tmp', PATCHBAY_DEBUG: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`patchbay ${args.join(' ')} did not finish in ${timeoutMs} ms\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const errorLines = stderr.split('\n').filter((l) => l !== '' && !/^Warning: /.test(l));
      resolvePromise({ code, stdout, stderr, errorLines });
    });
  });
}
