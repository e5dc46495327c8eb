/**
 * Splicing SAEs and transcoders into a forward plan: the plan's steps with the SAE's dispatches
 * and hook sites inserted after the hook points they read and write. The result is an ordinary
 * plan, so caching, interventions (`compileHooks`) and resumed passes treat an SAE's hooks like
 * any other (DESIGN: "features are sites too"). The base plan is not changed; what a splice
 * allocates lives until `release()`. On-demand steps that serve a hook an SAE reads or writes (a
 * norm's `hook_normalized`, computed only when read) become unconditional in the spliced plan.
 *
 * After the input hook X (an SAE reads and writes X; a transcoder reads X and writes Y):
 *   x' = X (or X * gain)                             X.hook_sae_input      [B, T, d_in] (a copy)
 *   pre = x' @ W_enc + b_enc                         X.hook_sae_acts_pre   [B, T, d_sae]
 *   acts = act(pre)                                  X.hook_sae_acts_post  [B, T, d_sae]
 * after the output hook Y (= X for an SAE):
 *   recons = acts @ W_dec + b_dec (+ x' @ W_skip)    X.hook_sae_recons     [B, T, d_out]
 *   err = Y - recons_clean            (error term)   X.hook_sae_error      [B, T, d_out]
 *   Y = recons + err, or recons                      X.hook_sae_output     [B, T, d_out] (Y's buffer)
 *
 * As in SAELens, the error term is computed from a clean encode/decode of the hook's value, so
 * an intervention on the SAE's input or features changes the output; with no such intervention
 * the clean reconstruction is the reconstruction itself and is computed once (the error fused
 * into the decoder). Interventions on X itself apply before the SAE reads it, and a cache of X
 * holds the model's value, not the reconstruction (that is `hook_sae_output`).
 */
import type { Gpu } from '../gpu/device.ts';
import { add } from '../gpu/kernels/elementwise.ts';
import { saeError, saeInput } from '../gpu/kernels/sae.ts';
import type { Dispatch, Params } from '../gpu/recorder.ts';
import type { ForwardPlan, PlanStep, Site } from '../model/forward.ts';
import type { Sae } from '../features/sae.ts';
import { SAE_SITES, saeSiteWidth, type SaeSiteName } from '../features/sae-config.ts';
import { unknownHookMessage, type SaeHookName } from '../model/hook-points.ts';

/** An SAE in a run, with or without the error term (SAELens' `use_error_term`, off by default). */
export interface SaeSplice {
  sae: Sae;
  errorTerm?: boolean;
}

export type SaeUse = Sae | SaeSplice;

/** `sae` with the error term: spliced, the model's output is unchanged until a feature is touched. */
export const withErrorTerm = (sae: Sae): SaeSplice => ({ sae, errorTerm: true });

export function asSplice(u: SaeUse): Required<SaeSplice> {
  return 'sae' in u ? { sae: u.sae, errorTerm: u.errorTerm ?? false } : { sae: u, errorTerm: false };
}

/** The SAE's hook point names in forward order (hook_sae_error only with the error term). */
export function saeSiteNames(u: Required<SaeSplice>): Array<[string, SaeSiteName]> {
  return SAE_SITES.filter((s) => s !== 'hook_sae_error' || u.errorTerm).map((s) => [`${u.sae.hookName}.${s}`, s]);
}

/**
 * Shapes of the hook points the SAEs add to a run of [batch, pos]. Checks each SAE against the
 * model's own hook shapes: its hooks exist, their widths are d_in and d_out, no two SAEs read the
 * same hook, and a transcoder's output hook does not come before its input hook.
 */
export function saeHookShapes(uses: readonly SaeUse[], modelShapes: ReadonlyMap<string, number[]>, batch: number, pos: number): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const order = [...modelShapes.keys()];
  const seen = new Set<string>();
  for (const raw of uses) {
    const u = asSplice(raw);
    const c = u.sae.config;
    u.sae.assertLive();
    if (seen.has(c.hook_name)) throw new Error(`two SAEs read ${c.hook_name}; splice one SAE per hook point in a run`);
    seen.add(c.hook_name);
    for (const [hook, width, what] of [
      [c.hook_name, c.d_in, 'd_in'],
      [c.hook_name_out, c.d_out, 'd_out'],
    ] as const) {
      const shape = modelShapes.get(hook);
      if (!shape) throw new Error(`${c.source} is on a hook point this run does not have: ${unknownHookMessage(hook, order)}`);
      if (hook.endsWith('.hook_pattern') || hook.endsWith('.hook_attn_scores')) throw new Error(`${c.source}: SAEs on attention patterns are not supported`);
      const w = shape.slice(2).reduce((a, b) => a * b, 1);
      if (w !== width) throw new Error(`${c.source} has ${what} = ${width} but ${hook} has ${w} values per position (shape [${shape.join(', ')}])`);
    }
    if (order.indexOf(c.hook_name_out) < order.indexOf(c.hook_name)) throw new Error(`${c.source} writes ${c.hook_name_out}, which comes before the hook it reads (${c.hook_name})`);
    u.sae.checkRows(batch * pos);
    for (const [name, s] of saeSiteNames(u)) out.set(name, [batch, pos, saeSiteWidth(c, s)]);
  }
  return out;
}

