/**
 * The experiment a `<pb-model>` shows, shared by its figures and, when the author allows it, kept
 * in the page's URL so a reader can share exactly what they see:
 *
 *   ?ioi.prompt=…&ioi.ablate=9.9,10.0&ioi.metric=logit-diff:-1:5335:1757
 *
 * Each `<pb-model>` keeps its state under its own key, its `id` ("ioi." above; a model without an
 * id uses bare keys, so give every model an id when a page has several), and only the parts its
 * `url-state` attribute lists: a link can change nothing else. The query is a compact encoding of
 * the experiment spec (src/experiments/spec.ts), one parameter per field that differs from the
 * author's:
 *
 *   model    spec.model.preset            (only when url-state lists it; presets only)
 *   prompt   spec.prompts.clean           text, or ids as "0,5,9"
 *   corrupt  spec.prompts.corrupt
 *   ablate   spec.interventions           "L.H,L.H" (heads, all with `mode`)
 *   mode     spec.interventions[].op      zero | mean
 *   metric   spec.experiment.metric
 *   site     spec.experiment.site
 *   heads    spec.view.heads
 *   features spec.interventions           "3,7": SAE features zeroed (inside a <pb-sae>)
 *   feature  spec.view.feature            the feature the feature figures select
 *   steer    spec.interventions           the selected feature's steering coefficient ("add" of
 *                                         its decoder row)
 *
 * Figures read the state and write to it through `update`; every change fires a `change` event
 * and replaces the URL's query without adding history.
 */
import { createContext } from '@lit/context';

export interface ExperimentState {
  prompt: string;
  /** The corrupted prompt for patching (same token count as `prompt`). */
  corrupt: string;
  /** Ablated heads as "layer.head". */
  ablate: string[];
  mode: 'zero' | 'mean';
  /** Patching site (see src/experiments/patching.ts). */
  site: string;
  /** Metric spec (see src/experiments/metric-spec.ts). */
  metric: string;
  /** Heads shown by attention figures, "layer.head". */
  heads: string[];
  /** SAE features zeroed at every position (feature figures), as numbers' text. */
  features: string[];
  /** The feature the feature figures select ('' for none). */
  feature: string;
  /** The selected feature's steering coefficient ('' or '0' for none). */
  steer: string;
}

const LIST_KEYS = ['ablate', 'heads', 'features'] as const;
export const STATE_KEYS: (keyof ExperimentState)[] = ['prompt', 'corrupt', 'ablate', 'mode', 'site', 'metric', 'heads', 'features', 'feature', 'steer'];

/** What `url-state` may list: the state's keys, and the model. */
export type UrlPart = keyof ExperimentState | 'model';
export const URL_PARTS: readonly UrlPart[] = [...STATE_KEYS, 'model'];
/** Without a `url-state` attribute: everything but the model. */
export const DEFAULT_URL_PARTS: readonly UrlPart[] = STATE_KEYS;

export const DEFAULT_STATE: ExperimentState = { prompt: '', corrupt: '', ablate: [], mode: 'zero', site: 'resid_pre', metric: '', heads: [], features: [], feature: '', steer: '' };

/** Where and what a model keeps in the URL. */
export interface UrlSync {
  /** The key prefix: the element's id and a dot, or '' for bare keys. */
  prefix: string;
  parts: readonly UrlPart[];
}

