/**
 * A spec's interventions (src/experiments/spec.ts) as the engine's (src/hooks/interventions.ts),
 * for a run on the spec's clean prompts: positions counted from the end become absolute, hook
 * names are checked against the model (and the spliced SAE) with a suggestion, and the runs the
 * sources come from (the corrupted prompts for `patch`, the reference prompts for `mean`) are
 * made once, without interventions, caching just the hooks they are read at.
 *
 * ```ts
 * const prepared = await prepareInterventions(model, spec, { clean, corrupt, reference }, { saes, sae });
 * const run = await model.run(clean, { saes, hooks: prepared.hooks });
 * prepared.release();
 * ```
 */
import { addVector, meanAblate, patchFrom, scaleBy, setTo, zeroAblate, type Intervention, type Selection } from '../hooks/interventions.ts';
import { SAE_SITES, unknownHookMessage, type SiteName } from '../model/hook-points.ts';
import type { Sae } from '../features/sae.ts';
import type { SaeUse } from '../hooks/splice.ts';
import type { Model, RunResult } from '../hooks/model.ts';
import { SpecError, type Indices, type SourceRun, type SpecIntervention } from './spec.ts';

/** Token id rows of each prompt set (all rows of a set have one length). */
export interface PromptIdRows {
  clean: number[][];
  corrupt?: number[][];
  reference?: number[][];
}

export interface PreparedInterventions {
  hooks: Intervention[];
  /** Frees the source runs (after the runs that read them are submitted). */
  release(): void;
}

/** Where each intervention reads from, when it reads another run. */
export function sourceOf(iv: SpecIntervention, hasReference: boolean): SourceRun | null {
  if (iv.op === 'patch') return iv.from ?? 'corrupt';
  if (iv.op === 'mean') return iv.from ?? (hasReference ? 'reference' : 'clean');
  return null;
}

/** Indices with negative ones counted from the end of `n`, checked. */
function absolute(v: Indices | undefined, n: number, path: string, what: string): number[] | undefined {
  if (v === undefined) return undefined;
  return (typeof v === 'number' ? [v] : v).map((i) => {
    const a = i < 0 ? n + i : i;
    if (a < 0 || a >= n) throw new SpecError(`${path}: ${what} ${i} is outside this ${n}-token prompt`);
    return a;
  });
}

/** Every hook point a run of `model` with `sae` spliced has. */
export function runHookNames(model: Model, sae: Sae | null): SiteName[] {
  const names: SiteName[] = model.hookNames();
  if (sae) {
    names.push(...SAE_SITES.map((s) => `${sae.hookName}.${s}` as const));
    if (sae.hookNameOut !== sae.hookName) names.push(...SAE_SITES.filter((s) => s !== 'hook_sae_input').map((s) => `${sae.hookNameOut}.${s}` as const));
  }
  return names;
}

export async function prepareInterventions(model: Model, list: readonly SpecIntervention[], rows: PromptIdRows, options: { saes?: SaeUse[]; sae?: Sae | null } = {}): Promise<PreparedInterventions> {
  const sae = options.sae ?? null;
  const saes = options.saes ?? [];
  const known = new Set<string>(runHookNames(model, sae));
  const T = rows.clean[0].length;
  const B = rows.clean.length;
  // The hooks each source run must keep.
  const wanted: Record<SourceRun, Set<string>> = { clean: new Set(), corrupt: new Set(), reference: new Set() };
  list.forEach((iv, i) => {
    const path = `spec.interventions[${i}]`;
    if (!known.has(iv.hook)) throw new SpecError(`${path}.hook: ${unknownHookMessage(iv.hook, [...known])}`);
    const from = sourceOf(iv, !!rows.reference);
    if (!from) return;
    const src = rows[from];
    if (!src) throw new SpecError(`${path}: it reads the ${from} prompts, and the spec has none`);
    if (src[0].length !== T && !(iv.op === 'mean' && iv.pooled)) {
      throw new SpecError(
        `${path}: the ${from} prompts have ${src[0].length} tokens and the clean ${T}; ${iv.op === 'mean' ? 'a per-position mean needs the same length (or "pooled": true)' : 'patching needs the same length'}`,
      );
    }
    if (iv.op === 'patch' && iv.source_batch === undefined && src.length !== 1 && src.length !== B) {
      throw new SpecError(`${path}: the ${from} prompts are ${src.length} rows and the clean ${B}; give "source_batch", or 1 or ${B} ${from} rows`);
    }
    if (iv.op === 'patch' && iv.source_batch !== undefined && iv.source_batch >= src.length) {
      throw new SpecError(`${path}.source_batch: row ${iv.source_batch} is not among the ${src.length} ${from} prompts`);
    }
    wanted[from].add(iv.hook);
  });

  const runs: Partial<Record<SourceRun, RunResult>> = {};
  const release = () => {
    for (const r of Object.values(runs)) r?.release();
  };
  try {
    for (const from of ['clean', 'corrupt', 'reference'] as const) {
      if (wanted[from].size) runs[from] = await model.run(rows[from]!, { saes, cache: [...wanted[from]] });
    }
    const hooks: Intervention[] = [];
    for (const [i, iv] of list.entries()) {
      const path = `spec.interventions[${i}]`;
      const sel: Selection = {};
      if (iv.batch !== undefined) {
        const batch = typeof iv.batch === 'number' ? [iv.batch] : iv.batch;
        if (batch.some((b) => b >= B)) throw new SpecError(`${path}.batch: the run has ${B} row${B === 1 ? '' : 's'} (0 .. ${B - 1})`);
        sel.batch = batch;
      }
      const pos = absolute(iv.pos, T, `${path}.pos`, 'position');
      if (pos) sel.pos = pos;
      if (iv.heads !== undefined) sel.heads = typeof iv.heads === 'number' ? [iv.heads] : iv.heads;
      const keyPos = absolute(iv.key_pos, T, `${path}.key_pos`, 'key position');
      if (keyPos) sel.keyPos = keyPos;
      switch (iv.op) {
        case 'zero':
          hooks.push(zeroAblate(iv.hook, sel));
          break;
        case 'scale':
          hooks.push(scaleBy(iv.hook, iv.factor!, sel));
          break;
        case 'set':
          hooks.push(setTo(iv.hook, iv.value!, sel));
          break;
        case 'add': {
          let vector: ArrayLike<number>;
          if (iv.feature !== undefined) {
            if (!sae) throw new SpecError(`${path}.feature: adding a feature's decoder row needs an SAE (spec.sae)`);
            if (iv.feature >= sae.config.d_sae) throw new SpecError(`${path}.feature: feature ${iv.feature} is not in this SAE (d_sae ${sae.config.d_sae})`);
            vector = await sae.decoderRow(iv.feature);
          } else vector = iv.vector!;
          hooks.push(addVector(iv.hook, vector, iv.coeff ?? 1, sel));
          break;
        }
        case 'patch': {
          const run = runs[sourceOf(iv, !!rows.reference)!]!;
          hooks.push(patchFrom(iv.hook, run.cache, { ...sel, ...(iv.source_batch !== undefined ? { sourceBatch: iv.source_batch } : {}) }));
          break;
        }
        case 'mean': {
          const run = runs[sourceOf(iv, !!rows.reference)!]!;
          hooks.push(meanAblate(iv.hook, run.cache, { ...sel, pooled: !!iv.pooled }));
          break;
        }
      }
    }
    return { hooks, release };
  } catch (e) {
    release();
    throw e;
  }
}
