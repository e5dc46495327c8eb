/**
 * A loaded model: config, GPU weights, and `run`, which executes the forward for a batch of
 * token sequences and keeps what it is asked to keep.
 */
import type { Gpu } from '../gpu/device.ts';
import { OutOfMemoryError, formatBytes } from '../gpu/errors.ts';
import { Tensor, numel } from '../gpu/tensor.ts';
import { executePlan } from './execute.ts';
import { compileHooks, type CompiledHooks } from './hook-plan.ts';
import type { Intervention } from './interventions.ts';
import { ActivationCache } from './activation-cache.ts';
import type { ModelConfig } from '../model/config.ts';
import { buildForward, scratchBytes, scratchSizes, type ForwardPlan, type PlanShape } from '../model/forward.ts';
import { hookNames, hookShapes, unknownHookMessage, type HookName, type LayerRange, type SiteName, type SiteNameLike } from '../model/hook-points.ts';
import type { GpuWeights } from '../model/gpu-weights.ts';
import { validateTokens } from '../model/tokens.ts';
import type { TextTokenizer } from '../model/tokenizer.ts';
import { blockWeights, readTlWeight, stackLayers, tlWeightShapes, type BlockWeights, type WeightTensor } from '../model/tl-weights.ts';
import { logitLens, unembedColumn } from '../model/logit-lens.ts';
import { GradState, runWithGrad, type GradOptions, type GradResult } from './grad-run.ts';
import type { Metric } from '../model/metric.ts';
import type { WeightGradients } from '../model/weight-grads.ts';
import type { Processing } from '../model/processing.ts';
import { GpuLoss } from '../model/metric.ts';
import { runResult, type RunResult } from './run-result.ts';
import type { Step } from '../gpu/recorder.ts';
import { asSplice, saeHookShapes, saeScratchFloats, spliceSaes, type SaeUse } from './splice.ts';

export type { RunResult } from './run-result.ts';

/** Token ids, [batch][pos]: equal-length rows. */
export type Tokens = readonly (readonly number[])[];

/** Which hook points a run keeps: a list of names, a pattern, or a predicate. */
export type CacheFilter = readonly SiteNameLike[] | RegExp | ((name: SiteName) => boolean);

export interface RunOptions {
  /** Hook points to copy into the returned cache (none by default). */
  cache?: CacheFilter;
  /** Interventions for this run only (see `src/hooks/interventions.ts`). */
  hooks?: readonly Intervention[];
  /**
   * What the run returns, as TransformerLens' `return_type`: 'logits' (default); 'loss', the mean
   * cross-entropy of each position predicting the next token, over every row and position,
   * reduced on the GPU; or 'both'.
   */
  returnType?: 'logits' | 'loss' | 'both';
  /** With a loss: one value per token, [batch, pos - 1] (TransformerLens' `loss_per_token`). */
  lossPerToken?: boolean;
  /**
   * Start at this layer (TransformerLens' `start_at_layer`; negative counts from the end): the
   * input is then the residual stream entering it, a Tensor [batch, pos, d_model]. 0 skips the
   * embedding; n_layers runs ln_final and the unembedding only.
   */
  startAtLayer?: number;
  /**
   * Stop before this layer (TransformerLens' `stop_at_layer`, exclusive; negative counts from the
   * end): the result's `residual` is the residual stream entering it; no logits.
   */
  stopAtLayer?: number;
  /** The token ids of a run that starts from a residual (startAtLayer), for its loss. */
  tokens?: Tokens;
  /**
   * SAEs and transcoders spliced into this run only (SAELens' `run_with_saes`): each replaces its
   * output hook with its reconstruction (plus the error term with `withErrorTerm(sae)`) and adds
   * its own hook points (`<hook>.hook_sae_acts_post`, …) for caching and interventions.
   */
  saes?: readonly SaeUse[];
}

const planKey = (s: PlanShape) => `${s.batch}x${s.pos}${s.withResult ? '+result' : ''}${s.fromResidual ? `@${s.fromLayer}` : ''}${s.toLayer !== undefined ? `..${s.toLayer}` : ''}`;

