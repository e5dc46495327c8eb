/**
 * The training loop: a step (data, forward, loss, backward: the task's dispatches), the
 * optimizer's update and the clock's tick, recorded once and replayed many times per submit.
 *
 *   submit k:    clock.write(step, rows of the next S updates)
 *                S x [task steps, optimizer steps, tick, (every N updates: copy the metrics out)]
 *                submit
 *   then:        wait for submit k - 1 (read its copied metrics back); report; yield
 *
 * Queue writes (the clock's rows, staged batches) land after the work submitted before them, so
 * submit k is encoded and queued while submit k - 1 runs and the GPU does not wait for the host;
 * a submit that reports is waited for before the next is queued (unless `readsModelAt` says its
 * reports' callback does not read the model), so a report's callback sees the weights as that
 * submit left them.
 *
 * Between submits the loop yields to the event loop, so a browser tab stays responsive; with
 * `stepsPerSubmit: 'auto'` it sizes submits to take about `targetSubmitMs`. Nothing a step
 * computes depends on how steps are grouped into submits (the data of update t is drawn from
 * (seed, t), and the clock carries t), so a run is the same bits whatever the grouping, and
 * after any pause.
 */
import type { Gpu } from '../gpu/device.ts';
import { submitSteps, type Step } from '../gpu/recorder.ts';
import { readBuffer } from '../gpu/tensor.ts';
import { TrainClock } from './clock.ts';
import type { Optimizer } from './optimizer.ts';

/** A buffer region copied out whenever the loop reports (a loss, per-instance losses, ...). */
export interface MetricSource {
  buffer: GPUBuffer;
  /** Floats to copy. */
  count: number;
  /** First float (default 0). */
  offset?: number;
}

/** What a model gives the loop: the dispatches of one step up to the gradients, and its metrics. */
export interface TrainTask {
  /** Data, forward, loss and backward: leave every parameter's gradient in its grad tensor. */
  steps: readonly Step[];
  /** Read back at every report, by name. */
  metrics: Record<string, MetricSource>;
  /** A scalar the task's kernels read from the clock row of update t (`sched[k].w`). */
  scalar?: (t: number) => number;
  /**
   * Data the host prepares for updates t0 + 1 .. t0 + n before their submit (token batches, which
   * a task stages into per-update slots); `stepsAt(k)` then gives the k-th update's steps (its
   * slot's copies, then `steps`). `slots` caps the updates per submit.
   */
  prepare?: (t0: number, n: number) => void;
  stepsAt?: (k: number) => readonly Step[];
  slots?: number;
}

export interface Report {
  /** Updates completed. */
  step: number;
  /** Each metric's values after this update's forward (the loss it was trained on). */
  metrics: Record<string, Float32Array>;
  /** The update's global gradient norm (0 unless the optimizer clips). */
  gradNorm: number;
  /** Milliseconds since `train` was called (pauses excluded). */
  elapsedMs: number;
}

export interface TrainOptions {
  /** Train until this many updates have been completed in total. */
  until: number;
  /** Report every N updates (and after the last). Default 10. */
  every?: number;
  /** Steps recorded into one submit, or 'auto' (default): about `targetSubmitMs` per submit. */
  stepsPerSubmit?: number | 'auto';
  /** For 'auto': milliseconds a submit should take. Default 50 (a browser tab stays at ~20 fps). */
  targetSubmitMs?: number;
  /** Called with the reports of each submit, in order; the loop waits for it. */
  onReport?: (r: Report) => void | Promise<void>;
  /**
   * The reports whose callback reads the model (by update; default: every one). Nothing is queued
   * behind their submit, so the callback sees the weights as that submit left them; behind the
   * others the next submit is already running.
   */
  readsModelAt?: (step: number) => boolean;
  /** Stops the run between submits. */
  signal?: AbortSignal;
}

export type RunState = 'running' | 'paused' | 'stopped' | 'finished';

/** A run in progress: pause, resume or stop it between submits; `done` settles when it ends. */
export class TrainingRun {
  state: RunState = 'running';
  readonly done: Promise<{ step: number; state: 'stopped' | 'finished' }>;
  private wake: (() => void) | null = null;
  /** True while the loop waits at the gate (no submit in flight). */
  private holding = false;
  private held: (() => void)[] = [];

