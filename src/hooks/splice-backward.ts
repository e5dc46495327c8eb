/**
 * Splicing SAEs and transcoders into a backward plan: the gradient of every SAE hook point, and
 * the gradient the SAE passes on to what it reads, inserted into the backward's steps as
 * `splice.ts` inserts the forward's (the forward's splice records the buffers read here). The
 * base plan is not changed; what this allocates lives until `release()`.
 *
 * The forward, for an SAE reading X and writing Y (Y = X for an SAE, a later hook for a
 * transcoder), with x' = X (or X * gain):
 *   pre = x' W_enc + b_enc,  acts = act(pre),  recons = acts W_dec + b_dec (+ x' W_skip)
 *   err = Y - recons_clean(x')            (error term; recons_clean from an unhooked encode/decode)
 *   Y' = recons + err, or recons          (what the rest of the model reads: hook_sae_output)
 *
 * Its backward, inserted just before Y's gradient site (where the gradient of Y' is complete), in
 * reverse order, each hook point a gradient site where caches and interventions act:
 *   hook_sae_output     g = dY'
 *   hook_sae_error      g (the error is its own node: held fixed, the features' gradients are
 *                       W_dec g, as in SAELens' and Marks et al.'s attribution)
 *   hook_sae_recons     g
 *   hook_sae_acts_post  g W_dec^T
 *   hook_sae_acts_pre   that, where the unit fired (the activation recomputed from pre)
 *   hook_sae_input      (that) W_enc^T; a skip transcoder adds g W_skip^T after the site
 * Then what reaches the model's own hooks. The error term is differentiable (it is Y minus a
 * function of X): Y receives the error's gradient, and X receives gain * ((recons path) -
 * (the clean reconstruction's path taken with the error's gradient)). When nothing intervenes on
 * the SAE's hook points the two paths are the same and cancel: X (for an SAE, Y) receives exactly
 * the gradient of Y', as if the SAE were not there (the spliced model is the model), and the
 * encoder's backward feeds only the sites. This is where Patchbay differs from SAELens, whose
 * error term is computed under `torch.no_grad()` (X then gets only the recons path); it is what
 * Marks et al.'s feature circuits do (the error node passes the gradient straight through).
 * Without the error term, Y receives nothing (it is replaced) and X the recons path.
 */
import type { Gpu } from '../gpu/device.ts';
import { fill } from '../gpu/kernels/grad-accumulate.ts';
import { saeInputBackward, saeMaskBackward } from '../gpu/kernels/sae-backward.ts';
import type { Copy, Dispatch, Params } from '../gpu/recorder.ts';
import type { BackwardStep, GradSite } from '../model/backward.ts';
import { saeSiteWidth, type SaeSiteName } from '../features/sae-config.ts';
import { saeSiteNames, type SpliceRecord } from './splice.ts';

export interface SplicedBackward {
  steps: BackwardStep[];
  gradSites: Map<string, GradSite>;
  /** Floats of gradient scratch the splice took. */
  floats: number;
  release(): void;
}

/** Floats of backward scratch one spliced SAE takes for `rows` rows. */
export function saeBackwardFloats(d: { d_in: number; d_sae: number; d_out: number }, rows: number, errorTerm: boolean): number {
  return rows * (d.d_out * (errorTerm ? 2 : 1) + 3 * d.d_sae + d.d_in);
}

/**
 * `bwd`'s steps with the backward of each spliced SAE inserted. `hooked`: every hook point this
 * run intervenes on, forward or gradient-only (an SAE whose hook points none touches passes its
 * output's gradient straight through with the error term, see the header).
 */