/** `runWithCache`'s default: every hook point but hook_result, which TransformerLens also skips unless enabled. */
const allButHeadResults = (name: string) => !name.endsWith('.attn.hook_result');

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
    /** The model's tokenizer (`tokenizer.json` of its folder), or null for a model without one. */
    readonly tokenizer: TextTokenizer | null = null,
    /** How the weights were prepared on load ('transformer-lens': TransformerLens' `from_pretrained` processing). */
    readonly processing: Processing = 'none',
  ) {
    this.dummy = gpu.device.createBuffer({ size: 16, usage: 0x80 /* STORAGE */, label: 'no source' });
  }

  /** The weights on the GPU, in the forward's layout (for training, which updates them in place). */
  get gpuWeights(): GpuWeights {
    return this.weights;
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

  /**
   * TransformerLens' `to_tokens`: text (or a list of texts) to token ids [batch][pos], a BOS
   * token first unless `prependBos: false`, rows of a batch padded on `paddingSide` ('right'),
   * cut to the context unless `truncate: false`. A single text gives one row.
   */
  toTokens(input: string | readonly string[], options: { prependBos?: boolean; paddingSide?: 'left' | 'right'; truncate?: boolean } = {}): number[][] {
    const texts = typeof input === 'string' ? [input] : input;
    if (!Array.isArray(texts) || texts.length === 0) throw new Error('toTokens takes a text or a non-empty list of texts');
    return this.needTokenizer('toTokens').toTokens(texts, {
      prependBos: options.prependBos,
      paddingSide: options.paddingSide,
      maxLength: options.truncate === false ? undefined : this.config.n_ctx,
    });
  }

  /**
   * TransformerLens' `to_str_tokens`: each token's text. A text is tokenized first (a BOS token
   * first unless `prependBos: false`); ids are decoded one by one. A list of texts or of id rows
   * gives one list per item.
   */
  toStrTokens(input: string | readonly number[], options?: { prependBos?: boolean }): string[];
  toStrTokens(input: readonly string[] | readonly (readonly number[])[], options?: { prependBos?: boolean }): string[][];
  toStrTokens(input: string | readonly number[] | readonly string[] | readonly (readonly number[])[], options: { prependBos?: boolean } = {}): string[] | string[][] {
    const tok = this.needTokenizer('toStrTokens');
    if (typeof input === 'string') return this.toTokens(input, { prependBos: options.prependBos })[0].map((id) => tok.tokenText(id));
    if (!Array.isArray(input)) throw new Error('toStrTokens takes a text, a list of texts, token ids or rows of token ids');
    if (input.every((x) => typeof x === 'number')) return (input as readonly number[]).map((id) => tok.tokenText(id));
    return (input as readonly (string | readonly number[])[]).map((x) => (typeof x === 'string' ? this.toStrTokens(x, options) : this.toStrTokens(x)));
  }

  /** TransformerLens' `to_single_token`: the id of a text that is exactly one token (no BOS). */
  toSingleToken(text: string): number {
    const ids = this.toTokens(text, { prependBos: false })[0];
    if (ids.length !== 1) {
      throw new Error(`"${text}" is ${ids.length} tokens ([${ids.join(', ')}]), not one; toSingleToken needs text that is exactly one token (mind a leading space: " Mary")`);
    }
    return ids[0];
  }

  /**
   * TransformerLens' `to_string`: the text of token ids (a row gives a string, rows give a list
   * of strings), special tokens kept, spaces as they are. Without an argument, a description of
   * the model.
   */
  toString(): string;
  toString(tokens: readonly number[]): string;
  toString(tokens: readonly (readonly number[])[]): string[];
  toString(tokens?: readonly number[] | readonly (readonly number[])[]): string | string[] {
    if (tokens === undefined) {
      const c = this.config;
      return `Model(${c.architecture}, ${c.n_layers} layers, d_model ${c.d_model}, ${c.n_heads} heads, vocab ${c.d_vocab})`;
    }
    const tok = this.needTokenizer('toString');
    if (tokens.every((x) => typeof x === 'number')) return tok.decode(tokens as readonly number[]);
    return (tokens as readonly (readonly number[])[]).map((row) => tok.decode(row));
  }

  private needTokenizer(what: string): TextTokenizer {
    if (!this.tokenizer) {
      throw new Error(`${what} needs a tokenizer and this model has none (its folder has no tokenizer.json, or it was loaded with tokenizer: false); pass token ids instead`);
    }
    return this.tokenizer;
  }

  /**
   * One weight under TransformerLens' name and in its shape, read back from the GPU:
   * `await model.weight('blocks.0.attn.W_Q')` is [n_heads, d_model, d_head]. Names and shapes:
   * `src/model/tl-weights.ts`.
   */
  weight(name: string): Promise<WeightTensor> {
    if (this.destroyed) return Promise.reject(new Error('this model was destroyed'));
    return readTlWeight(this.gpu, this.config, this.weights, name);
  }

  /** TransformerLens' state dict of the raw weights (its names, shapes and order), read from the GPU. */
  async stateDict(): Promise<Map<string, WeightTensor>> {
    const out = new Map<string, WeightTensor>();
    for (const name of tlWeightShapes(this.config).keys()) out.set(name, await this.weight(name));
    return out;
  }

  /** TransformerLens' `model.blocks[L]`: `await model.blocks[0].attn.W_Q`, `await model.blocks[1].mlp.W_out`. */
  get blocks(): BlockWeights[] {
    return blockWeights(this.config, (n) => this.weight(n));
  }

  // TransformerLens' model-level weights; per-layer ones stacked [n_layers, ...]. Each read on access.
  /** [d_vocab, d_model] */
  get W_E(): Promise<WeightTensor> {
    return this.weight('embed.W_E');
  }
  /** [n_ctx, d_model] (learned positions only) */
  get W_pos(): Promise<WeightTensor> {
    return this.weight('pos_embed.W_pos');
  }
  /** [d_model, d_vocab] */
  get W_U(): Promise<WeightTensor> {
    return this.weight('unembed.W_U');
  }
  /** [d_vocab] (zeros) */
  get b_U(): Promise<WeightTensor> {
    return this.weight('unembed.b_U');
  }
  /** [n_layers, n_heads, d_model, d_head] */
  get W_Q(): Promise<WeightTensor> {
    return this.stacked('attn.W_Q');
  }
  /** [n_layers, n_heads, d_model, d_head] (key/value heads repeated for the query heads that share them) */
  get W_K(): Promise<WeightTensor> {
    return this.stacked('attn.W_K');
  }
  /** [n_layers, n_heads, d_model, d_head] */
  get W_V(): Promise<WeightTensor> {
    return this.stacked('attn.W_V');
  }
  /** [n_layers, n_heads, d_head, d_model] */
  get W_O(): Promise<WeightTensor> {
    return this.stacked('attn.W_O');
  }
  /** [n_layers, n_heads, d_head] */
  get b_Q(): Promise<WeightTensor> {
    return this.stacked('attn.b_Q');
  }
  /** [n_layers, n_heads, d_head] */
  get b_K(): Promise<WeightTensor> {
    return this.stacked('attn.b_K');
  }
  /** [n_layers, n_heads, d_head] */
  get b_V(): Promise<WeightTensor> {
    return this.stacked('attn.b_V');
  }
  /** [n_layers, d_model] */
  get b_O(): Promise<WeightTensor> {
    return this.stacked('attn.b_O');
  }
  /** [n_layers, d_model, d_mlp] */
  get W_in(): Promise<WeightTensor> {
    return this.stacked('mlp.W_in');
  }
  /** [n_layers, d_model, d_mlp] (gated MLPs only) */
  get W_gate(): Promise<WeightTensor> {
    return this.stacked('mlp.W_gate');
  }
  /** [n_layers, d_mlp, d_model] */
  get W_out(): Promise<WeightTensor> {
    return this.stacked('mlp.W_out');
  }
  /** [n_layers, d_mlp] */
  get b_in(): Promise<WeightTensor> {
    return this.stacked('mlp.b_in');
  }
  /** [n_layers, d_model] */
  get b_out(): Promise<WeightTensor> {
    return this.stacked('mlp.b_out');
  }

  private stacked(suffix: string): Promise<WeightTensor> {
    return stackLayers(this.config, (n) => this.weight(n), suffix);
  }

  /** Every hook point name of this model, in forward order. */
  hookNames(): HookName[] {
    return hookNames(this.config);
  }

  /**
   * Runs the forward on `tokens` ([batch][pos], equal-length rows), applying `hooks` and keeping
   * the hook points `cache` asks for. One command encoder, one submit, no readback, unless a
   * `callback` hook needs the activation on the CPU (it splits the pass there). With
   * `startAtLayer` the input is a residual stream (a Tensor [batch, pos, d_model]) instead.
   *
   * Runs of one model are taken in call order: runs of the same shape share their plan's
   * scratch, and a callback hook's pause must not let another run overwrite it.
   */
  run(input: Tokens | Tensor, options: RunOptions = {}): Promise<RunResult> {
    const result = this.queue.then(() => this.runNow(input, options));
    this.queue = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  private queue: Promise<void> = Promise.resolve();

  /** Throws once `destroy()` has been called: before a run (`during` false) or part-way through one. */
  assertLive(during = true): void {
    if (!this.destroyed) return;
    throw new Error(during ? 'the model was destroyed during this run (model.destroy() was called, e.g. from a hook function); the run has no result' : 'this model was destroyed');
  }

  private async runNow(input: Tokens | Tensor, options: RunOptions): Promise<RunResult> {
    this.assertLive(false);
    const cfg = this.config;
    const range = resolveRange(cfg, options);
    const returnType = options.returnType ?? 'logits';
    if (!['logits', 'loss', 'both'].includes(returnType)) throw new Error(`returnType "${returnType}" is not one of 'logits', 'loss', 'both'`);
    const stopped = range.stopAtLayer !== undefined;
    if (stopped && returnType !== 'logits') throw new Error(`a run with stopAtLayer returns the residual stream, not a loss (returnType '${returnType}')`);
    if (options.lossPerToken && returnType === 'logits') throw new Error("lossPerToken needs returnType 'loss' or 'both'");
    const { batch, pos, flat, residualIn, lossTokens } = runInput(cfg, input, range, options, returnType !== 'logits');
    const all = hookShapes(cfg, batch, pos);
    const shapes = hookShapes(cfg, batch, pos, range);
    const saes = options.saes ?? [];
    for (const [n, s] of saeHookShapes(saes, shapes, batch, pos)) {
      shapes.set(n, s);
      all.set(n, s);
    }
    const absent = (name: string) =>
      all.has(name)
        ? `${name} is not computed by this run (${range.startAtLayer !== undefined ? `it starts at layer ${range.startAtLayer}` : ''}${range.startAtLayer !== undefined && stopped ? ' and ' : ''}${stopped ? `it stops before layer ${range.stopAtLayer}` : ''})`
        : unknownHookMessage(name, [...all.keys()]);
    const keep = resolveFilter(options.cache, shapes, absent);
    const hooks = options.hooks ?? [];
    for (const h of hooks) if (!shapes.has(h.hook)) throw new Error(absent(h.hook));
    // The shapes' keys come from the hook-point lists (model/hook-points.ts) and the SAEs' sites.
    const kept = [...shapes].filter(([n]) => keep(n as SiteName));
    const withResult = kept.some(([n]) => n.endsWith('.attn.hook_result')) || hooks.some((h) => h.hook.endsWith('.attn.hook_result'));
    const wantLogits = !stopped && returnType !== 'loss';
    const wantLoss = returnType !== 'logits';
    const shape: PlanShape = { batch, pos, withResult, ...(residualIn ? { fromLayer: range.startAtLayer, fromResidual: true } : {}), ...(stopped ? { toLayer: range.stopAtLayer } : {}) };

    // Everything the run allocates is known now: check it before allocating any of it.
    const sizes = kept.map(([, s]) => numel(s) * 4);
    if (wantLogits) sizes.push(batch * pos * cfg.d_vocab * 4);
    if (stopped) sizes.push(batch * pos * cfg.d_model * 4); // the residual out
    if (wantLoss) sizes.push(...GpuLoss.bytes(batch, pos));
    const scratch = !this.plans.has(planKey(shape));
    if (scratch)
      sizes.push(
        ...Object.values(scratchSizes(cfg, shape))
          .filter((f) => f > 0)
          .map((f) => f * 4),
      );
    sizes.push(...saeScratchFloats(saes, batch * pos).map((f) => f * 4));
    const needed = this.gpu.pool.bytesFor(sizes);
    const fresh = this.gpu.pool.newBytesFor(sizes);
    const left = this.gpu.pool.availableBytes;
    if (needed > left) {
      throw new OutOfMemoryError(
        `this run needs ${formatBytes(needed)} of GPU memory (${kept.length} cached hook points, ${stopped ? 'the residual stream' : 'logits'}` +
          `${scratch ? ', activation scratch' : ''}) but ${formatBytes(Math.max(0, left))} is available; ` +
          'cache fewer hook points (a narrower cache filter) or use a smaller batch',
      );
    }
    const base = await this.plan(shape);
    const spliced = saes.length ? this.splice(base, saes, hooks) : null;
    const plan = spliced?.plan ?? base;
    let compiled: CompiledHooks | null;
    try {
      compiled = hooks.length ? await compileHooks(this.gpu, plan.sites, hooks, this.dummy) : null;
    } catch (e) {
      spliced?.release();
      throw e;
    }
    if (this.destroyed) {
      compiled?.release();
      spliced?.release();
      this.assertLive(true);
    }

    // Outputs: the logits (or the residual where the run stops), the loss, every kept hook point.
    // New buffers (not from the pool's free lists) are allocated under an error scope so a
    // driver out-of-memory names this run.
    const tensors = new Map<string, Tensor>();
    const out: { logits: Tensor | null; residual: Tensor | null; loss: GpuLoss | null } = { logits: null, residual: null, loss: null };
    const allocate = () => {
      if (wantLogits) out.logits = Tensor.empty(this.gpu, plan.logitsShape, 'logits');
      if (stopped) out.residual = Tensor.empty(this.gpu, [batch, pos, cfg.d_model], `residual entering layer ${range.stopAtLayer}`);
      if (wantLoss) out.loss = new GpuLoss(this.gpu, plan.logits!, lossTokens!, cfg.d_vocab, !!options.lossPerToken);
      for (const site of plan.sites.values()) if (keep(site.name)) tensors.set(site.name, Tensor.empty(this.gpu, site.shape, site.name));
    };
    const releaseAll = () => {
      for (const t of tensors.values()) t.release();
      out.logits?.release();
      out.residual?.release();
      out.loss?.release();
    };
    try {
      if (fresh > 0) await this.gpu.guard(`allocating the outputs of a ${batch} x ${pos} run`, fresh, allocate);
      else allocate();
      const before: Step[] = [];
      if (residualIn) before.push({ kind: 'copy', src: residualIn.buffer, srcOffset: 0, dst: plan.input!, dstOffset: 0, size: residualIn.byteLength });
      else this.gpu.device.queue.writeBuffer(plan.ids!, 0, flat!);
      const after: Step[] = [];
      const copyOut = (src: GPUBuffer, dst: Tensor) => after.push({ kind: 'copy', src, srcOffset: 0, dst: dst.buffer, dstOffset: 0, size: dst.byteLength });
      if (out.logits) copyOut(plan.logits!, out.logits);
      if (out.residual) copyOut(plan.residual!, out.residual);
      if (out.loss) after.push(...out.loss.dispatches);
      await executePlan(this.gpu, plan, {
        hooks: compiled,
        keep: tensors,
        before,
        after,
        label: `forward ${batch}x${pos}`,
        // A hook function may destroy the model: stop before submitting work on freed weights.
        assertLive: () => this.assertLive(true),
      });
      this.assertLive(true);
    } catch (e) {
      releaseAll();
      throw e;
    } finally {
      compiled?.release();
      spliced?.release();
      out.loss?.releaseScratch();
    }
    const { logits, residual, loss } = out;
    // A run from a residual stream (startAtLayer) has no tokens of its own to record.
    const tokens = Array.isArray(input) ? (input as Tokens).map((row) => [...row]) : undefined;
    const cache = new ActivationCache(tensors, { tokens, model: this });
    return runResult({ logits, residual, loss: loss?.out ?? null, cache, stoppedAt: stopped ? range.stopAtLayer! : null });
  }

  /** TransformerLens' `run_with_cache`: logits plus the cache (all hook points unless filtered). */
  runWithCache(input: Tokens | Tensor, options: RunOptions = {}): Promise<RunResult> {
    return this.run(input, { cache: allButHeadResults, ...options });
  }

  /** TransformerLens' `run_with_hooks`: the logits of a run with interventions. */
  runWithHooks(input: Tokens | Tensor, hooks: readonly Intervention[], options: RunOptions = {}): Promise<RunResult> {
    return this.run(input, { ...options, hooks });
  }

  /**
   * The logit lens: ln_final (with its gain and bias, on each row's own statistics) and the
   * unembedding on residual rows [..., d_model], giving [..., d_vocab]. On the final residual it
   * reproduces the logits.
   */
  logitLens(resid: Float32Array, options: { applyLn?: boolean } = {}): Promise<Float32Array> {
    return logitLens(this.gpu, this.config, this.weights, resid, options.applyLn ?? true);
  }

  /**
   * TransformerLens' `tokens_to_residual_directions`: for each token t, the direction in the
   * space of ln_final's normalized input whose dot product gives t's logit, W_U[:, t] scaled by
   * ln_final's gain ([d_model] for one token, [n, d_model] for a list). On weights processed as
   * TransformerLens does the gain is 1 (folded into W_U), so this is TransformerLens' W_U[:, t];
   * on raw weights it is the direction fold_ln would give, so direct logit attributions (which
   * dot it with ln_final-scaled components) mean the same on both. The part of a logit no
   * component writes is `logitBias`.
   */
  async tokensToResidualDirections(tokens: number | readonly number[]): Promise<WeightTensor> {
    const list = typeof tokens === 'number' ? [tokens] : [...tokens];
    const C = this.config.d_model;
    const gain = this.weights.host.lnf_w;
    const data = new Float32Array(list.length * C);
    for (const [i, t] of list.entries()) {
      const col = await unembedColumn(this.gpu, this.config, this.weights, t);
      for (let c = 0; c < C; c++) data[i * C + c] = col[c] * gain[c];
    }
    return { data, shape: typeof tokens === 'number' ? [C] : [list.length, C] };
  }

  /**
   * The residual direction of a logit difference, `tokensToResidualDirections(good) -
   * tokensToResidualDirections(bad)` [d_model]: dotted with ln_final's normalized input
   * (`ln_final.hook_normalized`), it gives logit(good) - logit(bad) less `logitBias(good) -
   * logitBias(bad)`.
   */
  async logitDiffDirection(good: number, bad: number): Promise<Float32Array> {
    const d = (await this.tokensToResidualDirections([good, bad])).data;
    const C = this.config.d_model;
    return d.subarray(0, C).map((v, i) => v - d[C + i]);
  }

  /**
   * What the unembedding adds to `token`'s logit whatever the residual stream: b_U[token], plus
   * ln_final's bias through W_U (ln_final.b · W_U[:, token]) when it is not folded. A direct logit
   * attribution over a complete decomposition of the residual stream sums to the logit less this.
   * Zero for a raw model without biases (Llama); b_U[token] on processed weights.
   */
  async logitBias(token: number): Promise<number> {
    const { b_U, lnf_b } = this.weights.host;
    let v = b_U ? b_U[token] : 0;
    if (lnf_b) {
      const col = await unembedColumn(this.gpu, this.config, this.weights, token);
      for (let c = 0; c < col.length; c++) v += lnf_b[c] * col[c];
    }
    return v;
  }

  /**
   * For experiments (src/experiments): a plan of any shape, resumed passes included, that the
   * caller owns and destroys. Allocation runs under an error scope.
   */
  async buildPlan(shape: PlanShape): Promise<ForwardPlan> {
    this.assertLive(false);
    const plan = await this.gpu.guard(`preparing a ${shape.batch} x ${shape.pos} pass`, scratchBytes(this.config, shape), () => buildForward(this.gpu, this.config, this.weights, shape));
    if (this.destroyed) {
      plan.destroy();
      this.assertLive(true);
    }
    return plan;
  }

  /**
   * For experiments: `plan` with SAEs spliced in (see `src/hooks/splice.ts`); the result's
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

  /**
   * One forward and one backward (`grad-run.ts`): the gradient of the sum over rows of each
   * row's metric (one metric, or one per row) with respect to every hook point's activation, and
   * with `weights` to every weight. Interventions apply in the forward and the gradient flows
   * through the intervened graph. Taken in call order with the model's other runs.
   */
  runWithGrad(tokens: readonly (readonly number[])[], metric: Metric | readonly Metric[], options: GradOptions = {}): Promise<GradResult> {
    const result = this.queue.then(() => {
      if (this.destroyed) throw new Error('this model was destroyed');
      return runWithGrad({ gpu: this.gpu, config: this.config, weights: this.weights, dummy: this.dummy, state: this.gradState, weight: (n) => this.weightBuffer(n) }, tokens, metric, options);
    });
    this.queue = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  /** The weight gradients of the last `runWithGrad` with `weights` (null before one, or once released). */
  get weightGrads(): WeightGradients | null {
    const w = this.gradState.weightGrads;
    return w && !w.isReleased ? w : null;
  }

  private readonly gradState = new GradState();

  /**
   * Frees the weights and every plan, and hands the pool's idle buffers back to the driver
   * (results still held by the caller stay valid until released). A run in progress rejects.
   */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.gradState.destroy();
    for (const p of this.plans.values()) p.destroy();
    this.plans.clear();
    this.weights.destroy();
    this.dummy.destroy();
    this.gpu.pool.trim();
  }

  private async plan(shape: PlanShape): Promise<ForwardPlan> {
    const key = planKey(shape);
    const plan = this.plans.get(key);
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
    const built = await this.gpu.guard(`preparing a ${shape.batch} x ${shape.pos} forward`, scratchBytes(this.config, shape), () => buildForward(this.gpu, this.config, this.weights, shape));
    if (this.destroyed) {
      // destroy() ran while the plan was prepared: it must not outlive the model.
      built.destroy();
      this.assertLive(true);
    }
    this.plans.set(key, built);
    return built;
  }
}

function resolveFilter(filter: CacheFilter | undefined, shapes: Map<string, number[]>, absent: (name: string) => string): (name: SiteName) => boolean {
  if (!filter) return () => false;
  if (filter instanceof RegExp) return (n) => filter.test(n);
  if (typeof filter === 'function') return filter;
  const wanted = new Set<string>(filter);
  for (const n of wanted) {
    if (!shapes.has(n)) throw new Error(absent(n));
  }
  return (n) => wanted.has(n);
}

/** startAtLayer / stopAtLayer resolved to 0 .. n_layers (negative counts from the end, as TransformerLens' slices). */
function resolveRange(cfg: ModelConfig, o: RunOptions): LayerRange {
  const L = cfg.n_layers;
  const at = (v: number | undefined, what: string): number | undefined => {
    if (v === undefined) return undefined;
    const r = v < 0 ? v + L : v;
    if (!Number.isInteger(v) || r < 0 || r > L) throw new Error(`${what} ${v} is out of range: the model has ${L} layers (${-L} .. ${L})`);
    return r;
  };
  const range: LayerRange = { startAtLayer: at(o.startAtLayer, 'startAtLayer'), stopAtLayer: at(o.stopAtLayer, 'stopAtLayer') };
  if (range.startAtLayer !== undefined && range.stopAtLayer !== undefined && range.stopAtLayer < range.startAtLayer) {
    throw new Error(`stopAtLayer ${o.stopAtLayer} comes before startAtLayer ${o.startAtLayer}`);
  }
  return range;
}

/** The run's input: token ids, or (startAtLayer) a residual stream [batch, pos, d_model] plus the tokens its loss needs. */
function runInput(
  cfg: ModelConfig,
  input: Tokens | Tensor,
  range: LayerRange,
  o: RunOptions,
  loss: boolean,
): { batch: number; pos: number; flat: Uint32Array<ArrayBuffer> | null; residualIn: Tensor | null; lossTokens: Tokens | null } {
  if (range.startAtLayer === undefined) {
    if (input instanceof Tensor) throw new Error('a Tensor input is a residual stream: give startAtLayer (0 skips the embedding)');
    if (o.tokens) throw new Error('`tokens` is for a run that starts from a residual stream (startAtLayer); this run takes its tokens as input');
    const { batch, pos, flat } = validateTokens(input, cfg);
    return { batch, pos, flat, residualIn: null, lossTokens: input };
  }
  if (!(input instanceof Tensor)) {
    throw new Error(`a run with startAtLayer takes the residual stream entering layer ${range.startAtLayer}, a Tensor [batch, pos, d_model], not token ids`);
  }
  input.assertLive();
  const [batch, pos, C] = input.shape;
  if (input.shape.length !== 3 || C !== cfg.d_model) {
    throw new Error(`the residual stream has shape [${input.shape.join(', ')}]; it must be [batch, pos, d_model = ${cfg.d_model}]`);
  }
  if (pos > cfg.n_ctx) throw new Error(`${pos} positions is more than the model's context of ${cfg.n_ctx} positions (n_ctx)`);
  if (loss && !o.tokens) throw new Error('a loss of a run that starts from a residual stream needs the token ids: pass `tokens`');
  if (o.tokens) {
    const t = validateTokens(o.tokens, cfg);
    if (t.batch !== batch || t.pos !== pos) throw new Error(`\`tokens\` is ${t.batch} x ${t.pos} but the residual stream ${batch} x ${pos}`);
  }
  return { batch, pos, flat: null, residualIn: input, lossTokens: o.tokens ?? null };
}
