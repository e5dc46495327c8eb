/**
 * A loaded model: config, GPU weights, and `run`, which executes the forward for a batch of
 * token sequences and keeps what it is asked to keep.
 */
import type { Gpu } from '../gpu/device.ts';
import { OutOfMemoryError, formatBytes } from '../gpu/errors.ts';
import { submitSteps, type Step } from '../gpu/recorder.ts';
import { Tensor, numel } from '../gpu/tensor.ts';
import { ActivationCache } from '../hooks/activation-cache.ts';
import type { ModelConfig } from './config.ts';
import { buildForward, scratchBytes, scratchSizes, type ForwardPlan } from './forward.ts';
import { hookNames, hookShapes } from './hook-points.ts';
import type { GpuWeights } from './gpu-weights.ts';
import { validateTokens } from './tokens.ts';

/** Which hook points a run keeps: a list of names, a pattern, or a predicate. */
export type CacheFilter = readonly string[] | RegExp | ((name: string) => boolean);

export interface RunOptions {
  /** Hook points to copy into the returned cache (none by default). */
  cache?: CacheFilter;
}

export interface RunResult {
  /** [batch, pos, d_vocab] */
  logits: Tensor;
  cache: ActivationCache;
  /** Releases the logits and the cache. */
  release(): void;
}

/** Plans are kept for this many recent (batch, pos) shapes; each holds a forward's scratch. */
const PLAN_CACHE_SIZE = 3;

export class Model {
  private plans = new Map<string, ForwardPlan>();
  private destroyed = false;

  constructor(
    readonly gpu: Gpu,
    readonly config: ModelConfig,
    private readonly weights: GpuWeights,
  ) {}

  /** Bytes of GPU memory the weights use. */
  get weightBytes(): number {
    return this.weights.bytes;
  }

  /** Row chunks the token embedding is stored in (1 unless it exceeds a binding). */
  get embeddingChunks(): number {
    return this.weights.W_E.length;
  }

  /** Every hook point name of this model, in forward order. */
  hookNames(): string[] {
    return hookNames(this.config);
  }

  /** Runs the forward on `tokens` ([batch][pos], equal-length rows). */
  async run(tokens: readonly (readonly number[])[], options: RunOptions = {}): Promise<RunResult> {
    if (this.destroyed) throw new Error('this model was destroyed');
    const { batch, pos, flat } = validateTokens(tokens, this.config);
    const shapes = hookShapes(this.config, batch, pos);
    const keep = resolveFilter(options.cache, shapes);

    // Everything the run allocates is known now: check it before allocating any of it.
    const kept = [...shapes].filter(([n]) => keep(n));
    const sizes = kept.map(([, shape]) => numel(shape) * 4);
    sizes.push(batch * pos * this.config.d_vocab * 4); // logits
    const scratch = !this.plans.has(`${batch}x${pos}`);
    if (scratch) sizes.push(...Object.values(scratchSizes(this.config, batch, pos)).map((f) => f * 4));
    const needed = this.gpu.pool.newBytesFor(sizes);
    const left = this.gpu.pool.availableBytes;
    if (needed > left) {
      throw new OutOfMemoryError(
        `this run needs ${formatBytes(needed)} of GPU memory (${kept.length} cached hook points, logits` +
          `${scratch ? ', activation scratch' : ''}) but ${formatBytes(Math.max(0, left))} is available; ` +
          'cache fewer hook points (a narrower cache filter) or use a smaller batch',
      );
    }
    const plan = await this.plan(batch, pos);

    const tensors = new Map<string, Tensor>();
    const logits = Tensor.empty(this.gpu, plan.logitsShape, 'logits');
    const steps: Step[] = [];
    try {
      for (const s of plan.steps) {
        if (s.kind !== 'site') {
          steps.push(s);
          continue;
        }
        if (!keep(s.name)) continue;
        const t = Tensor.empty(this.gpu, s.shape, s.name);
        tensors.set(s.name, t);
        steps.push({ kind: 'copy', src: s.buffer, srcOffset: 0, dst: t.buffer, dstOffset: 0, size: t.byteLength });
      }
      steps.push({ kind: 'copy', src: plan.logits, srcOffset: 0, dst: logits.buffer, dstOffset: 0, size: logits.byteLength });
      this.gpu.device.queue.writeBuffer(plan.ids, 0, flat);
      submitSteps(this.gpu, steps, `forward ${batch}x${pos}`);
    } catch (e) {
      logits.release();
      for (const t of tensors.values()) t.release();
      throw e;
    }
    const cache = new ActivationCache(tensors);
    return {
      logits,
      cache,
      release() {
        logits.release();
        cache.release();
      },
    };
  }

  /** Frees the weights and every plan. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const p of this.plans.values()) p.destroy();
    this.plans.clear();
    this.weights.destroy();
  }

  private async plan(batch: number, pos: number): Promise<ForwardPlan> {
    const key = `${batch}x${pos}`;
    let plan = this.plans.get(key);
    if (plan) {
      // Most recently used goes last.
      this.plans.delete(key);
      this.plans.set(key, plan);
      return plan;
    }
    if (this.plans.size >= PLAN_CACHE_SIZE) {
      const [oldKey, old] = this.plans.entries().next().value as [string, ForwardPlan];
      old.destroy();
      this.plans.delete(oldKey);
    }
    const built = await this.gpu.guard(`preparing a ${batch} x ${pos} forward`, scratchBytes(this.config, batch, pos), () =>
      buildForward(this.gpu, this.config, this.weights, batch, pos),
    );
    this.plans.set(key, built);
    return built;
  }
}

function resolveFilter(filter: CacheFilter | undefined, shapes: Map<string, number[]>): (name: string) => boolean {
  if (!filter) return () => false;
  if (filter instanceof RegExp) return (n) => filter.test(n);
  if (typeof filter === 'function') return filter;
  const wanted = new Set(filter);
  for (const n of wanted) {
    if (!shapes.has(n)) throw new Error(unknownHookMessage(n, [...shapes.keys()]));
  }
  return (n) => wanted.has(n);
}

/** "unknown hook point X; did you mean Y, Z?" with the nearest names by edit distance. */
export function unknownHookMessage(name: string, known: string[]): string {
  const near = known
    .map((k) => [k, editDistance(name, k)] as const)
    .sort((a, b) => a[1] - b[1])
    .slice(0, 3)
    .map(([k]) => k);
  return `unknown hook point "${name}"; did you mean ${near.join(', ')}?`;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length];
}
