/**
 * The training clock on the host: the GPU buffer every kernel of a step reads (step number,
 * gradient norm and clipping factor, and one schedule row per step of the submit; layout in
 * `shaders/clock.wgsl.ts`), written before each submit and advanced by a tick at the end of
 * every step. Because a step reads its number from here, one recorded step replays unchanged.
 */
import type { Gpu } from '../gpu/device.ts';
import { clockBytes, clockWords, tick } from '../gpu/kernels/clock.ts';
import type { Dispatch } from '../gpu/recorder.ts';

/**
 * One schedule row: learning rate, Adam step size lr / (1 - beta1^t), sqrt(1 - beta2^t), and a
 * scalar of the task's own (an SAE's sparsity coefficient, warmed up), 0 when absent.
 */
export type ClockRow = readonly [number, number, number] | readonly [number, number, number, number];

export class TrainClock {
  readonly buffer: GPUBuffer;
  /** The tick dispatch (clock.step += 1), the last of every step. */
  readonly tick: Dispatch;

  constructor(
    private readonly gpu: Gpu,
    /** Most steps in one submit (rows of schedule). */
    readonly capacity = 1024,
  ) {
    this.buffer = gpu.device.createBuffer({ size: clockBytes(capacity), usage: 0x80 | 0x4 | 0x8, label: 'training clock' }); // STORAGE | COPY_SRC | COPY_DST
    this.tick = tick(gpu, this.buffer, 'clock tick');
  }

  /** Before a submit of rows.length steps that starts after `step` completed updates. */
  write(step: number, rows: readonly ClockRow[]): void {
    if (rows.length > this.capacity) throw new Error(`a submit of ${rows.length} steps exceeds the clock's ${this.capacity} rows`);
    this.gpu.device.queue.writeBuffer(this.buffer, 0, clockWords(step, rows));
  }

  /** Byte offset of the gradient norm (f32), for copying it out as a metric. */
  static readonly GRAD_NORM_OFFSET = 8;

  destroy(): void {
    this.buffer.destroy();
  }
}
