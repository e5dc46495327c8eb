/**
 * A loaded model: config, GPU weights, and `run`, which executes the forward for a batch of
 * token sequences and keeps what it is asked to keep.
 */
import type { Gpu } from '../gpu/device.ts';
import { OutOfMemoryError, formatBytes } from '../gpu/errors.ts';
import { Tensor, numel } from '../gpu/tensor.ts';
import { executePlan } from './execute.ts';
import { compileHooks, type CompiledHooks } from '../hooks/hook-plan.ts';
import type { Intervention } from '../hooks/interventions.ts';
import { ActivationCache } from '../hooks/activation-cache.ts';
import type { ModelConfig } from './config.ts';
import { buildForward, scratchBytes, scratchSizes, type ForwardPlan, type PlanShape } from './forward.ts';
import { hookNames, hookShapes } from './hook-points.ts';
import { unknownHookMessage } from '../hooks/hook-names.ts';
import type { GpuWeights } from './gpu-weights.ts';
import { validateTokens } from './tokens.ts';
import { logitLens, unembedColumn } from './logit-lens.ts';
import { asSplice, saeHookShapes, saeScratchFloats, spliceSaes, type SaeUse } from '../features/splice.ts';

/** Which hook points a run keeps: a list of names, a pattern, or a predicate. */
export type CacheFilter = readonly string[] | RegExp | ((name: string) => boolean);

export interface RunOptions {
  /** Hook points to copy into the returned cache (none by default). */
  cache?: CacheFilter;
  /** Interventions for this run only (see `src/hooks/interventions.ts`). */
  hooks?: readonly Intervention[];
  /**
   * SAEs and transcoders spliced into this run only (SAELens' `run_with_saes`): each replaces its
   * output hook with its reconstruction (plus the error term with `withErrorTerm(sae)`) and adds
   * its own hook points (`<hook>.hook_sae_acts_post`, …) for caching and interventions.
   */
  saes?: readonly SaeUse[];
}

const planKey = (batch: number, pos: number, withResult: boolean) => `${batch}x${pos}${withResult ? '+result' : ''}`;

