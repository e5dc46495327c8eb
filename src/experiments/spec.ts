/**
 * Experiments as data: one JSON document that says "this model, these prompts, these
 * interventions, this sweep, this metric", read alike by the command line (`patchbay run`), the
 * figures (export and load), the URL state of a page, and the Python scripts `patchbay export`
 * writes. Its JSON Schema is `schema/experiment-v2.schema.json`; `parseSpec` checks the same rules
 * and names the field that breaks one. Version 1 specs (`schema/experiment-v1.schema.json`: head
 * ablations only) are still read, as the version 2 spec they mean.
 *
 * ```json
 * {
 *   "patchbay": 2,
 *   "model": { "preset": "induction-2l" },
 *   "prompts": { "clean": [0, 200, 290], "corrupt": [0, 374, 411] },
 *   "interventions": [
 *     { "op": "zero", "hook": "blocks.0.attn.hook_z", "heads": [2] },
 *     { "op": "patch", "hook": "blocks.1.hook_resid_pre", "pos": -1, "from": "corrupt" }
 *   ],
 *   "experiment": { "kind": "ablate", "metric": "logit-diff:-1:247:72" }
 * }
 * ```
 *
 * - `model`: `{ "preset": NAME }` (a name figures and the CLI know), `{ "url": URL_OR_PATH }` (a
 *   folder with config.json and model.safetensors; a relative path is relative to the spec
 *   file), or `{ "hub": "owner/name", "revision": "main" }` (the Hugging Face Hub).
 * - `processing`: "none" (the checkpoint's weights as they are, the default) or
 *   "transformer-lens" (TransformerLens' `from_pretrained` processing).
 * - `sae`: an SAE spliced into every run (`{ "url": FOLDER_OR_URL_OR_hf://…, "error_term": true }`);
 *   its hook points (`<hook>.hook_sae_acts_post`, …) then take interventions too.
 * - `prompts`: `clean` and, for patching, `corrupt`: text (for a model with a tokenizer) or token
 *   ids. An `ablate` experiment may run a batch: `clean` a list of prompts of one token length
 *   (and `corrupt` a list of as many, or one). `reference`: prompts whose mean a `mean`
 *   intervention takes (default: the clean prompts).
 * - `interventions` (`ablate` experiments): applied in order, each at one TransformerLens hook
 *   point, on a selection (`batch` rows, `pos` positions, negative from the end; `heads` on
 *   per-head hooks, features on an SAE's feature hooks; `key_pos` on hook_pattern and
 *   hook_attn_scores; every index when a field is left out):
 *     zero    x = 0
 *     mean    x = the hook's mean over the `reference` prompts (or `from: "clean"`), per
 *             position, or over positions too with `pooled`
 *     patch   x = the same hook in the run of the `corrupt` prompts (`from`: "corrupt", "clean"
 *             or "reference"; `source_batch` picks one source row for every row)
 *     scale   x = factor * x
 *     set     x = value
 *     add     x = x + coeff * vector (steering); `feature: F` adds the SAE's decoder row F
 *   Sources (patch, mean) are runs without interventions.
 * - `experiment`: what to compute. `ablate` (the metric with the interventions, and without),
 *   `patch` (activation patching over a site's grid), `sweep-ablate` (each head ablated alone),
 *   `attribute` (attribution patching: the same grid, from gradients; `method` atp or atp*,
 *   `verify: K` re-runs the K largest cells exactly). With `site: "features"` it attributes to
 *   the spec's SAE features instead (AtP over features: per position the `k` features whose
 *   activation differs most between the clean and corrupted runs, as a feature patching sweep).
 * - `view`: what figures show that does not change the numbers (the heads an attention figure
 *   draws, the feature the feature figures select).
 */
import { PATCH_SITES, type PatchSite } from './patching.ts';
import { MetricSpecError, parseMetricSyntax } from './metric-spec.ts';

/** The spec format's version: a reader refuses a spec of a later version, and reads every earlier one. */
export const SPEC_VERSION = 2;