  constructor(body: (run: TrainingRun) => Promise<number>) {
    this.done = body(this).then((step) => ({ step, state: this.state === 'stopped' ? 'stopped' : 'finished' }));
  }

  pause(): void {
    if (this.state === 'running') this.state = 'paused';
  }

  resume(): void {
    if (this.state !== 'paused') return;
    this.state = 'running';
    this.wake?.();
  }

  stop(): void {
    if (this.state === 'finished') return;
    this.state = 'stopped';
    this.wake?.();
  }

  /**
   * Resolves once a pause has taken effect: the submit in flight when `pause()` was called has
   * finished and reported, and nothing more runs until `resume()` (or at once if the run is over).
   */
  whenPaused(): Promise<void> {
    if (this.holding || this.state === 'finished' || this.state === 'stopped') return Promise.resolve();
    return new Promise((r) => this.held.push(r));
  }

  /** Resolves when the run may go on (immediately unless paused). */
  async gate(): Promise<void> {
    while (this.state === 'paused') {
      this.holding = true;
      for (const r of this.held.splice(0)) r();
      await new Promise<void>((r) => (this.wake = r));
    }
    this.holding = false;
    this.wake = null;
  }

  /** The loop has ended: nothing waits for a pause any more. */
  end(state: 'stopped' | 'finished'): void {
    this.state = state;
    for (const r of this.held.splice(0)) r();
  }
}

/** A submit in flight: its updates, the ones it reports, and their values once read back (null: none). */
interface Flight {
  n: number;
  reported: number[];
  values: Promise<Float32Array | null>;
}

/** Gives the event loop a turn (input, rendering) between submits. */
const yieldToHost = () => new Promise<void>((r) => setTimeout(r, 0));

export class Trainer {
  /** Updates completed. */
  step = 0;
  private readonly history: GPUBuffer;
  private readonly names: string[];
  /** Floats per report in the history: every metric, then the gradient norm. */
  private readonly stride: number;
  private busy = false;

  constructor(
    private readonly gpu: Gpu,
    readonly clock: TrainClock,
    readonly task: TrainTask,
    readonly optimizer: Optimizer,
  ) {
    this.names = Object.keys(task.metrics);
    this.stride = this.names.reduce((n, k) => n + task.metrics[k]!.count, 0) + 1;
    // Two halves: the reports of the submit in flight and of the one queued behind it.
    this.history = gpu.device.createBuffer({ size: 2 * clock.capacity * this.stride * 4, usage: 0x80 | 0x4 | 0x8, label: 'training metrics' });
  }

  /** Runs updates until `options.until` are done, or it is stopped. One run at a time. */
  train(options: TrainOptions): TrainingRun {
    if (this.busy) throw new Error('this trainer is already running; stop it or await its run first');
    this.busy = true;
    return new TrainingRun(async (run) => {
      try {
        await this.loop(run, options);
      } finally {
        this.busy = false;
        run.end(run.state === 'stopped' ? 'stopped' : 'finished');
      }
      return this.step;
    });
  }