export function spliceSaeBackward(
  gpu: Gpu,
  bwd: { steps: readonly BackwardStep[]; gradSites: ReadonlyMap<string, GradSite> },
  records: readonly SpliceRecord[],
  hooked: ReadonlySet<string>,
): SplicedBackward {
  const params: Params[] = [];
  const owned: GPUBuffer[] = [];
  let floats = 0;
  const scratch = (n: number, label: string) => {
    const b = gpu.pool.acquire(n * 4, label);
    owned.push(b);
    floats += n;
    return b;
  };
  const release = () => {
    for (const b of owned) gpu.pool.release(b);
    for (const p of params) p.destroy();
    owned.length = 0;
    params.length = 0;
  };
  try {
    // One SAE per hook point, in or out: an SAE reading another's output would need the two
    // interleaved in an order the forward's splice does not promise.
    const seen = new Map<string, string>();
    for (const r of records) {
      for (const h of new Set([r.hookIn, r.hookOut])) {
        const other = seen.get(h);
        if (other) throw new Error(`gradients through two SAEs on one hook point (${h}: ${other} and ${r.use.sae.config.source}) are not supported; splice one`);
        seen.set(h, r.use.sae.config.source);
      }
    }
    const before = new Map<string, BackwardStep[]>(); // gradient site -> steps inserted just before it
    const insert = (name: string, steps: BackwardStep[]) => before.set(name, [...(before.get(name) ?? []), ...steps]);
    const sites = new Map<string, GradSite>();
    for (const r of records) {
      const { sae, errorTerm } = r.use;
      const c = sae.config;
      const Y = bwd.gradSites.get(r.hookOut);
      const X = bwd.gradSites.get(r.hookIn);
      if (!X || !Y) throw new Error(`${c.source}: ${!X ? r.hookIn : r.hookOut} has no gradient in runWithGrad, so no gradient flows through this SAE`);
      const { rows } = r;
      const [B, T] = r.lead;
      const L = `${r.hookIn} sae backward`;
      const gRec = scratch(rows * c.d_out, `${L} recons gradient`);
      const gErr = errorTerm ? scratch(rows * c.d_out, `${L} error gradient`) : null;
      const dActs = scratch(rows * c.d_sae, `${L} acts gradient`);
      const ref = scratch(rows * c.d_sae, `${L} activation`);
      const dPre = scratch(rows * c.d_sae, `${L} pre gradient`);
      const dXin = scratch(rows * c.d_in, `${L} input gradient`);
      const names = saeSiteNames(r.use).map(([n]) => n);
      const untouched = !names.some((n) => hooked.has(n));
      const steps: BackwardStep[] = [];
      const op = (...d: Dispatch[]) => steps.push(...d);
      const copy = (src: GPUBuffer, dst: GPUBuffer, n: number): Copy => ({ kind: 'copy', src, srcOffset: 0, dst, dstOffset: 0, size: n * 4 });
      const site = (s: SaeSiteName, buffer: GPUBuffer) => {
        const g: GradSite = { kind: 'grad-site', name: `${r.hookIn}.${s}`, buffer, shape: [B, T, saeSiteWidth(c, s)], pos0: 0 };
        steps.push(g);
        sites.set(g.name, g);
      };
      const nOut = rows * c.d_out;
      site('hook_sae_output', Y.buffer);
      steps.push(copy(Y.buffer, gRec, nOut));
      if (gErr) {
        steps.push(copy(Y.buffer, gErr, nOut));
        site('hook_sae_error', gErr);
      }
      site('hook_sae_recons', gRec);
      op(...sae.decodeBackwardDispatches(gRec, rows, dActs, params, L)); // (rows, d_sae)
      site('hook_sae_acts_post', dActs);
      // The activation's own output, recomputed from pre (after any intervention on it, before
      // any on acts_post): where it is non-zero the unit fired.
      op(sae.activationDispatch(r.pre, ref, rows, params, `${L} activation`)); // (rows, d_sae)
      op(saeMaskBackward(gpu, { dPre, dActs, ref, n: rows * c.d_sae, label: `${L} mask` }, params));
      site('hook_sae_acts_pre', dPre);
      op(...sae.encodeBackwardDispatches(dPre, rows, dXin, params, L)); // (rows, d_in)
      site('hook_sae_input', dXin);
      op(...sae.skipBackwardDispatches(gRec, rows, dXin, params, L, { accumulate: true }));
      // What reaches X: nothing net when the error term's two paths cancel (see the header).
      const toX = !(gErr && untouched);
      if (gErr && !untouched) {
        // Minus the clean reconstruction's path, with the error's gradient: its units are the
        // clean pass's (kept by the forward's splice when a hook changed the SAE's input or
        // pre-activations; otherwise the same as the hooked pass's).
        op(...sae.decodeBackwardDispatches(gErr, rows, dActs, params, `${L} clean`));
        op(saeMaskBackward(gpu, { dPre, dActs, ref: r.cleanActs ?? ref, n: rows * c.d_sae, label: `${L} clean mask` }, params));
        op(...sae.encodeBackwardDispatches(dPre, rows, dXin, params, `${L} clean`, { coef: -1, accumulate: true }));
        op(...sae.skipBackwardDispatches(gErr, rows, dXin, params, `${L} clean`, { coef: -1, accumulate: true }));
      }
      // Y's own value reaches Y' only through the error term.
      if (gErr) steps.push(copy(gErr, Y.buffer, nOut));
      else op(fill(gpu, { y: Y.buffer, n: nOut, label: `${L} output replaced` }, params));
      const share = saeInputBackward(gpu, { out: X.buffer, d: dXin, gain: r.gain, n: rows * c.d_in, width: c.d_in, accumulate: true, label: `${L} to ${r.hookIn}` }, params);
      insert(r.hookOut, steps);
      if (toX) insert(r.hookIn, [share]);
    }
    const steps: BackwardStep[] = [];
    const gradSites = new Map<string, GradSite>();
    for (const s of bwd.steps) {
      if (s.kind === 'grad-site') {
        for (const t of before.get(s.name) ?? []) {
          steps.push(t);
          if (t.kind === 'grad-site') gradSites.set(t.name, t);
        }
        gradSites.set(s.name, s);
      }
      steps.push(s);
    }
    for (const n of sites.keys()) if (!gradSites.has(n)) throw new Error(`internal: the SAE gradient site ${n} was not placed`);
    return { steps, gradSites, floats, release };
  } catch (e) {
    release();
    throw e;
  }
}