/** Bytes of scratch splicing `uses` into a pass of `rows` rows takes (for memory checks). */
export function saeScratchFloats(uses: readonly SaeUse[], rows: number): number[] {
  return uses.flatMap((raw) => {
    const u = asSplice(raw);
    const c = u.sae.config;
    return [
      rows * c.d_in,
      rows * c.d_sae,
      rows * c.d_sae,
      rows * c.d_out,
      u.errorTerm ? rows * c.d_out : 0,
      c.skip ? rows * c.d_out : 0,
      u.errorTerm && c.transcoder ? rows * c.d_out : 0,
      ...u.sae.compactFloats(rows),
    ].filter((n) => n > 0);
  });
}

/** One SAE as spliced: its hooks, and the buffers its forward steps write (what a backward reads). */
export interface SpliceRecord {
  use: Required<SaeSplice>;
  /** The hook it reads (X) and the one it writes (Y; X for an SAE). */
  hookIn: string;
  hookOut: string;
  /** [batch, positions] of the pass, rows = batch * positions. */
  lead: [number, number];
  rows: number;
  xIn: GPUBuffer; // [rows, d_in]
  pre: GPUBuffer; // [rows, d_sae] after any intervention on hook_sae_acts_pre
  acts: GPUBuffer; // [rows, d_sae]
  /** [rows, d_sae] the clean pass's activations (with `keepClean`, when the error term needed a clean pass). */
  cleanActs: GPUBuffer | null;
  /** The input gain x' = X * gain (a transcoder on a norm's output), or null. */
  gain: GPUBuffer | null;
}

export interface SplicedPlan {
  /** The plan with the SAEs in it; `destroy()` frees the base plan too. */
  plan: ForwardPlan;
  /** Each SAE spliced into the plan (those whose output hook the pass computes). */
  records: SpliceRecord[];
  /** Frees what the splice allocated (not the base plan). */
  release(): void;
}

export interface SpliceOptions {
  /** Hook points this run intervenes on (decides whether the error term needs a clean pass). */
  hooked: ReadonlySet<string>;
  /** A model weight by name (an SAE's `input_gain`, e.g. "blocks.2.ln2.w"). */
  weight?: (name: string) => GPUBuffer;
  /** Keep the clean pass's activations (`SpliceRecord.cleanActs`): a backward's error term reads them. */
  keepClean?: boolean;
}