export type ModelRef = { preset: string } | { url: string } | { hub: string; revision?: string };
/** Text, or token ids. */
export type PromptValue = string | number[];
/** One prompt, or a batch of prompts (a list of texts or of id lists). */
export type Prompts = PromptValue | PromptValue[];

/** One index or a list of them. */
export type Indices = number | number[];

export const INTERVENTION_OPS = ['zero', 'mean', 'patch', 'scale', 'set', 'add'] as const;
export type InterventionOp = (typeof INTERVENTION_OPS)[number];

/** Which run a `patch` reads from, or a `mean` averages. */
export type SourceRun = 'clean' | 'corrupt' | 'reference';

export interface SpecIntervention {
  op: InterventionOp;
  /** A TransformerLens hook point, e.g. `blocks.0.attn.hook_z` (or an SAE's, with `sae`). */
  hook: string;
  batch?: Indices;
  /** Positions; negative ones count from the end (-1 is the last token). Query positions on patterns. */
  pos?: Indices;
  /** Heads (per-head hooks), or features (an SAE's `hook_sae_acts_pre` / `_post`). */
  heads?: Indices;
  /** Key positions (hook_pattern, hook_attn_scores); negative ones count from the end. */
  key_pos?: Indices;
  /** mean: average over positions too (one vector for every position). */
  pooled?: boolean;
  /** patch: the run it reads (default "corrupt"); mean: the prompts it averages (default "reference" when given, else "clean"). */
  from?: SourceRun;
  /** patch: one source row for every row. */
  source_batch?: number;
  factor?: number;
  value?: number;
  /** add: the vector (the hook's last dimension, or heads × it on per-head hooks). */
  vector?: number[];
  /** add: the SAE's decoder row of this feature, instead of `vector`. */
  feature?: number;
  /** add: the vector's multiplier (default 1). */
  coeff?: number;
}

/** Version 1's intervention: one head ablated at hook_z, the mean pooled over the clean prompt. */
export interface V1HeadIntervention {
  op: 'zero' | 'mean';
  hook: `blocks.${number}.attn.hook_z`;
  head: number;
}

export type ExperimentKind =
  | { kind: 'ablate'; metric?: string }
  | { kind: 'patch'; site: PatchSite; metric: string; normalize?: boolean }
  | { kind: 'sweep-ablate'; metric: string; mode?: 'zero' | 'mean' }
  | { kind: 'attribute'; site: AttributeSite; metric: string; method?: 'atp' | 'atp*'; normalize?: boolean; verify?: number; k?: number };

/** What an `attribute` experiment attributes to: a patching site's grid, or the spec's SAE features. */
export type AttributeSite = PatchSite | 'features';

export interface SaeRef {
  /** A folder path (relative to the spec file) or URL, or `hf://owner/repo/folder[@revision]`. */
  url: string;
  /** Splice with SAELens' error term (default true): the model is unchanged until a feature is touched. */
  error_term?: boolean;
}

export interface ExperimentSpec {
  $schema?: string;
  patchbay: typeof SPEC_VERSION;
  model: ModelRef;
  processing?: 'none' | 'transformer-lens';
  sae?: SaeRef;
  prompts: { clean: Prompts; corrupt?: Prompts; reference?: PromptValue[] };
  interventions?: SpecIntervention[];
  experiment: ExperimentKind;
  view?: { heads?: string[]; feature?: number };
}

export const EXPERIMENT_KINDS = ['ablate', 'patch', 'sweep-ablate', 'attribute'] as const;
export const SCHEMA_FILE = 'schema/experiment-v2.schema.json';

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

function num(o: Json, key: string, path: string, required: boolean): number | undefined {
  const v = o[key];
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new SpecError(`${path}.${key}: expected a number${v === undefined ? ' (missing)' : `, got ${JSON.stringify(v)}`}`);
  return v;
}

const isIds = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every((x) => Number.isSafeInteger(x) && (x as number) >= 0);

