/**
 * Learning-rate schedules: the learning rate of update t (t = 1, 2, ...), computed on the host in
 * float64 and written into the training clock's rows before each submit.
 */

export type LrSchedule = (t: number) => number;

/** The same rate every update. */
export function constantLr(lr: number): LrSchedule {
  return () => lr;
}

/** Linear warm-up to `peak` over `warmup` updates (lr = peak * t / warmup), then constant. */
export function linearWarmup(peak: number, warmup: number): LrSchedule {
  return (t) => (warmup > 0 ? peak * Math.min(1, t / warmup) : peak);
}

/**
 * Linear warm-up to `peak` over `warmup` updates, then half a cosine from `peak` down to
 * `floor * peak` at update `total` (and `floor * peak` after it).
 */
export function warmupCosine(o: { peak: number; warmup: number; total: number; floor?: number }): LrSchedule {
  const floor = o.floor ?? 0;
  return (t) => {
    if (t <= o.warmup) return (o.peak * t) / o.warmup;
    const progress = Math.min(1, (t - o.warmup) / Math.max(1, o.total - o.warmup));
    return o.peak * (floor + (1 - floor) * 0.5 * (1 + Math.cos(Math.PI * progress)));
  };
}

/** A number is a constant schedule. */
export function asSchedule(lr: number | LrSchedule): LrSchedule {
  return typeof lr === 'number' ? constantLr(lr) : lr;
}
