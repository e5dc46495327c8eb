/**
 * `model.runWithGrad`: one forward and one backward in one command encoder and one submit.
 *
 * The forward replays the forward plan (with the run's interventions) and copies out what the
 * backward reads; the metric's backward writes the logits' gradient; then the backward plan runs,
 * and at each gradient site the run copies the gradient into the gradient cache and applies the
 * forward's interventions to it as PyTorch's autograd would:
 *
 *   forward intervention at a hook     what reaches the activations upstream of it
 *   zero, mean, replace (patch), set   nothing (the activation no longer depends on them)
 *   scale by f                         f x the gradient
 *   add a vector                       the gradient unchanged
 *   a JavaScript hook function         refused: it cannot be differentiated
 *
 * The gradient a site reports is that of the activation after its interventions (what the rest
 * of the pass read), as TransformerLens' backward hooks see it.
 */
import type { Gpu } from '../gpu/device.ts';
import { OutOfMemoryError, formatBytes } from '../gpu/errors.ts';
import { sizeClass } from '../gpu/pool.ts';
import { submitSteps, type Step } from '../gpu/recorder.ts';
import { Tensor, numel } from '../gpu/tensor.ts';
import { ActivationCache } from './activation-cache.ts';
import { compileHooks, type CompiledHooks } from './hook-plan.ts';
import { unknownHookMessage } from '../model/hook-points.ts';
import type { Intervention } from './interventions.ts';
import { GpuMetricBackward } from '../model/metric-backward.ts';
import { metricColumns, metricPositions, validateMetric, type Metric } from '../model/metric.ts';
import { backwardBytes, buildBackward, savedSites, type BackwardPlan, type MemoryMode } from '../model/backward.ts';
import type { ModelConfig } from '../model/config.ts';
import { buildForward, scratchSizes, type ForwardPlan } from '../model/forward.ts';
import type { GpuWeights } from '../model/gpu-weights.ts';
import { hookShapes } from '../model/hook-points.ts';
import { validateTokens } from '../model/tokens.ts';
import { WeightGradients } from '../model/weight-grads.ts';
import { asSplice, saeHookShapes, saeScratchFloats, spliceSaes, type SaeUse, type SplicedPlan } from './splice.ts';
import { saeBackwardFloats, spliceSaeBackward, type SplicedBackward } from './splice-backward.ts';

/** Which hook points a run keeps: a list of names, a pattern, or a predicate. */
export type NameFilter = readonly string[] | RegExp | ((name: string) => boolean);

export interface GradOptions {
  /** Activations to return (hook names; none by default). */
  cache?: NameFilter;
  /** Gradients to return, by the hook name of the activation (every gradient site by default). */
  grads?: NameFilter;
  /** Interventions for this run; the gradient flows through the intervened graph. */
  hooks?: readonly Intervention[];
  /**
   * Zero or scale interventions that act on the gradient stream only (the forward is untouched):
   * at the named hook the gradient is reported as computed, then zeroed or scaled before it
   * flows upstream. AtP*'s GradDrop zeroes a layer's outputs this way.
   */
  gradHooks?: readonly Intervention[];
  /** Also compute the weight gradients (into `model.weightGrads`, see `WeightGradients`). */
  weights?: boolean;
  /** Add the weight gradients to what the store holds (gradient accumulation) instead of overwriting. */
  accumulate?: boolean;
  /**
   * Hold parts of the graph constant, as circuit-tracer's linearized backward does: `pattern`
   * freezes every hook_pattern (no gradient through the softmax to the scores, queries and
   * keys), `scale` every norm's hook_scale (the norms become linear maps).
   */
  detach?: { pattern?: boolean; scale?: boolean };
  /**
   * What the backward keeps of the forward: 'keep' every layer's activations, 'recompute' only
   * each layer's resid_pre (re-running the layer's forward before its backward), 'auto' (the
   * default) keep when it fits the memory budget, else recompute.
   */
  memory?: MemoryMode | 'auto';
  /**
   * SAEs and transcoders spliced into this run (as `run`'s `saes`): their hook points have
   * gradients too (`…hook_sae_acts_post`: d metric / d each feature), and the gradient flows
   * through them to the model (see `src/hooks/splice-backward.ts`: with the error term and no
   * intervention on the SAE, what the model's hooks receive is unchanged by the splice).
   */
  saes?: readonly SaeUse[];
}

