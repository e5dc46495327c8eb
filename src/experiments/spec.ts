/**
 * Experiments as data: one JSON document that says "this model, these prompts, these
 * interventions, this sweep, this metric", read alike by the command line (`patchbay run`), the
 * figures (export and load), the URL state of a page, and the Python scripts `patchbay export`
 * writes. Its JSON Schema is `schema/experiment-v1.schema.json`; `parseSpec` checks the same rules
 * and names the field that breaks one.
 *
 * ```json
 * {
 *   "patchbay": 1,
 *   "model": { "preset": "induction-2l" },
 *   "prompts": { "clean": [0, 200, 290], "corrupt": [0, 374, 411] },
 *   "experiment": { "kind": "patch", "site": "resid_pre", "metric": "logit-diff:-1:247:72", "normalize": true }
 * }
 * ```
 *
 * - `model`: `{ "preset": NAME }` (a name figures and the CLI know), `{ "url": URL_OR_PATH }` (a
 *   folder with config.json and model.safetensors; a relative path is relative to the spec
 *   file), or `{ "hub": "owner/name", "revision": "main" }` (the Hugging Face Hub).
 * - `processing`: "none" (the checkpoint's weights as they are, the default) or
 *   "transformer-lens" (TransformerLens' `from_pretrained` processing).
 * - `prompts`: `clean` and, for patching, `corrupt`: text (for a model with a tokenizer) or token ids.
 * - `interventions`: heads ablated in the run (`ablate` experiments): `{ "op": "zero" | "mean",
 *   "hook": "blocks.L.attn.hook_z", "head": H }`; mean is the head's mean over the prompt's positions.
 * - `experiment`: what to compute. `ablate` (the metric with the interventions, and without),
 *   `patch` (activation patching over a site's grid), `sweep-ablate` (each head ablated alone),
 *   `attribute` (attribution patching: the same grid, from gradients).
 * - `view`: what figures show that does not change the numbers (the heads an attention figure draws).
 */
import { PATCH_SITES, type PatchSite } from './patching.ts';
import { MetricSpecError, parseMetricSyntax } from './metric-spec.ts';

/** The spec format's version: a reader refuses a spec of a later version. */
export const SPEC_VERSION = 1;

export type ModelRef = { preset: string } | { url: string } | { hub: string; revision?: string };
/** Text, or token ids. */
export type PromptValue = string | number[];

export interface HeadIntervention {
  op: 'zero' | 'mean';
  hook: `blocks.${number}.attn.hook_z`;
  head: number;
}

export type ExperimentKind =
  | { kind: 'ablate'; metric?: string }
  | { kind: 'patch'; site: PatchSite; metric: string; normalize?: boolean }
  | { kind: 'sweep-ablate'; metric: string; mode?: 'zero' | 'mean' }
  | { kind: 'attribute'; site: PatchSite; metric: string; method?: 'atp' | 'atp*'; normalize?: boolean };

export interface ExperimentSpec {
  $schema?: string;
  patchbay: typeof SPEC_VERSION;
  model: ModelRef;
  processing?: 'none' | 'transformer-lens';
  prompts: { clean: PromptValue; corrupt?: PromptValue };
  interventions?: HeadIntervention[];
  experiment: ExperimentKind;
  view?: { heads?: string[] };
}

export const EXPERIMENT_KINDS = ['ablate', 'patch', 'sweep-ablate', 'attribute'] as const;
export const SCHEMA_FILE = 'schema/experiment-v1.schema.json';

export class SpecError extends Error {
  override name = 'SpecError';
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function onlyKeys(o: Json, path: string, keys: readonly string[]): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw new SpecError(`${path}: unknown field "${k}" (fields: ${keys.join(', ')})`);
}

function str(o: Json, key: string, path: string, required = true): string | undefined {
  const v = o[key];
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'string' || v === '') throw new SpecError(`${path}.${key}: expected a non-empty string${v === undefined ? ' (missing)' : `, got ${JSON.stringify(v)}`}`);
  return v;
}

function prompt(v: unknown, path: string): PromptValue {
  if (typeof v === 'string') {
    if (v === '') throw new SpecError(`${path}: the prompt is empty`);
    return v;
  }
  if (Array.isArray(v) && v.length > 0 && v.every((x) => Number.isSafeInteger(x) && (x as number) >= 0)) return v as number[];
  throw new SpecError(`${path}: expected text or a non-empty array of token ids (non-negative integers), got ${JSON.stringify(v)}`);
}

function metric(o: Json, path: string, required: boolean): string | undefined {
  const m = str(o, 'metric', path, required);
  if (m === undefined) return undefined;
  try {
    parseMetricSyntax(m);
  } catch (e) {
    if (e instanceof MetricSpecError) throw new SpecError(`${path}.metric: ${e.message}`);
    throw e;
  }
  return m;
}