/** `url-state="prompt ablate"` → its parts; "none" or "false" → none; unknown words are reported. */
export function parseUrlParts(value: string | null): { parts: UrlPart[]; unknown: string[] } {
  if (value === null) return { parts: [...DEFAULT_URL_PARTS], unknown: [] };
  const words = value.split(/[\s,]+/).filter(Boolean);
  if (words.length === 0 || (words.length === 1 && (words[0] === 'none' || words[0] === 'false'))) return { parts: [], unknown: [] };
  if (words.length === 1 && words[0] === 'true') return { parts: [...DEFAULT_URL_PARTS], unknown: [] };
  return { parts: words.filter((w): w is UrlPart => (URL_PARTS as readonly string[]).includes(w)), unknown: words.filter((w) => !(URL_PARTS as readonly string[]).includes(w)) };
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

export class Experiment extends EventTarget {
  private current: ExperimentState;
  /** The author's state (attributes): the URL carries only what differs from it. */
  readonly authored: ExperimentState;

  constructor(
    initial: Partial<ExperimentState> = {},
    /** Read the initial state from, and write changes to, `location` (browsers only). */
    private readonly sync: UrlSync | null = null,
  ) {
    super();
    this.authored = { ...DEFAULT_STATE, ...initial };
    const linked = sync ? readQuery(location.search, sync) : {};
    for (const k of Object.keys(linked)) this.fromUrl.add(k);
    this.current = { ...this.authored, ...linked };
  }

  get state(): Readonly<ExperimentState> {
    return this.current;
  }

  /** Keys a link gave (they win over what authors set later, see `author`). */
  private readonly fromUrl: Set<string> = new Set();

  /**
   * Sets the author's state for keys an element inside the model owns (`<pb-sae ablate feature
   * steer>`, which connects after its `<pb-model>`): the URL still carries only what differs
   * from it, and a key the link set keeps the link's value.
   */
  author(patch: Partial<ExperimentState>): void {
    Object.assign(this.authored, patch);
    const next = { ...this.current };
    for (const [k, v] of Object.entries(patch)) if (!this.fromUrl.has(k)) (next as Record<string, unknown>)[k] = v;
    this.current = next;
    if (this.sync) history.replaceState(history.state, '', writeQuery(location.href, this.current, this.sync, this.authored));
    this.dispatchEvent(new Event('change'));
  }

  /** What the URL may carry for this model. */
  get urlSync(): UrlSync | null {
    return this.sync;
  }

  update(patch: Partial<ExperimentState>): void {
    const next = { ...this.current, ...patch };
    if (STATE_KEYS.every((k) => same(next[k], this.current[k]))) return;
    this.current = next;
    if (this.sync) history.replaceState(history.state, '', writeQuery(location.href, next, this.sync, this.authored));
    this.dispatchEvent(new Event('change'));
  }
}

/** The state keys a query string holds for `sync` (its prefix, the parts it may change). */
export function readQuery(search: string, sync: UrlSync = { prefix: '', parts: DEFAULT_URL_PARTS }): Partial<ExperimentState> {
  const q = new URLSearchParams(search);
  const out: Partial<ExperimentState> = {};
  for (const k of STATE_KEYS) {
    if (!sync.parts.includes(k)) continue;
    const v = q.get(sync.prefix + k);
    if (v === null) continue;
    if ((LIST_KEYS as readonly string[]).includes(k)) (out as Record<string, unknown>)[k] = v ? v.split(',') : [];
    else if (k === 'mode') out.mode = v === 'mean' ? 'mean' : 'zero';
    else (out as Record<string, unknown>)[k] = v;
  }
  return out;
}

/** `href` with the state's keys that differ from `base` in its query, under the prefix; other parameters kept. */
export function writeQuery(href: string, s: ExperimentState, sync: UrlSync = { prefix: '', parts: DEFAULT_URL_PARTS }, base: ExperimentState = DEFAULT_STATE): string {
  const url = new URL(href);
  for (const k of STATE_KEYS) {
    if (!sync.parts.includes(k)) continue;
    const v = s[k];
    const text = Array.isArray(v) ? v.join(',') : String(v);
    const def = base[k];
    if (text === (Array.isArray(def) ? def.join(',') : String(def))) url.searchParams.delete(sync.prefix + k);
    else url.searchParams.set(sync.prefix + k, text);
  }
  return url.toString();
}

export const experimentContext = createContext<Experiment>(Symbol('pb-experiment'));