  private async loop(run: TrainingRun, o: TrainOptions): Promise<void> {
    const every = Math.max(1, o.every ?? 10);
    const auto = (o.stepsPerSubmit ?? 'auto') === 'auto';
    const target = o.targetSubmitMs ?? 50;
    const cap = Math.min(this.clock.capacity, this.task.slots ?? Infinity);
    let perSubmit = auto ? 1 : Math.max(1, Math.min(cap, o.stepsPerSubmit as number));
    let active = 0; // ms spent training, pauses excluded
    let mark = 0; // when the GPU last started on this run's work: a (re)start, or the last completion
    let next = this.step; // updates submitted
    let half = 0; // the half of the history the next submit reports into
    let inFlight: Flight | null = null;
    for (;;) {
      if (!inFlight) {
        if (this.step >= o.until) return;
        await run.gate();
        if (run.state === 'stopped' || o.signal?.aborted) {
          run.end('stopped');
          return;
        }
        mark = performance.now();
      }
      // Queue the next submit before waiting for the one in flight, so that the GPU does not idle
      // while the host encodes. Not behind a submit whose reports read the model: onReport sees
      // the weights as that submit left them. A pause or stop lets the submit in flight finish
      // and queues no more.
      let queued: Flight | null = null;
      const behindReport = inFlight !== null && o.onReport !== undefined && inFlight.reported.some((t) => o.readsModelAt?.(t) ?? true);
      if (!behindReport && next < o.until && run.state === 'running' && !o.signal?.aborted) {
        queued = this.submit(next, Math.min(perSubmit, o.until - next), every, o.until, half);
        next += queued.n;
        half ^= 1;
      }
      if (inFlight) {
        const values = await inFlight.values;
        this.step += inFlight.n;
        const now = performance.now();
        const ms = now - mark;
        active += ms;
        mark = now;
        if (values && o.onReport) {
          for (const [r, t] of inFlight.reported.entries()) await o.onReport(this.report(values, r, t, active));
        }
        if (auto) perSubmit = Math.max(1, Math.min(cap, Math.round((target * inFlight.n) / Math.max(ms, 1e-3))));
      }
      inFlight = queued;
      await yieldToHost();
    }
  }

  /** Records and submits updates next + 1 .. next + n, reporting into history half `half`. */
  private submit(next: number, n: number, every: number, until: number, half: number): Flight {
    const rows = Array.from({ length: n }, (_, k) => {
      const t = next + k + 1;
      const [lr, stepSize, bc2Sqrt] = this.optimizer.row(t);
      return [lr, stepSize, bc2Sqrt, this.task.scalar?.(t) ?? 0] as const;
    });
    // Queue writes land after the work already submitted, so the submit in flight keeps its rows.
    this.clock.write(next, rows);
    this.task.prepare?.(next, n);
    const steps: Step[] = [];
    const reported: number[] = [];
    const base = half * this.clock.capacity;
    for (let k = 0; k < n; k++) {
      if (this.task.stepsAt) steps.push(...this.task.stepsAt(k), ...this.optimizer.steps, this.clock.tick);
      else steps.push(...this.task.steps, ...this.optimizer.steps, this.clock.tick);
      const t = next + k + 1;
      if (t % every === 0 || t === until) {
        steps.push(...this.copies(base + reported.length));
        reported.push(t);
      }
    }
    submitSteps(this.gpu, steps, `train ${next + 1}-${next + n}`);
    const at = base * this.stride * 4;
    const values = reported.length ? readBuffer(this.gpu, this.history, at, reported.length * this.stride * 4) : this.gpu.device.queue.onSubmittedWorkDone().then(() => null);
    // A failure (a lost device) surfaces where the loop awaits this; the catch only keeps a submit
    // queued behind one that failed, never awaited, from being reported as unhandled.
    values.catch(() => undefined);
    return { n, reported, values };
  }

  /** Copies of every metric and the gradient norm into report slot r of the history. */
  private copies(r: number): Step[] {
    const out: Step[] = [];
    let at = r * this.stride * 4;
    for (const name of this.names) {
      const m = this.task.metrics[name]!;
      out.push({ kind: 'copy', src: m.buffer, srcOffset: (m.offset ?? 0) * 4, dst: this.history, dstOffset: at, size: m.count * 4 });
      at += m.count * 4;
    }
    out.push({ kind: 'copy', src: this.clock.buffer, srcOffset: TrainClock.GRAD_NORM_OFFSET, dst: this.history, dstOffset: at, size: 4 });
    return out;
  }

  private report(values: Float32Array, r: number, step: number, elapsedMs: number): Report {
    const metrics: Record<string, Float32Array> = {};
    let at = r * this.stride;
    for (const name of this.names) {
      const count = this.task.metrics[name]!.count;
      metrics[name] = values.slice(at, at + count);
      at += count;
    }
    return { step, metrics, gradNorm: values[at]!, elapsedMs };
  }

  destroy(): void {
    this.history.destroy();
  }
}