function site(o: Json, path: string): PatchSite {
  const s = str(o, 'site', path)!;
  if (!(PATCH_SITES as readonly string[]).includes(s)) throw new SpecError(`${path}.site: "${s}" is not a patching site (${PATCH_SITES.join(', ')})`);
  return s as PatchSite;
}

function bool(o: Json, key: string, path: string): boolean | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw new SpecError(`${path}.${key}: expected true or false, got ${JSON.stringify(v)}`);
  return v;
}

function oneOf<T extends string>(o: Json, key: string, path: string, values: readonly T[]): T | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (!values.includes(v as T)) throw new SpecError(`${path}.${key}: expected ${values.map((x) => JSON.stringify(x)).join(' or ')}, got ${JSON.stringify(v)}`);
  return v as T;
}

/** Checks a parsed JSON value against the spec format; throws a SpecError naming the field. */
export function parseSpec(value: unknown): ExperimentSpec {
  if (!isObject(value)) throw new SpecError('spec: expected a JSON object');
  onlyKeys(value, 'spec', ['$schema', 'patchbay', 'model', 'processing', 'prompts', 'interventions', 'experiment', 'view']);
  if (value.patchbay !== SPEC_VERSION) {
    const later = typeof value.patchbay === 'number' && value.patchbay > SPEC_VERSION;
    throw new SpecError(
      later
        ? `spec.patchbay: this spec is version ${value.patchbay}; this Patchbay reads version ${SPEC_VERSION} (update Patchbay)`
        : `spec.patchbay: expected ${SPEC_VERSION} (the spec format's version), got ${JSON.stringify(value.patchbay)}`,
    );
  }
  if (value.$schema !== undefined && typeof value.$schema !== 'string') throw new SpecError('spec.$schema: expected a string');

  const m = value.model;
  if (!isObject(m)) throw new SpecError('spec.model: expected { "preset": … }, { "url": … } or { "hub": …, "revision": … }');
  let model: ModelRef;
  if ('preset' in m) {
    onlyKeys(m, 'spec.model', ['preset']);
    model = { preset: str(m, 'preset', 'spec.model')! };
  } else if ('url' in m) {
    onlyKeys(m, 'spec.model', ['url']);
    model = { url: str(m, 'url', 'spec.model')! };
  } else if ('hub' in m) {
    onlyKeys(m, 'spec.model', ['hub', 'revision']);
    const hub = str(m, 'hub', 'spec.model')!;
    if (!/^[\w.-]+\/[\w.-]+$/.test(hub)) throw new SpecError(`spec.model.hub: "${hub}" is not a Hub repository id such as "openai-community/gpt2"`);
    const revision = str(m, 'revision', 'spec.model', false);
    model = revision ? { hub, revision } : { hub };
  } else throw new SpecError('spec.model: expected one of "preset", "url" or "hub"');

  const processing = oneOf(value, 'processing', 'spec', ['none', 'transformer-lens'] as const);

  const p = value.prompts;
  if (!isObject(p)) throw new SpecError('spec.prompts: expected { "clean": …, "corrupt": … }');
  onlyKeys(p, 'spec.prompts', ['clean', 'corrupt']);
  const prompts: ExperimentSpec['prompts'] = { clean: prompt(p.clean, 'spec.prompts.clean') };
  if (p.corrupt !== undefined) prompts.corrupt = prompt(p.corrupt, 'spec.prompts.corrupt');

  const e = value.experiment;
  if (!isObject(e)) throw new SpecError(`spec.experiment: expected { "kind": ${EXPERIMENT_KINDS.map((k) => `"${k}"`).join(' | ')}, … }`);
  const ep = 'spec.experiment';
  let experiment: ExperimentKind;
  switch (e.kind) {
    case 'ablate': {
      onlyKeys(e, ep, ['kind', 'metric']);
      const mt = metric(e, ep, false);
      experiment = mt ? { kind: 'ablate', metric: mt } : { kind: 'ablate' };
      break;
    }
    case 'patch':
    case 'attribute': {
      const attribute = e.kind === 'attribute';
      onlyKeys(e, ep, attribute ? ['kind', 'site', 'metric', 'method', 'normalize'] : ['kind', 'site', 'metric', 'normalize']);
      const x: Json = { kind: e.kind, site: site(e, ep), metric: metric(e, ep, true) };
      const normalize = bool(e, 'normalize', ep);
      if (normalize !== undefined) x.normalize = normalize;
      if (attribute) {
        const method = oneOf(e, 'method', ep, ['atp', 'atp*'] as const);
        if (method) x.method = method;
      }
      if (!prompts.corrupt) throw new SpecError(`spec.prompts.corrupt: ${e.kind === 'patch' ? 'patching' : 'attribution'} needs a corrupted prompt`);
      experiment = x as ExperimentKind;
      break;
    }
    case 'sweep-ablate': {
      onlyKeys(e, ep, ['kind', 'metric', 'mode']);
      const mode = oneOf(e, 'mode', ep, ['zero', 'mean'] as const);
      experiment = { kind: 'sweep-ablate', metric: metric(e, ep, true)!, ...(mode ? { mode } : {}) };
      break;
    }
    default:
      throw new SpecError(`${ep}.kind: expected ${EXPERIMENT_KINDS.map((k) => `"${k}"`).join(', ')}, got ${JSON.stringify(e.kind)}`);
  }

  let interventions: HeadIntervention[] | undefined;
  if (value.interventions !== undefined) {
    if (!Array.isArray(value.interventions)) throw new SpecError('spec.interventions: expected an array');
    interventions = value.interventions.map((x, i) => {
      const path = `spec.interventions[${i}]`;
      if (!isObject(x)) throw new SpecError(`${path}: expected { "op", "hook", "head" }`);
      onlyKeys(x, path, ['op', 'hook', 'head']);
      const op = oneOf(x, 'op', path, ['zero', 'mean'] as const);
      if (!op) throw new SpecError(`${path}.op: missing ("zero" or "mean")`);
      const hook = str(x, 'hook', path)!;
      if (!/^blocks\.\d+\.attn\.hook_z$/.test(hook)) throw new SpecError(`${path}.hook: "${hook}": version 1 specs ablate heads, at blocks.L.attn.hook_z`);
      if (!Number.isSafeInteger(x.head) || (x.head as number) < 0) throw new SpecError(`${path}.head: expected a head index (a non-negative integer), got ${JSON.stringify(x.head)}`);
      return { op, hook: hook as HeadIntervention['hook'], head: x.head as number };
    });
    if (interventions.length && experiment.kind !== 'ablate') {
      throw new SpecError(`spec.interventions: only "ablate" experiments take interventions; a ${experiment.kind} runs the model as it is`);
    }
  }

  let view: ExperimentSpec['view'];
  if (value.view !== undefined) {
    if (!isObject(value.view)) throw new SpecError('spec.view: expected an object');
    onlyKeys(value.view, 'spec.view', ['heads']);
    const heads = value.view.heads;
    if (heads !== undefined && !(Array.isArray(heads) && heads.every((h) => typeof h === 'string' && /^\d+\.\d+$/.test(h)))) {
      throw new SpecError('spec.view.heads: expected heads as "LAYER.HEAD" strings, e.g. ["0.2", "1.3"]');
    }
    view = heads ? { heads: heads as string[] } : {};
  }

  const out: ExperimentSpec = { patchbay: SPEC_VERSION, model, prompts, experiment };
  if (value.$schema !== undefined) out.$schema = value.$schema as string;
  if (processing) out.processing = processing;
  if (interventions?.length) out.interventions = interventions;
  if (view) out.view = view;
  return out;
}

