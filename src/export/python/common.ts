/**
 * What the three Python exporters share: where the script loads the model from, the spec as
 * Python constants, the grid layout of each patching site (the same axes as Patchbay's
 * `patchingSweep`), and the docstring.
 */
import { PRESETS } from '../../components/presets.ts';
import type { PatchSite } from '../../experiments/patching.ts';
import { SpecError, describeModelRef, type ExperimentSpec } from '../../experiments/spec.ts';

export type PythonTarget = 'transformers' | 'nnsight' | 'transformer-lens';
export const PYTHON_TARGETS: readonly PythonTarget[] = ['transformers', 'nnsight', 'transformer-lens'];

export interface PythonExportOptions {
  /** Where the script loads the model from when the spec's model is a folder: a local path. */
  modelPath?: string;
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
          ? `a run with ${spec.interventions?.length ? `${spec.interventions.length} head(s) ablated` : 'no intervention'}${e.metric ? `, metric ${e.metric}` : ''}`
          : `attribution patching of ${e.site}, metric ${e.metric}`;
  return `"""A Patchbay experiment, exported for ${target}: ${what}.

Model: ${describeModelRef(spec.model)}, loaded from ${model.note}.
It prints the same JSON as \`patchbay run spec.json --json\` on the spec below.

Requirements: ${requirements}
Run: python this_script.py [--model FOLDER_OR_HUB_ID]${extra}
"""`;
}
