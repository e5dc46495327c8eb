/**
 * The experiment a page shows, shared by its figures and kept in the page's URL so a reader can
 * share exactly what they see and an author can link to a state:
 *
 *   ?prompt=…&corrupt=…&ablate=0.2,1.3&mode=zero&site=resid_pre&metric=logit-diff:16:247:72&heads=0.2
 *
 * `prompt` and `corrupt` are text for a model with a tokenizer, comma-separated token ids for
 * one without. Figures read the state and write to it through `update`; every change fires a
 * `change` event and (when URL sync is on) replaces the URL's query without adding history.
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
}

const LIST_KEYS = ['ablate', 'heads'] as const;
const KEYS: (keyof ExperimentState)[] = ['prompt', 'corrupt', 'ablate', 'mode', 'site', 'metric', 'heads'];

export const DEFAULT_STATE: ExperimentState = { prompt: '', corrupt: '', ablate: [], mode: 'zero', site: 'resid_pre', metric: '', heads: [] };

export class Experiment extends EventTarget {
  private current: ExperimentState;

  constructor(
    initial: Partial<ExperimentState> = {},
    /** Read the initial state from, and write changes to, `location` (browsers only). */
    private readonly syncUrl = false,
  ) {
    super();
    this.current = { ...DEFAULT_STATE, ...initial, ...(syncUrl ? readQuery(location.search) : {}) };
  }

  get state(): Readonly<ExperimentState> {
    return this.current;
  }

  update(patch: Partial<ExperimentState>): void {
    const next = { ...this.current, ...patch };
    if (KEYS.every((k) => JSON.stringify(next[k]) === JSON.stringify(this.current[k]))) return;
    this.current = next;
    if (this.syncUrl) history.replaceState(history.state, '', writeQuery(location.href, next));
    this.dispatchEvent(new Event('change'));
  }
}

/** The state keys present in a query string. */
export function readQuery(search: string): Partial<ExperimentState> {
  const q = new URLSearchParams(search);
  const out: Partial<ExperimentState> = {};
  for (const k of KEYS) {
    const v = q.get(k);
    if (v === null) continue;
    if ((LIST_KEYS as readonly string[]).includes(k)) (out as Record<string, unknown>)[k] = v ? v.split(',') : [];
    else if (k === 'mode') out.mode = v === 'mean' ? 'mean' : 'zero';
    else (out as Record<string, unknown>)[k] = v;
  }
  return out;
}

/** `href` with the state's non-default keys in its query (other parameters kept). */
export function writeQuery(href: string, s: ExperimentState): string {
  const url = new URL(href);
  for (const k of KEYS) {
    const v = s[k];
    const text = Array.isArray(v) ? v.join(',') : String(v);
    const def = DEFAULT_STATE[k];
    if (text === (Array.isArray(def) ? def.join(',') : String(def))) url.searchParams.delete(k);
    else url.searchParams.set(k, text);
  }
  return url.toString();
}

export const experimentContext = createContext<Experiment>(Symbol('pb-experiment'));
