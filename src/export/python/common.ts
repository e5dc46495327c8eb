/**
 * What the three Python exporters share: where the script loads the model from, the spec as
 * Python constants, the grid layout of each patching site (the same axes as Patchbay's
 * `patchingSweep`), and the docstring.
 */
import { PRESETS } from '../../model/presets.ts';
import type { PatchSite } from '../../experiments/patching.ts';
import { SpecError, describeIntervention, describeModelRef, type ExperimentSpec } from '../../experiments/spec.ts';

export type PythonTarget = 'transformers' | 'nnsight' | 'transformer-lens';
export const PYTHON_TARGETS: readonly PythonTarget[] = ['transformers', 'nnsight', 'transformer-lens'];

export interface PythonExportOptions {
  /** Where the script loads the model from when the spec's model is a folder: a local path. */
  modelPath?: string;
}

/** Prompts as the scripts read them: one prompt, or a batch (a list of texts or of id lists). */
export const PY_PROMPTS = String.raw`def is_batch(p):
    """A batch of prompts (a list of texts or of id lists), not one prompt."""
    return isinstance(p, list) and all(isinstance(x, (str, list)) for x in p)


def prompt_rows(p, tokenizer):
    """Token id rows of one prompt or a batch (rows of one length)."""
    rows = [prompt_ids(x, tokenizer) for x in p] if is_batch(p) else [prompt_ids(p, tokenizer)]
    if len({len(r) for r in rows}) > 1:
        sys.exit("the rows of a batch of prompts need one token length")
    return rows
`;

/** Refuses a spec that splices an SAE: the exports do not load SAEs (yet). */
export function refuseSae(spec: ExperimentSpec, target: string): void {
  if (spec.sae) throw new SpecError(`spec.sae: splicing an SAE is not exported to ${target} yet (patchbay run runs it; SAELens' run_with_saes is the Python counterpart)`);
}

/** Refuses interventions at hook points a target's script cannot reach, naming them. */
export function refuseHooks(spec: ExperimentSpec, target: string, reachable: readonly RegExp[]): void {
  (spec.interventions ?? []).forEach((iv, i) => {
    if (!reachable.some((r) => r.test(iv.hook))) {
      throw new SpecError(`spec.interventions[${i}].hook: ${iv.hook} is not reachable from a ${target} script (patchbay run runs it; export to transformer-lens, whose hook names these are)`);
    }
  });
}

/** A Python literal for a JSON value (json.loads of a raw string: exact for every value). */
export function pyJson(value: unknown): string {
  const text = JSON.stringify(value);
  // A raw triple-quoted string holds any JSON text except one containing ''' or ending in a backslash.
  if (!text.includes("'''") && !text.endsWith('\\')) return `json.loads(r'''${text}''')`;
  return `json.loads(${JSON.stringify(text)})`;
}

/** A Python string literal. */
export const pyStr = (s: string): string => JSON.stringify(s);

/** The model argument of `from_pretrained`, and its revision. */
export function pythonModel(spec: ExperimentSpec, options: PythonExportOptions): { model: string; revision: string | null; note: string } {
  const m = spec.model;
  if ('hub' in m) return { model: m.hub, revision: m.revision ?? null, note: `the Hugging Face Hub repository ${m.hub}` };
  if ('preset' in m) {
    const p = PRESETS[m.preset];
    if (p?.repo) return { model: p.repo, revision: null, note: `the Hugging Face Hub repository ${p.repo} (Patchbay's preset "${m.preset}")` };
    if (options.modelPath) return { model: options.modelPath, revision: null, note: `Patchbay's preset "${m.preset}", a local folder` };
    return { model: m.preset, revision: null, note: `Patchbay's preset "${m.preset}": download its folder (config.json, model.safetensors) and pass --model FOLDER` };
  }
  if (options.modelPath) return { model: options.modelPath, revision: null, note: `the folder ${m.url}` };
  return { model: m.url, revision: null, note: `the folder ${m.url}: pass --model FOLDER with a local copy if this is a URL` };
}

/**
 * The grid axes of a patching site, in Patchbay's order (TransformerLens' shapes: `[layer, pos,
 * head]` for head sites by position, `[layer, head, dest_pos]` for the pattern by query position),
 * and the TransformerLens hook it patches. Sites the hook-based exports do not write yet throw.
 */
export function siteLayout(site: PatchSite): { axes: string[]; hook: string; byHead: boolean; byPos: boolean; posFirst: boolean } {
  if (site === 'block_every') return { axes: ['component', 'layer', 'pos'], hook: 'resid_pre,attn_out,mlp_out', byHead: false, byPos: true, posFirst: true };
  if (site === 'pattern_dest_src' || site === 'head_all_pos_every' || site === 'head_by_pos_every') {
    throw new SpecError(`spec.experiment.site: ${site} is exported to transformer-lens only (its get_act_patch_* function); not to transformers or nnsight yet`);
  }
  const byPos = site.endsWith('_by_pos');
  const hook = site.replace(/_by_pos$/, '');
  if (hook === 'pattern' && byPos) return { axes: ['layer', 'head', 'dest_pos'], hook, byHead: true, byPos, posFirst: false };
  if (['z', 'q', 'k', 'v', 'pattern'].includes(hook)) return { axes: byPos ? ['layer', 'pos', 'head'] : ['layer', 'head'], hook, byHead: true, byPos, posFirst: true };
  return { axes: ['layer', 'pos'], hook, byHead: false, byPos: true, posFirst: true };
}

/** The script's docstring: what it does, where the model comes from, how to run it. */
export function docstring(spec: ExperimentSpec, target: PythonTarget, model: { note: string }, requirements: string, extra = ''): string {
  const e = spec.experiment;
  const what =
    e.kind === 'patch'
      ? `activation patching of ${e.site}, clean into corrupted, metric ${e.metric}${e.normalize ? ' (normalized: 0 = corrupted, 1 = clean)' : ''}`
      : e.kind === 'sweep-ablate'
        ? `each head ${e.mode ?? 'zero'}-ablated alone (hook_z), metric ${e.metric}`
        : e.kind === 'ablate'
          ? `a run with ${spec.interventions?.length ? `${spec.interventions.length} intervention(s)` : 'no intervention'}${e.metric ? `, metric ${e.metric}` : ''}`
          : `attribution patching of ${e.site}, metric ${e.metric}`;
  const ivs = (spec.interventions ?? []).map((iv) => `\n  - ${describeIntervention(iv).replace(/\\/g, '\\\\')}`).join('');
  return `"""A Patchbay experiment, exported for ${target}: ${what}.${ivs ? `\nInterventions, in order:${ivs}` : ''}

Model: ${describeModelRef(spec.model)}, loaded from ${model.note}.
It prints the same JSON as \`patchbay run spec.json --json\` on the spec below.

Requirements: ${requirements}
Run: python this_script.py [--model FOLDER_OR_HUB_ID]${extra}
"""`;
}