export function spliceSaes(gpu: Gpu, plan: ForwardPlan, uses: readonly SaeUse[], options: SpliceOptions): SplicedPlan {
  const params: Params[] = [];
  const owned: GPUBuffer[] = [];
  const scratch = (floats: number, label: string) => {
    const b = gpu.pool.acquire(floats * 4, label);
    owned.push(b);
    return b;
  };
  const release = () => {
    for (const b of owned) gpu.pool.release(b);
    for (const p of params) p.destroy();
    owned.length = 0;
    params.length = 0;
  };
  try {
    const records: SpliceRecord[] = [];
    const after = new Map<string, PlanStep[]>(); // site name -> steps inserted right after it
    const insert = (name: string, steps: PlanStep[]) => after.set(name, [...(after.get(name) ?? []), ...steps]);
    for (const raw of uses) {
      const u = asSplice(raw);
      const { sae } = u;
      const c = sae.config;
      const X = plan.sites.get(c.hook_name);
      const Y = plan.sites.get(c.hook_name_out);
      if (!Y) continue; // a resumed pass that starts after the SAE: its effect comes in through the pass's input
      if (!X) throw new Error(`${c.source} reads ${c.hook_name}, before this pass's first layer ${plan.fromLayer}, and writes ${c.hook_name_out} inside it`);
      const [B, Tn] = X.shape;
      const rows = B * Tn;
      const site = (s: SaeSiteName, buffer: GPUBuffer): Site => ({ kind: 'site', name: `${c.hook_name}.${s}` as SaeHookName, buffer, shape: [B, Tn, saeSiteWidth(c, s)], pos0: X.pos0 });
      const L = `${c.hook_name} sae`;
      const xIn = scratch(rows * c.d_in, `${L} input`);
      const pre = scratch(rows * c.d_sae, `${L} pre`);
      const acts = scratch(rows * c.d_sae, `${L} acts`);
      const recons = scratch(rows * c.d_out, `${L} recons`);
      const err = u.errorTerm ? scratch(rows * c.d_out, `${L} error`) : null;
      const skip = c.skip ? scratch(rows * c.d_out, `${L} skip`) : null;
      const [listFloats, countFloats] = sae.compactFloats(rows);
      const compact = { list: scratch(listFloats, `${L} active features`), counts: scratch(countFloats, `${L} active counts`) };
      const hooked = ['hook_sae_input', 'hook_sae_acts_pre', 'hook_sae_acts_post'].some((s) => options.hooked.has(`${c.hook_name}.${s}`));
      const clean = u.errorTerm && hooked; // the error needs its own unhooked reconstruction
      const cleanRecons = clean && c.transcoder ? scratch(rows * c.d_out, `${L} clean recons`) : null;
      const gain = c.input_gain ? (options.weight?.(c.input_gain) ?? null) : null;
      if (c.input_gain && !gain) throw new Error(`${c.source} reads ${c.hook_name} times ${c.input_gain}, which this model does not provide`);

      const inSteps: PlanStep[] = [saeInput(gpu, { out: xIn, x: X.buffer, gain, n: rows * c.d_in, width: c.d_in, label: `${L} input` }, params)];
      // The skip term reads the SAE's input before any hook on it, as SAELens' skip transcoder does.
      if (skip) inSteps.push(...sae.skipDispatches(xIn, rows, skip, params, L));
      const cleanActs = clean && options.keepClean ? scratch(rows * c.d_sae, `${L} clean acts`) : null;
      if (clean) {
        inSteps.push(...sae.encodeDispatches(xIn, rows, pre, params, `${L} clean`), sae.activationDispatch(pre, acts, rows, params, `${L} clean`));
        if (cleanActs) inSteps.push(saeInput(gpu, { out: cleanActs, x: acts, n: rows * c.d_sae, width: c.d_sae, label: `${L} clean acts kept` }, params));
        // An SAE's error is complete now (Y is X); a transcoder's waits for Y.
        if (c.transcoder) inSteps.push(...sae.decodeDispatches(acts, rows, cleanRecons!, params, `${L} clean`, { skip, compact }));
        else inSteps.push(...sae.decodeDispatches(acts, rows, recons, params, `${L} clean`, { skip, compact, error: { x: Y.buffer, err: err! } }));
      }
      inSteps.push(
        site('hook_sae_input', xIn),
        ...sae.encodeDispatches(xIn, rows, pre, params, L),
        site('hook_sae_acts_pre', pre),
        sae.activationDispatch(pre, acts, rows, params, L),
        site('hook_sae_acts_post', acts),
      );
      insert(c.hook_name, inSteps);

      const outSteps: PlanStep[] = [...sae.decodeDispatches(acts, rows, recons, params, L, { skip, compact, error: u.errorTerm && !clean ? { x: Y.buffer, err: err! } : null })];
      if (cleanRecons) outSteps.push(saeError(gpu, { err: err!, x: Y.buffer, r: cleanRecons, n: rows * c.d_out, label: `${L} error` }, params));
      outSteps.push(site('hook_sae_recons', recons));
      if (err) outSteps.push(site('hook_sae_error', err));
      // The reconstruction (plus the error) replaces the output hook's tensor in place.
      const write: Dispatch = err
        ? add(gpu, { out: Y.buffer, a: recons, b: err, n: rows * c.d_out, label: `${L} output` }, params)
        : saeInput(gpu, { out: Y.buffer, x: recons, n: rows * c.d_out, width: c.d_out, label: `${L} output` }, params);
      outSteps.push(write, site('hook_sae_output', Y.buffer));
      insert(c.hook_name_out, outSteps);
      records.push({ use: u, hookIn: c.hook_name, hookOut: c.hook_name_out, lead: [B, Tn], rows, xIn, pre, acts, cleanActs, gain });
    }

    // Hooks the SAEs read or overwrite: on-demand steps serving them (a norm's normalized input,
    // its gain and bias again) must run in every spliced run, as if a cache read them.
    const reads = new Set<string>();
    const writes = new Set<string>();
    for (const raw of uses) {
      const c = asSplice(raw).sae.config;
      if (!plan.sites.has(c.hook_name_out)) continue;
      reads.add(c.hook_name);
      writes.add(c.hook_name_out);
    }
    const steps: PlanStep[] = [];
    const sites = new Map<string, Site>();
    for (const s of plan.steps) {
      if (s.kind === 'on-demand' && (s.ifRead.some((n) => reads.has(n)) || s.ifChanged.some((n) => writes.has(n)))) {
        steps.push(...s.dispatches);
        continue;
      }
      steps.push(s);
      if (s.kind !== 'site') continue;
      sites.set(s.name, s);
      for (const t of after.get(s.name) ?? []) {
        steps.push(t);
        if (t.kind === 'site') sites.set(t.name, t);
      }
    }
    const spliced: ForwardPlan = {
      ...plan,
      steps,
      sites,
      destroy() {
        release();
        plan.destroy();
      },
    };
    return { plan: spliced, records, release };
  } catch (e) {
    release();
    throw e;
  }
}