function prompt(v: unknown, path: string): PromptValue {
  if (typeof v === 'string') {
    if (v === '') throw new SpecError(`${path}: the prompt is empty`);
    return v;
  }
  if (isIds(v)) return v;
  throw new SpecError(`${path}: expected text or a non-empty array of token ids (non-negative integers), got ${JSON.stringify(v)}`);
}

/** True for a batch of prompts (a list of texts or id lists), false for one prompt. */
export function isBatch(p: Prompts): p is PromptValue[] {
  return Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'string' || Array.isArray(x));
}

/** The prompts as rows: a batch as it is, one prompt as a batch of one. */
export function promptRows(p: Prompts): PromptValue[] {
  return isBatch(p) ? p : [p];
}

/** One prompt, or a batch: a non-empty list whose items are texts or id lists. */
function prompts(v: unknown, path: string): Prompts {
  if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string' || Array.isArray(x))) return v.map((x, i) => prompt(x, `${path}[${i}]`));
  return prompt(v, path);
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

function site(o: Json, path: string, attribute = false): PatchSite {
  const s = str(o, 'site', path)!;
  if (!(PATCH_SITES as readonly string[]).includes(s))
    throw new SpecError(`${path}.site: "${s}" is not a patching site (${PATCH_SITES.join(', ')}${attribute ? ', or "features" for an SAE\'s features' : ''})`);
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

/** An index or a non-empty list of them; `signed` allows negative ones (positions from the end). */
function indices(o: Json, key: string, path: string, signed: boolean): Indices | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  const ok = (x: unknown) => Number.isSafeInteger(x) && (signed || (x as number) >= 0);
  if (ok(v)) return v as number;
  if (Array.isArray(v) && v.length > 0 && v.every(ok)) return [...(v as number[])];
  const what = signed ? 'integers (negative ones count from the end)' : 'non-negative integers';
  throw new SpecError(`${path}.${key}: expected an index or a non-empty list of ${what}, got ${JSON.stringify(v)}`);
}

/** The hook-name grammar every hook point follows (checked against the model when it runs). */
const HOOK_NAME = /^(?:hook_embed|hook_pos_embed|unembed\.hook_(?:in|out)|ln_final\.hook_(?:scale|normalized)|blocks\.\d+\.[a-z0-9_.]+)$/;

const FIELDS_OF: Record<InterventionOp, readonly string[]> = {
  zero: [],
  mean: ['pooled', 'from'],
  patch: ['from', 'source_batch'],
  scale: ['factor'],
  set: ['value'],
  add: ['vector', 'feature', 'coeff'],
};
const SELECTION = ['batch', 'pos', 'heads', 'key_pos'] as const;

function intervention(x: unknown, path: string): SpecIntervention {
  if (!isObject(x)) throw new SpecError(`${path}: expected { "op", "hook", … }`);
  const op = oneOf(x, 'op', path, INTERVENTION_OPS);
  if (!op) throw new SpecError(`${path}.op: missing (${INTERVENTION_OPS.map((o) => `"${o}"`).join(', ')})`);
  onlyKeys(x, path, ['op', 'hook', ...SELECTION, ...FIELDS_OF[op]]);
  const hook = str(x, 'hook', path)!;
  if (!HOOK_NAME.test(hook)) throw new SpecError(`${path}.hook: "${hook}" is not a hook point name (TransformerLens' names, e.g. blocks.0.attn.hook_z, blocks.1.hook_resid_pre, hook_embed)`);
  const out: SpecIntervention = { op, hook };
  const batch = indices(x, 'batch', path, false);
  const pos = indices(x, 'pos', path, true);
  const heads = indices(x, 'heads', path, false);
  const keyPos = indices(x, 'key_pos', path, true);
  if (batch !== undefined) out.batch = batch;
  if (pos !== undefined) out.pos = pos;
  if (heads !== undefined) out.heads = heads;
  if (keyPos !== undefined) {
    if (!/\.hook_(pattern|attn_scores)$/.test(hook)) throw new SpecError(`${path}.key_pos: only hook_pattern and hook_attn_scores have key positions, not ${hook}`);
    out.key_pos = keyPos;
  }
  switch (op) {
    case 'mean': {
      const pooled = bool(x, 'pooled', path);
      const from = oneOf(x, 'from', path, ['clean', 'reference'] as const);
      if (pooled !== undefined) out.pooled = pooled;
      if (from) out.from = from;
      break;
    }
    case 'patch': {
      const from = oneOf(x, 'from', path, ['clean', 'corrupt', 'reference'] as const);
      if (from) out.from = from;
      if (x.source_batch !== undefined) {
        if (!Number.isSafeInteger(x.source_batch) || (x.source_batch as number) < 0)
          throw new SpecError(`${path}.source_batch: expected a row index (a non-negative integer), got ${JSON.stringify(x.source_batch)}`);
        out.source_batch = x.source_batch as number;
      }
      break;
    }
    case 'scale':
      out.factor = num(x, 'factor', path, true);
      break;
    case 'set':
      out.value = num(x, 'value', path, true);
      break;
    case 'add': {
      const hasVector = x.vector !== undefined;
      const hasFeature = x.feature !== undefined;
      if (hasVector === hasFeature) throw new SpecError(`${path}: "add" takes a "vector" or a "feature" (an SAE's decoder row), one of the two`);
      if (hasVector) {
        const v = x.vector;
        if (!Array.isArray(v) || v.length === 0 || !v.every((n) => typeof n === 'number' && Number.isFinite(n))) throw new SpecError(`${path}.vector: expected a non-empty array of numbers`);
        out.vector = [...(v as number[])];
      } else {
        if (!Number.isSafeInteger(x.feature) || (x.feature as number) < 0) throw new SpecError(`${path}.feature: expected a feature index (a non-negative integer), got ${JSON.stringify(x.feature)}`);
        out.feature = x.feature as number;
      }
      const coeff = num(x, 'coeff', path, false);
      if (coeff !== undefined) out.coeff = coeff;
      break;
    }
  }
  return out;
}

/** Version 1's head ablation as the version 2 intervention it means. */
function fromV1(x: unknown, path: string): SpecIntervention {
  if (!isObject(x)) throw new SpecError(`${path}: expected { "op", "hook", "head" }`);
  onlyKeys(x, path, ['op', 'hook', 'head']);
  const op = oneOf(x, 'op', path, ['zero', 'mean'] as const);
  if (!op) throw new SpecError(`${path}.op: missing ("zero" or "mean")`);
  const hook = str(x, 'hook', path)!;
  if (!/^blocks\.\d+\.attn\.hook_z$/.test(hook)) throw new SpecError(`${path}.hook: "${hook}": version 1 specs ablate heads, at blocks.L.attn.hook_z (version 2 specs take any hook point)`);
  if (!Number.isSafeInteger(x.head) || (x.head as number) < 0) throw new SpecError(`${path}.head: expected a head index (a non-negative integer), got ${JSON.stringify(x.head)}`);
  // Version 1's mean was the head's mean over the clean prompt's positions.
  return op === 'zero' ? { op, hook, heads: [x.head as number] } : { op, hook, heads: [x.head as number], pooled: true, from: 'clean' };
}

/** Checks a parsed JSON value against the spec format (version 1 or 2); throws a SpecError naming the field. Returns a version 2 spec. */
export function parseSpec(value: unknown): ExperimentSpec {
  if (!isObject(value)) throw new SpecError('spec: expected a JSON object');
  if (value.patchbay !== 1 && value.patchbay !== SPEC_VERSION) {
    const later = typeof value.patchbay === 'number' && value.patchbay > SPEC_VERSION;
    throw new SpecError(
      later
        ? `spec.patchbay: this spec is version ${value.patchbay}; this Patchbay reads versions 1 to ${SPEC_VERSION} (update Patchbay)`
        : `spec.patchbay: expected ${SPEC_VERSION} (the spec format's version; 1 is read too), got ${JSON.stringify(value.patchbay)}`,
    );
  }
  const v1 = value.patchbay === 1;
  onlyKeys(
    value,
    'spec',
    v1
      ? ['$schema', 'patchbay', 'model', 'processing', 'prompts', 'interventions', 'experiment', 'view']
      : ['$schema', 'patchbay', 'model', 'processing', 'sae', 'prompts', 'interventions', 'experiment', 'view'],
  );
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

  let sae: SaeRef | undefined;
  if (value.sae !== undefined) {
    if (!isObject(value.sae)) throw new SpecError('spec.sae: expected { "url": …, "error_term": true }');
    onlyKeys(value.sae, 'spec.sae', ['url', 'error_term']);
    sae = { url: str(value.sae, 'url', 'spec.sae')! };
    const et = bool(value.sae, 'error_term', 'spec.sae');
    if (et !== undefined) sae.error_term = et;
  }

  const p = value.prompts;
  if (!isObject(p)) throw new SpecError('spec.prompts: expected { "clean": …, "corrupt": … }');
  onlyKeys(p, 'spec.prompts', v1 ? ['clean', 'corrupt'] : ['clean', 'corrupt', 'reference']);
  const read = v1 ? prompt : prompts;
  const promptsOut: ExperimentSpec['prompts'] = { clean: read(p.clean, 'spec.prompts.clean') };
  if (p.corrupt !== undefined) promptsOut.corrupt = read(p.corrupt, 'spec.prompts.corrupt');
  if (p.reference !== undefined) {
    const r = p.reference;
    if (!Array.isArray(r) || r.length === 0 || !r.every((x) => typeof x === 'string' || Array.isArray(x)))
      throw new SpecError('spec.prompts.reference: expected a non-empty list of prompts (texts or token id lists)');
    promptsOut.reference = r.map((x, i) => prompt(x, `spec.prompts.reference[${i}]`));
  }

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
      onlyKeys(e, ep, attribute ? ['kind', 'site', 'metric', 'method', 'normalize', ...(v1 ? [] : ['verify', 'k'])] : ['kind', 'site', 'metric', 'normalize']);
      const features = attribute && e.site === 'features';
      const x: Json = { kind: e.kind, site: features ? 'features' : site(e, ep, attribute), metric: metric(e, ep, true) };
      const normalize = bool(e, 'normalize', ep);
      if (normalize !== undefined) x.normalize = normalize;
      if (attribute) {
        const method = oneOf(e, 'method', ep, ['atp', 'atp*'] as const);
        if (method === 'atp*' && features) throw new SpecError(`${ep}.method: AtP* corrects query and key cells; features take "atp"`);
        if (method) x.method = method;
        for (const key of ['verify', 'k'] as const) {
          if (e[key] === undefined) continue;
          if (!Number.isSafeInteger(e[key]) || (e[key] as number) < 1)
            throw new SpecError(
              `${ep}.${key}: expected ${key === 'k' ? 'the number of features per position' : 'the number of cells to re-run exactly'} (a positive integer), got ${JSON.stringify(e[key])}`,
            );
          if (key === 'k' && !features) throw new SpecError(`${ep}.k: features per position is for site "features"`);
          x[key] = e[key];
        }
        if (features && !sae) throw new SpecError(`${ep}.site: "features" attributes to an SAE's features, and the spec splices no SAE (spec.sae)`);
      }
      if (!promptsOut.corrupt) throw new SpecError(`spec.prompts.corrupt: ${e.kind === 'patch' ? 'patching' : 'attribution'} needs a corrupted prompt`);
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
  if (experiment.kind !== 'ablate') {
    for (const k of ['clean', 'corrupt'] as const) {
      const pv = promptsOut[k];
      if (pv !== undefined && isBatch(pv)) throw new SpecError(`spec.prompts.${k}: a batch of prompts is for "ablate" experiments; a ${experiment.kind} takes one ${k} prompt`);
    }
  }

  let interventions: SpecIntervention[] | undefined;
  if (value.interventions !== undefined) {
    if (!Array.isArray(value.interventions)) throw new SpecError('spec.interventions: expected an array');
    interventions = value.interventions.map((x, i) => (v1 ? fromV1 : intervention)(x, `spec.interventions[${i}]`));
    if (interventions.length && experiment.kind !== 'ablate') {
      throw new SpecError(`spec.interventions: only "ablate" experiments take interventions; a ${experiment.kind} runs the model as it is`);
    }
    interventions.forEach((iv, i) => {
      const path = `spec.interventions[${i}]`;
      if (iv.feature !== undefined && !sae) throw new SpecError(`${path}.feature: adding a feature's decoder row needs an SAE (spec.sae)`);
      if (/\.hook_sae_[a-z_]+$/.test(iv.hook) && !sae) throw new SpecError(`${path}.hook: ${iv.hook} is an SAE's hook point, and the spec splices no SAE (spec.sae)`);
      const from = iv.from ?? (iv.op === 'patch' ? 'corrupt' : iv.op === 'mean' ? (promptsOut.reference ? 'reference' : 'clean') : undefined);
      if (from === 'corrupt' && !promptsOut.corrupt) throw new SpecError(`${path}: patching from the corrupted run needs spec.prompts.corrupt`);
      if (from === 'reference' && !promptsOut.reference) throw new SpecError(`${path}: reading the reference prompts needs spec.prompts.reference`);
    });
  }

  let view: ExperimentSpec['view'];
  if (value.view !== undefined) {
    if (!isObject(value.view)) throw new SpecError('spec.view: expected an object');
    onlyKeys(value.view, 'spec.view', v1 ? ['heads'] : ['heads', 'feature']);
    const heads = value.view.heads;
    if (heads !== undefined && !(Array.isArray(heads) && heads.every((h) => typeof h === 'string' && /^\d+\.\d+$/.test(h)))) {
      throw new SpecError('spec.view.heads: expected heads as "LAYER.HEAD" strings, e.g. ["0.2", "1.3"]');
    }
    view = heads ? { heads: heads as string[] } : {};
    const f = value.view.feature;
    if (f !== undefined) {
      if (!Number.isSafeInteger(f) || (f as number) < 0) throw new SpecError(`spec.view.feature: expected a feature index (a non-negative integer), got ${JSON.stringify(f)}`);
      view.feature = f as number;
    }
  }

  const out: ExperimentSpec = { patchbay: SPEC_VERSION, model, prompts: promptsOut, experiment };
  if (value.$schema !== undefined && !v1) out.$schema = value.$schema as string;
  if (processing) out.processing = processing;
  if (sae) out.sae = sae;
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

const asList = (i: Indices | undefined): number[] | undefined => (i === undefined ? undefined : typeof i === 'number' ? [i] : i);

/** What the figures can show of a run: heads ablated (one mode), SAE features zeroed, one feature steered. */
export interface FigureInterventions {
  /** "L.H" */
  heads: string[];
  mode: 'zero' | 'mean';
  /** Features zeroed at every position (at the SAE's hook_sae_acts_post). */
  features: number[];
  /** coeff × the feature's decoder row added at the SAE's output hook, every position. */
  steer: { feature: number; coeff: number } | null;
}

/**
 * A spec's interventions as the figures keep them, when they are nothing else: head ablations
 * (zero, or the head's mean over the clean prompt pooled over positions, at hook_z on every
 * position and row), feature ablations and one feature's steering. Null when they are something
 * else, which a figure cannot show (`patchbay run` can).
 */
export function figureInterventions(spec: Pick<ExperimentSpec, 'interventions'>): FigureInterventions | null {
  const out: FigureInterventions = { heads: [], mode: 'zero', features: [], steer: null };
  let mode: 'zero' | 'mean' | null = null;
  for (const iv of spec.interventions ?? []) {
    const everywhere = iv.batch === undefined && iv.pos === undefined && iv.key_pos === undefined;
    if (!everywhere) return null;
    const z = /^blocks\.(\d+)\.attn\.hook_z$/.exec(iv.hook);
    if (z && iv.heads !== undefined && (iv.op === 'zero' || (iv.op === 'mean' && iv.pooled === true && iv.from === 'clean'))) {
      if (mode && mode !== iv.op) return null;
      mode = iv.op;
      for (const h of asList(iv.heads)!) out.heads.push(`${z[1]}.${h}`);
    } else if (iv.op === 'zero' && iv.hook.endsWith('.hook_sae_acts_post') && iv.heads !== undefined) {
      out.features.push(...asList(iv.heads)!);
    } else if (iv.op === 'add' && iv.feature !== undefined && !out.steer) {
      out.steer = { feature: iv.feature, coeff: iv.coeff ?? 1 };
    } else return null;
  }
  out.mode = mode ?? 'zero';
  out.features = [...new Set(out.features)].sort((a, b) => a - b);
  return out;
}

/** The SAE hook points figure interventions act at: its feature activations and its output hook. */
export interface SaeHookNames {
  /** `<hook>.hook_sae_acts_post` */
  acts: string;
  /** The hook a steering vector is added to (the SAE's output hook). */
  out: string;
}

/** Figure interventions as a spec's (the reverse of `figureInterventions`). */
export function figureSpecInterventions(f: FigureInterventions, sae: SaeHookNames | null): SpecIntervention[] {
  const out = headInterventions(f.heads, f.mode);
  if (sae && f.features.length) out.push({ op: 'zero', hook: sae.acts, heads: [...f.features] });
  if (sae && f.steer && f.steer.coeff !== 0) out.push({ op: 'add', hook: sae.out, feature: f.steer.feature, coeff: f.steer.coeff });
  return out;
}

/** Head ablations ("L.H" names, one mode) as interventions: zero, or the head's mean over the clean prompt, pooled over positions. */
export function headInterventions(names: readonly string[], op: 'zero' | 'mean'): SpecIntervention[] {
  return names.map((n) => {
    const [l, h] = n.split('.').map(Number);
    return op === 'zero' ? { op, hook: `blocks.${l}.attn.hook_z`, heads: [h] } : { op, hook: `blocks.${l}.attn.hook_z`, heads: [h], pooled: true, from: 'clean' };
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

/** A one-line account of an intervention, for captions, docstrings and messages. */
export function describeIntervention(iv: SpecIntervention): string {
  const sel: string[] = [];
  const list = (i: Indices) => (typeof i === 'number' ? String(i) : i.join(','));
  if (iv.batch !== undefined) sel.push(`rows ${list(iv.batch)}`);
  if (iv.pos !== undefined) sel.push(`positions ${list(iv.pos)}`);
  if (iv.heads !== undefined) sel.push(`${/hook_sae_acts/.test(iv.hook) ? 'features' : 'heads'} ${list(iv.heads)}`);
  if (iv.key_pos !== undefined) sel.push(`keys ${list(iv.key_pos)}`);
  const what =
    iv.op === 'zero'
      ? 'zero'
      : iv.op === 'mean'
        ? `mean of the ${iv.from ?? 'reference'} prompts${iv.pooled ? ', pooled' : ''}`
        : iv.op === 'patch'
          ? `patched from the ${iv.from ?? 'corrupt'} run`
          : iv.op === 'scale'
            ? `scaled by ${iv.factor}`
            : iv.op === 'set'
              ? `set to ${iv.value}`
              : `plus ${iv.coeff ?? 1} × ${iv.feature !== undefined ? `feature ${iv.feature}'s decoder row` : `a vector of ${iv.vector!.length}`}`;
  return `${iv.hook}${sel.length ? ` (${sel.join(', ')})` : ''}: ${what}`;
}