export interface GradResult {
  /** Each batch row's metric, [batch] (read back). */
  metric: Float64Array;
  /** The activations asked for in `cache`. */
  cache: ActivationCache;
  /** d(sum over rows of each row's metric) / d(activation), by hook name, activation-shaped. */
  grads: ActivationCache;
  /** The model's weight gradients (with `weights`), valid until the next such run or their release. */
  weightGrads: WeightGradients | null;
  /** How the backward held the forward, and the bytes it took. */
  memory: { mode: MemoryMode; forwardBytes: number; savedBytes: number; gradScratchBytes: number };
  /** Releases the caches (not the model's weight gradients). */
  release(): void;
}

/** What `runWithGrad` needs of a model. */
export interface GradContext {
  gpu: Gpu;
  config: ModelConfig;
  weights: GpuWeights;
  /** Bound where an intervention kernel reads no source. */
  dummy: GPUBuffer;
  state: GradState;
  /** A model weight by name, for an SAE's input gain (`blocks.L.ln2.w`). */
  weight?: (name: string) => GPUBuffer;
}

/** Per-model state: the last plan pair, and the weight gradients. */
export class GradState {
  plan: { key: string; fwd: ForwardPlan; bwd: BackwardPlan } | null = null;
  weightGrads: WeightGradients | null = null;

  destroy(): void {
    if (this.plan) {
      this.plan.bwd.destroy();
      this.plan.fwd.destroy();
      this.plan = null;
    }
    this.weightGrads?.release();
    this.weightGrads = null;
  }
}

function resolveFilter(filter: NameFilter | undefined, known: readonly string[], fallback: (n: string) => boolean): (name: string) => boolean {
  if (!filter) return fallback;
  if (filter instanceof RegExp) return (n) => filter.test(n);
  if (typeof filter === 'function') return filter;
  const wanted = new Set(filter);
  for (const n of wanted) if (!known.includes(n)) throw new Error(unknownHookMessage(n, [...known]));
  return (n) => wanted.has(n);
}

/** The forward's interventions as they act on the gradient (see the table at the top). */
function gradientInterventions(hooks: readonly Intervention[]): Intervention[] {
  const out: Intervention[] = [];
  for (const iv of hooks) {
    if (iv.op === 'callback') throw new Error(`the hook function at ${iv.hook} cannot be differentiated; use the interventions (zero, mean, patch, scale, add) with runWithGrad`);
    if (iv.hook.endsWith('.attn.hook_result')) throw new Error(`runWithGrad does not differentiate through hook_result interventions (${iv.hook}); intervene on hook_z`);
    const outputUse = /\.hook_(pattern|normalized|scale)$/.test(iv.hook);
    if (outputUse && (iv.op === 'scale' || iv.op === 'add')) {
      throw new Error(`runWithGrad does not differentiate a ${iv.op} intervention on ${iv.hook}: its backward reads the activation as its op produced it; zero, mean-ablate or patch it instead`);
    }
    const { op: _op, ...rest } = iv as Intervention & Record<string, unknown>;
    const sel = { batch: rest.batch, pos: rest.pos, heads: rest.heads } as Record<string, unknown>;
    for (const k of Object.keys(sel)) if (sel[k] === undefined) delete sel[k];
    if (iv.op === 'zero' || iv.op === 'mean' || iv.op === 'replace' || iv.op === 'set') out.push({ hook: iv.hook, op: 'zero', ...sel });
    else if (iv.op === 'scale') out.push({ hook: iv.hook, op: 'scale', factor: iv.factor, ...sel });
  }
  return out;
}

/**
 * Records forward plan steps [from, to) with the run's interventions, and copies of the sites in
 * `copies` after them. Mirrors `executePlan` (on-demand steps run when their sites are read or
 * changed), without hook functions, which a differentiated run refuses.
 */
function recordForward(fwd: ForwardPlan, from: number, to: number, hooks: CompiledHooks | null, copies: ReadonlyMap<string, GPUBuffer[]>, out: Step[]): void {
  const changed = (name: string) => !!hooks?.bySite.has(name);
  const read = (name: string) => changed(name) || copies.has(name);
  for (let i = from; i < to; i++) {
    const s = fwd.steps[i];
    if (s.kind === 'dispatch') {
      out.push(s);
      continue;
    }
    if (s.kind === 'on-demand') {
      if (s.ifRead.some(read) || s.ifChanged.some(changed)) out.push(...s.dispatches);
      continue;
    }
    for (const work of hooks?.bySite.get(s.name) ?? []) if (work.kind === 'dispatch') out.push(...work.dispatches);
    for (const dst of copies.get(s.name) ?? []) out.push({ kind: 'copy', src: s.buffer, srcOffset: 0, dst, dstOffset: 0, size: numel(s.shape) * 4 });
  }
}

