/**
 * Latest-wins GPU work for figures. A figure computes for a key (the model and the state it
 * reads); a new key aborts the job before it (sweeps stop at their next pass; plain runs finish
 * and their result is dropped), and only the newest job's outcome comes back.
 */
export type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

export class Latest<T> {
  private key: string | null = null;
  private generation = 0;
  private controller: AbortController | null = null;

  /** True while the newest job runs. */
  get running(): boolean {
    return this.controller !== null;
  }

  /** True when `key` is what the newest job computes (or computed). */
  has(key: string): boolean {
    return this.key === key;
  }

  /**
   * Runs `fn` for `key` unless the newest job already has that key. Resolves to its outcome,
   * or to null when it was not started or a newer job (or `cancel`) took over.
   */
  async run(key: string, fn: (signal: AbortSignal) => Promise<T>): Promise<Outcome<T> | null> {
    if (key === this.key) return null;
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    this.key = key;
    const generation = ++this.generation;
    let outcome: Outcome<T>;
    try {
      outcome = { ok: true, value: await fn(controller.signal) };
    } catch (error) {
      outcome = { ok: false, error };
    }
    if (generation !== this.generation) return null;
    this.controller = null;
    return outcome;
  }

  /** Aborts the running job and forgets the key, so the same key runs again next time. */
  cancel(): void {
    this.controller?.abort();
    this.controller = null;
    this.key = null;
    this.generation++;
  }
}

/** A reader's message for an error. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