/** `parseSpec(JSON.parse(text))`, with JSON syntax errors named as such. */
export function parseSpecText(text: string, where = 'spec'): ExperimentSpec {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new SpecError(`${where} is not valid JSON: ${(e as Error).message}`);
  }
  return parseSpec(value);
}

/** The heads the spec's interventions ablate, "L.H", and their mode (all must share one). */
export function ablatedHeads(spec: Pick<ExperimentSpec, 'interventions'>): { heads: { layer: number; head: number }[]; mode: 'zero' | 'mean' } {
  const list = spec.interventions ?? [];
  const modes = new Set(list.map((i) => i.op));
  if (modes.size > 1) throw new SpecError('spec.interventions: mixing "zero" and "mean" ablations in one run is not supported; use one op');
  return { heads: list.map((i) => ({ layer: Number(i.hook.split('.')[1]), head: i.head })), mode: list[0]?.op ?? 'zero' };
}

/** Head interventions for "L.H" names. */
export function headInterventions(names: readonly string[], op: 'zero' | 'mean'): HeadIntervention[] {
  return names.map((n) => {
    const [l, h] = n.split('.').map(Number);
    return { op, hook: `blocks.${l}.attn.hook_z`, head: h };
  });
}

/** A short name for the model, for messages. */
export function describeModelRef(m: ModelRef): string {
  if ('preset' in m) return m.preset;
  if ('url' in m) return m.url;
  return m.revision ? `${m.hub}@${m.revision}` : m.hub;
}

/** Text prompts are kept as text; id prompts as "0,5,9" (how figures and links write them). */
export function promptText(p: PromptValue): string {
  return typeof p === 'string' ? p : p.join(',');
}