/**
 * Bytes the plans of a gradient run take (pool size classes): the forward's scratch, what the
 * backward saves of it, and the backward's gradient scratch. Weight gradients and the returned
 * caches come on top.
 */
export function gradPlanBytes(
  cfg: ModelConfig,
  batch: number,
  pos: number,
  positions: readonly number[],
  mode: MemoryMode,
  options: { weights?: boolean; accumulate?: boolean; columns?: readonly number[] | null } = {},
): { forward: number; saved: number; scratch: number } {
  const shape = { batch, pos, logitPositions: [...positions], logitTokens: options.columns ?? undefined };
  const forward = Object.values(scratchSizes(cfg, shape)).reduce((n, f) => n + (f ? sizeClass(f * 4) : 0), 0);
  return { forward, ...backwardBytes(cfg, batch, pos, positions.length, mode, !!options.weights, !!options.accumulate, options.columns?.length ?? 0) };
}

const siteIndex = (fwd: ForwardPlan, name: string) => fwd.steps.findIndex((s) => s.kind === 'site' && s.name === name);

export async function runWithGrad(ctx: GradContext, tokens: readonly (readonly number[])[], metric: Metric | readonly Metric[], options: GradOptions = {}): Promise<GradResult> {
  const { gpu, config: cfg } = ctx;
  const { batch: B, pos: T, flat } = validateTokens(tokens, cfg);
  const metrics = Array.isArray(metric) ? (metric as readonly Metric[]) : [metric as Metric];
  if (Array.isArray(metric) && metric.length !== B) throw new Error(`${metric.length} metrics for ${B} token rows; give one metric, or one per row`);
  for (const m of metrics) validateMetric(m, T, cfg.d_vocab);
  const positions = [...new Set(metrics.flatMap((m) => metricPositions(m)))].sort((a, b) => a - b);
  // A metric of logits alone (a logit difference) needs only its vocabulary columns unembedded,
  // forward and backward.
  const perMetric = metrics.map((m) => metricColumns(m));
  const columns = perMetric.every((c) => c !== null) ? [...new Set(perMetric.flatMap((c) => c!))].sort((a, b) => a - b) : null;
  const hooks = options.hooks ?? [];
  for (const g of options.gradHooks ?? []) {
    if (g.op !== 'zero' && g.op !== 'scale') throw new Error(`gradient-only interventions are zero or scale, not ${g.op} (at ${g.hook})`);
  }
  const gradHooks = [...gradientInterventions(hooks), ...(options.gradHooks ?? [])];
  const detachPattern = !!options.detach?.pattern;
  const detachScale = !!options.detach?.scale;
  const wantWeights = !!options.weights;
  const accumulate = !!options.accumulate;
  if (accumulate && !wantWeights) throw new Error('accumulate applies to weight gradients: pass weights: true as well');

  // The memory plan, checked against the budget before anything is allocated.
  const P = positions.length;
  const shape = { batch: B, pos: T, logitPositions: positions, logitTokens: columns ?? undefined };
  const planOptions = { weights: wantWeights, accumulate, columns };
  const fwdBytes = gradPlanBytes(cfg, B, T, positions, 'keep', planOptions).forward;
  const state = ctx.state;
  if (state.weightGrads?.isReleased) state.weightGrads = null;
  const weightBytes = wantWeights && !state.weightGrads ? gpu.pool.bytesFor([WeightGradients.floats(cfg) * 4]) : 0;
  const outputs = (names: number[]) => gpu.pool.bytesFor(names.map((n) => n * 4));
  const keyOf = (mode: MemoryMode) => [B, T, positions.join(','), columns?.join(',') ?? 'all', mode, detachPattern, detachScale, wantWeights, accumulate].join('|');
  const need = (mode: MemoryMode) => {
    const cached = state.plan?.key === keyOf(mode);
    const b = gradPlanBytes(cfg, B, T, positions, mode, planOptions);
    return (cached ? 0 : b.forward + b.saved + b.scratch) + weightBytes;
  };
  // Outputs, from the hook shapes (the plans' site lists are the same names), SAE hook points too.
  const shapes = hookShapes(cfg, B, T);
  const saes = options.saes ?? [];
  for (const [n, sh] of saeHookShapes(saes, shapes, B, T)) shapes.set(n, sh);
  for (const u of saes) {
    const out = asSplice(u).sae.hookNameOut;
    // The norm backward reads its normalized input and scale as the norm produced them.
    if (/\.hook_(normalized|scale)$/.test(out)) throw new Error(`runWithGrad cannot differentiate through an SAE that writes ${out} (a norm's hook point); splice it at the norm's output instead`);
  }
  const fwdNames = [...shapes.keys()].filter((n) => !n.endsWith('.attn.hook_result') && (n !== 'unembed.hook_out' || P === T));
  const gradNames = [...shapes.keys()].filter((n) => !n.endsWith('.attn.hook_result') && n !== 'unembed.hook_out');
  for (const h of hooks) if (!shapes.has(h.hook)) throw new Error(unknownHookMessage(h.hook, [...shapes.keys()]));
  const keepAct = resolveFilter(options.cache, fwdNames, () => false);
  const keepGrad = resolveFilter(options.grads, gradNames, () => true);
  const actNames = fwdNames.filter(keepAct);
  const gradOut = gradNames.filter(keepGrad);
  const saeFloats = saes.flatMap((u) => {
    const { sae, errorTerm } = asSplice(u);
    return [...saeScratchFloats([u], B * T), saeBackwardFloats(sae.config, B * T, errorTerm), B * T * sae.config.d_sae];
  });
  const outBytes = outputs([...actNames, ...gradOut].map((n) => numel(shapes.get(n)!))) + outputs([B * P, B * P]) + outputs(saeFloats);
  // The last plan's buffers go back to the pool when a different plan replaces it.
  const planBytes = state.plan ? state.plan.fwd.bytes + state.plan.bwd.bytes.saved + state.plan.bwd.bytes.scratch : 0;
  const availableFor = (m: MemoryMode) => gpu.pool.availableBytes + (state.plan && state.plan.key !== keyOf(m) ? planBytes : 0);
  let mode: MemoryMode;
  if (options.memory && options.memory !== 'auto') mode = options.memory;
  else mode = need('keep') + outBytes <= availableFor('keep') ? 'keep' : 'recompute';
  const needed = need(mode) + outBytes;
  const available = availableFor(mode);
  if (needed > available) {
    throw new OutOfMemoryError(
      `this gradient run needs ${formatBytes(needed)} of GPU memory (${mode === 'keep' ? 'every layer kept' : 'layers recomputed'}: forward ${formatBytes(fwdBytes)}, ` +
        `backward ${formatBytes(backwardBytes(cfg, B, T, P, mode).saved + backwardBytes(cfg, B, T, P, mode).scratch)}` +
        `${weightBytes ? `, weight gradients ${formatBytes(weightBytes)}` : ''}, ${actNames.length + gradOut.length} cached tensors) but ` +
        `${formatBytes(Math.max(0, available))} is available; ask for fewer gradients (grads: [...]), use memory: 'recompute', or a smaller batch`,
    );
  }

  // Plans: the last pair is kept; a new shape or option set replaces it.
  const key = keyOf(mode);
  if (state.plan?.key !== key) {
    if (state.plan) {
      state.plan.bwd.destroy();
      state.plan.fwd.destroy();
      state.plan = null;
    }
    if (wantWeights && !state.weightGrads) state.weightGrads = await gpu.guard('allocating weight gradients', weightBytes, () => new WeightGradients(gpu, cfg, ctx.weights));
    const fwd = await gpu.guard(`preparing a ${B} x ${T} forward for gradients`, fwdBytes, () => buildForward(gpu, cfg, ctx.weights, shape));
    try {
      const bwd = await gpu.guard(`preparing a ${B} x ${T} backward`, 0, () =>
        buildBackward(gpu, cfg, ctx.weights, fwd, { detachPattern, detachScale, weightGrads: wantWeights ? state.weightGrads : null, accumulate, columns, memory: mode }),
      );
      state.plan = { key, fwd, bwd };
    } catch (e) {
      fwd.destroy();
      throw e;
    }
  } else if (wantWeights && !state.weightGrads) {
    throw new Error('internal: a weight-gradient plan without its store');
  }
  const { fwd: basePlan, bwd } = state.plan!;

  const compiled: CompiledHooks[] = [];
  const acts = new Map<string, Tensor>();
  const grads = new Map<string, Tensor>();
  let mb: GpuMetricBackward | null = null;
  let sf: SplicedPlan | null = null;
  let sb: SplicedBackward | null = null;
  try {
    // SAEs: spliced into this run's forward and backward (the cached plans stay unspliced).
    if (saes.length) {
      sf = spliceSaes(gpu, basePlan, saes, { hooked: new Set(hooks.map((h) => h.hook)), weight: ctx.weight, keepClean: true });
      sb = spliceSaeBackward(gpu, bwd, sf.records, new Set(gradHooks.map((h) => h.hook)));
    }
    const fwd = sf?.plan ?? basePlan;
    const bwdSteps = sb?.steps ?? bwd.steps;
    const gradSites = sb?.gradSites ?? bwd.gradSites;
    // What the backward reads of an SAE's output hook is the value the model read: after the splice.
    const readAt = new Map<string, string>((sf?.records ?? []).map((r) => [r.hookOut, `${r.hookIn}.hook_sae_output`]));
    const at = (name: string) => readAt.get(name) ?? name;
    const fwdHooks = hooks.length ? await compileHooks(gpu, fwd.sites, hooks, ctx.dummy) : null;
    if (fwdHooks) compiled.push(fwdHooks);
    const bwdHooks = gradHooks.length ? await compileHooks(gpu, gradSites, gradHooks, ctx.dummy) : null;
    if (bwdHooks) compiled.push(bwdHooks);
    for (const n of actNames) acts.set(n, Tensor.empty(gpu, fwd.sites.get(n)!.shape, n));
    for (const n of gradOut) grads.set(n, Tensor.empty(gpu, gradSites.get(n)!.shape, `grad ${n}`));
    mb = new GpuMetricBackward(gpu, Array.isArray(metric) ? metric : (metric as Metric), {
      logits: bwd.dlogits,
      B,
      positions,
      V: columns?.length ?? cfg.d_vocab,
      columns,
      softcap: cfg.output_logits_soft_cap ?? null, // the logits are capped: the cap's backward is folded in
    });

    gpu.device.queue.writeBuffer(fwd.ids!, 0, flat);
    bwd.setTokens(flat);
    const steps: Step[] = [...(fwdHooks?.prelude ?? []), ...(bwdHooks?.prelude ?? [])];
    // The forward, copying the user's cache and what the backward reads.
    const copies = new Map<string, GPUBuffer[]>();
    const addCopy = (name: string, dst: GPUBuffer) => copies.set(name, [...(copies.get(name) ?? []), dst]);
    for (const [n, t] of acts) addCopy(n, t.buffer);
    for (const [n, b] of bwd.forwardSaves) addCopy(at(n), b);
    recordForward(fwd, 0, fwd.steps.length, fwdHooks, copies, steps);
    steps.push(...mb.dispatches);
    // The backward.
    for (const s of bwdSteps) {
      if (s.kind === 'dispatch' || s.kind === 'copy') {
        steps.push(s);
        continue;
      }
      if (s.kind === 'replay') {
        // Layer s.layer's forward again, from its saved resid_pre, into the shared saved set.
        const l = s.layer;
        // Up to the layer's last site the backward reads (mlp.hook_post, or ln2_post's after the
        // MLP's projection in Gemma 3).
        const start = siteIndex(fwd, `blocks.${l}.hook_resid_pre`);
        const end = Math.max(...savedSites(cfg).map((rel) => siteIndex(fwd, at(`blocks.${l}.${rel}`)))) + 1;
        const residBuffer = (fwd.steps[start] as { buffer: GPUBuffer }).buffer;
        steps.push({ kind: 'copy', src: bwd.savedResid[l], srcOffset: 0, dst: residBuffer, dstOffset: 0, size: B * T * cfg.d_model * 4 });
        const layerCopies = new Map<string, GPUBuffer[]>();
        for (const rel of savedSites(cfg)) layerCopies.set(at(`blocks.${l}.${rel}`), [bwd.replaySaves.get(rel)!]);
        recordForward(fwd, start + 1, end, fwdHooks, layerCopies, steps);
        continue;
      }
      const t = grads.get(s.name);
      if (t) steps.push({ kind: 'copy', src: s.buffer, srcOffset: 0, dst: t.buffer, dstOffset: 0, size: t.byteLength });
      for (const work of bwdHooks?.bySite.get(s.name) ?? []) if (work.kind === 'dispatch') steps.push(...work.dispatches);
    }
    submitSteps(gpu, steps, `forward + backward ${B}x${T}`);
    const values = await mb.rowValues();
    const cache = new ActivationCache(acts);
    const gradCache = new ActivationCache(grads);
    return {
      metric: values,
      cache,
      grads: gradCache,
      weightGrads: wantWeights ? state.weightGrads : null,
      memory: { mode, forwardBytes: fwd.bytes, savedBytes: bwd.bytes.saved, gradScratchBytes: bwd.bytes.scratch },
      release() {
        cache.release();
        gradCache.release();
      },
    };
  } catch (e) {
    for (const t of [...acts.values(), ...grads.values()]) t.release();
    throw e;
  } finally {
    for (const c of compiled) c.release();
    mb?.release();
    sb?.release();
    sf?.release();
  }
}
