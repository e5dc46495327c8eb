/**
 * An output file claimed before the work that fills it: `claim` checks the path at once (not a
 * folder, its folder creatable, a file creatable there) by creating the temporary file the
 * result will be written to; `commit` writes and renames it over the path, so a failed run never
 * leaves half a file there; `discard` removes the temporary file (call it in a `finally`).
 */
import { mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { UsageError } from './args.ts';

export class OutputFile {
  private done = false;

  private constructor(
    readonly path: string,
    private readonly tmp: string,
    private handle: FileHandle | null,
  ) {}

  /** `flag` names the option in messages (e.g. "--out"). Bad paths are usage errors. */
  static async claim(path: string, flag: string): Promise<OutputFile> {
    const info = await stat(path).catch(() => null);
    if (info?.isDirectory()) throw new UsageError(`${flag} ${path} is a folder; give a file name, e.g. ${path.replace(/\/+$/, '')}/acts.safetensors`);
    const cannot = (e: unknown): never => {
      throw new UsageError(`${flag} ${path}: cannot write there (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    };
    await mkdir(dirname(path), { recursive: true }).catch(cannot);
    const tmp = `${path}.${process.pid}.tmp`;
    const handle = await open(tmp, 'wx').catch(cannot);
    return new OutputFile(path, tmp, handle);
  }

  /** Writes `bytes` and moves them to the path. */
  async commit(bytes: Uint8Array): Promise<void> {
    if (this.done || !this.handle) throw new Error(`${this.path} was already written or discarded`);
    await this.handle.writeFile(bytes);
    await this.handle.close();
    this.handle = null;
    await rename(this.tmp, this.path);
    this.done = true;
  }

  /** Removes the temporary file unless it was committed. Safe to call more than once. */
  async discard(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.handle?.close().catch(() => undefined);
    this.handle = null;
    await rm(this.tmp, { force: true });
  }
}