/** `runWithCache`'s default: every hook point but hook_result, which TransformerLens also skips unless enabled. */
const allButHeadResults = (name: string) => !name.endsWith('.attn.hook_result');

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
  /** Bound where an intervention kernel reads no source (zero, scale). */
  private readonly dummy: GPUBuffer;

  constructor(
    readonly gpu: Gpu,
    readonly config: ModelConfig,
    private readonly weights: GpuWeights,
  ) {
    this.dummy = gpu.device.createBuffer({ size: 16, usage: 0x80 /* STORAGE */, label: 'no source' });
  }

  /** Bytes of GPU memory the weights use. */
  get weightBytes(): number {
    return this.weights.bytes;
  }

  /** Weight matrices are kept in half precision on the GPU. */
  get weightsF16(): boolean {
    return this.weights.f16;
  }

  /** Row chunks the token embedding is stored in (1 unless it exceeds a binding). */
  get embeddingChunks(): number {
    return this.weights.W_E.length;
  }

  /** Every hook point name of this model, in forward order. */
  hookNames(): string[] {
    return hookNames(this.config);
  }

  /**
   * Runs the forward on `tokens` ([batch][pos], equal-length rows), applying `hooks` and keeping
   * the hook points `cache` asks for. One command encoder, one submit, no readback, unless a
   * `callback` hook needs the activation on the CPU (it splits the pass there).
   *
   * Runs of one model are taken in call order: runs of the same shape share their plan's
   * scratch, and a callback hook's pause must not let another run overwrite it.
   */
  run(tokens: readonly (readonly number[])[], options: RunOptions = {}): Promise<RunResult> {
    const result = this.queue.then(() => this.runNow(tokens, options));
    this.queue = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  private queue: Promise<void> = Promise.resolve();

  private async runNow(tokens: readonly (readonly number[])[], options: RunOptions): Promise<RunResult> {
    if (this.destroyed) throw new Error('this model was destroyed');
    const { batch, pos, flat } = validateTokens(tokens, this.config);
    const saes = options.saes ?? [];
    const shapes = hookShapes(this.config, batch, pos);
    for (const [n, s] of saeHookShapes(saes, shapes, batch, pos)) shapes.set(n, s);
    const keep = resolveFilter(options.cache, shapes);
    const hooks = options.hooks ?? [];
    for (const h of hooks) if (!shapes.has(h.hook)) throw new Error(unknownHookMessage(h.hook, [...shapes.keys()]));
    const kept = [...shapes].filter(([n]) => keep(n));
    const withResult = kept.some(([n]) => n.endsWith('.attn.hook_result')) || hooks.some((h) => h.hook.endsWith('.attn.hook_result'));

    // Everything the run allocates is known now: check it before allocating any of it.
    const sizes = kept.map(([, shape]) => numel(shape) * 4);
    sizes.push(batch * pos * this.config.d_vocab * 4); // logits
    const scratch = !this.plans.has(planKey(batch, pos, withResult));
    if (scratch) sizes.push(...Object.values(scratchSizes(this.config, { batch, pos, withResult })).filter((f) => f > 0).map((f) => f * 4));
    sizes.push(...saeScratchFloats(saes, batch * pos).map((f) => f * 4));
    const needed = this.gpu.pool.bytesFor(sizes);
    const fresh = this.gpu.pool.newBytesFor(sizes);
    const left = this.gpu.pool.availableBytes;
    if (needed > left) {
      throw new OutOfMemoryError(
        `this run needs ${formatBytes(needed)} of GPU memory (${kept.length} cached hook points, logits` +
          `${scratch ? ', activation scratch' : ''}) but ${formatBytes(Math.max(0, left))} is available; ` +
          'cache fewer hook points (a narrower cache filter) or use a smaller batch',
      );
    }
    const base = await this.plan(batch, pos, withResult);
    const spliced = saes.length ? this.splice(base, saes, hooks) : null;
    const plan = spliced?.plan ?? base;
    let compiled: CompiledHooks | null = null;
    try {
      compiled = hooks.length ? await compileHooks(this.gpu, plan.sites, hooks, this.dummy) : null;
    } catch (e) {
      spliced?.release();
      throw e;
    }

    // Outputs: the logits and every kept hook point. New buffers (not from the pool's free
    // lists) are allocated under an error scope so a driver out-of-memory names this run.
    const tensors = new Map<string, Tensor>();
    const allocate = () => {
      tensors.set('logits', Tensor.empty(this.gpu, plan.logitsShape, 'logits'));
      for (const [name, site] of plan.sites) if (keep(name)) tensors.set(name, Tensor.empty(this.gpu, site.shape, name));
    };
    try {
      if (fresh > 0) await this.gpu.guard(`allocating the outputs of a ${batch} x ${pos} run`, fresh, allocate);
      else allocate();
      this.gpu.device.queue.writeBuffer(plan.ids!, 0, flat);
      const logits = tensors.get('logits')!;
      await executePlan(this.gpu, plan, {
        hooks: compiled,
        keep: tensors,
        after: [{ kind: 'copy', src: plan.logits, srcOffset: 0, dst: logits.buffer, dstOffset: 0, size: logits.byteLength }],
        label: `forward ${batch}x${pos}`,
      });
    } catch (e) {
      for (const t of tensors.values()) t.release();
      throw e;
    } finally {
      compiled?.release();
      spliced?.release();
    }
    const out = tensors.get('logits')!;
    tensors.delete('logits');
    const cache = new ActivationCache(tensors);
    return {
      logits: out,
      cache,
      release() {
        out.release();
        cache.release();
      },
    };
  }

  /** TransformerLens' `run_with_cache`: logits plus the cache (all hook points unless filtered). */
  runWithCache(tokens: readonly (readonly number[])[], options: RunOptions = {}): Promise<RunResult> {
    return this.run(tokens, { cache: allButHeadResults, ...options });
  }

  /** TransformerLens' `run_with_hooks`: the logits of a run with interventions. */
  runWithHooks(tokens: readonly (readonly number[])[], hooks: readonly Intervention[], options: RunOptions = {}): Promise<RunResult> {
    return this.run(tokens, { ...options, hooks });
  }

  /**
   * The logit lens: ln_final (with its gain and bias, on each row's own statistics) and the
   * unembedding on residual rows [..., d_model], giving [..., d_vocab]. On the final residual it
   * reproduces the logits.
   */
  logitLens(resid: Float32Array, options: { applyLn?: boolean } = {}): Promise<Float32Array> {
    return logitLens(this.gpu, this.config, this.weights, resid, options.applyLn ?? true);
  }

  /** The residual direction of a logit difference: W_U[:, good] - W_U[:, bad], [d_model]. */
  async logitDiffDirection(good: number, bad: number): Promise<Float32Array> {
    const [a, b] = await Promise.all([unembedColumn(this.gpu, this.config, this.weights, good), unembedColumn(this.gpu, this.config, this.weights, bad)]);
    return a.map((v, i) => v - b[i]);
  }

  /**
   * For experiments (src/experiments): a plan of any shape, resumed passes included, that the
   * caller owns and destroys. Allocation runs under an error scope.
   */
  async buildPlan(shape: PlanShape): Promise<ForwardPlan> {
    if (this.destroyed) throw new Error('this model was destroyed');
    return this.gpu.guard(`preparing a ${shape.batch} x ${shape.pos} pass`, scratchBytes(this.config, shape), () =>
      buildForward(this.gpu, this.config, this.weights, shape),
    );
  }

  /**
   * For experiments: `plan` with SAEs spliced in (see `src/features/splice.ts`); the result's
   * `destroy()` frees both, `release()` only what the splice added. `hooks` are the run's
   * interventions (an error term needs a clean pass when they touch the SAE's features).
   */
  splice(plan: ForwardPlan, saes: readonly SaeUse[], hooks: readonly Intervention[] = []): ReturnType<typeof spliceSaes> {
    for (const u of saes) asSplice(u).sae.assertLive();
    return spliceSaes(this.gpu, plan, saes, { hooked: new Set(hooks.map((h) => h.hook)), weight: (name) => this.weightBuffer(name) });
  }

  /** A norm weight by TransformerLens name (blocks.L.ln1.w, blocks.L.ln2.w), as an SAE's input gain reads it. */
  private weightBuffer(name: string): GPUBuffer {
    const m = /^blocks\.(\d+)\.(ln1|ln2)\.w$/.exec(name);
    const layer = m ? this.weights.layers[Number(m[1])] : undefined;
    if (!m || !layer) throw new Error(`no weight ${name} in this model`);
    return m[2] === 'ln1' ? layer.ln1_w : layer.ln2_w;
  }

  /** For experiments: interventions compiled against a plan's sites (release after submitting). */
  compileHooks(plan: ForwardPlan, hooks: readonly Intervention[]): Promise<CompiledHooks> {
    return compileHooks(this.gpu, plan.sites, hooks, this.dummy);
  }

  /** Frees the weights and every plan. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const p of this.plans.values()) p.destroy();
    this.plans.clear();
    this.weights.destroy();
    this.dummy.destroy();
  }

  private async plan(batch: number, pos: number, withResult: boolean): Promise<ForwardPlan> {
    const key = planKey(batch, pos, withResult);
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
    const shape = { batch, pos, withResult };
    const built = await this.gpu.guard(`preparing a ${batch} x ${pos} forward`, scratchBytes(this.config, shape), () =>
      buildForward(this.gpu, this.config, this.weights, shape),
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

