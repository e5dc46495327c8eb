/**
 * What `<pb-sae>` shares with the feature figures inside it (through `@lit/context`): the loaded
 * SAE, its loading status, and the reader's feature experiment — the feature they selected,
 * the features they ablated, and how hard they steer along the selected feature's decoder
 * direction. A `change` event fires whenever any of this changes. Figures hold no numerics: they
 * run the model with `runWithFeatures` and draw what comes back.
 */
import { createContext } from '@lit/context';
import type { Sae } from '../features/sae.ts';
import { addVector, meanHead, zeroHead, type Intervention } from '../hooks/interventions.ts';
import { saeHook, zeroFeature } from '../features/feature-interventions.ts';
import { withErrorTerm, type SaeUse } from '../features/splice.ts';
import type { CacheFilter, Model, RunResult } from '../model/model.ts';
import type { HeadRef } from './live-run.ts';

export type FeatureSessionStatus = 'idle' | 'loading' | 'ready' | 'error';

type Patch = Partial<Pick<FeatureSession, 'status' | 'name' | 'sae' | 'error' | 'progress' | 'errorTerm' | 'selected' | 'ablated' | 'steer'>>;

export class FeatureSession extends EventTarget {
  status: FeatureSessionStatus = 'idle';
  /** The SAE's source (folder URL or hf:// path). */
  name = '';
  sae: Sae | null = null;
  error = '';
  progress = { loaded: 0, total: 0 };
  /** Splice with the error term (default): the model is unchanged until a feature is touched. */
  errorTerm = true;
  /** The feature the reader picked (shown across the prompt, steered). */
  selected: number | null = null;
  /** Features zeroed at every position. */
  ablated: number[] = [];
  /** Steering coefficient: coeff * W_dec[selected] added at the SAE's hook, every position. */
  steer = 0;
  private readonly directions = new Map<number, Promise<Float32Array>>();

  set(patch: Patch): void {
    if (patch.sae !== undefined && patch.sae !== this.sae) this.directions.clear();
    Object.assign(this, patch);
    this.dispatchEvent(new Event('change'));
  }

  /** Adds or removes `feature` from the ablated set. */
  toggleAblated(feature: number): void {
    const on = this.ablated.includes(feature);
    this.set({ ablated: on ? this.ablated.filter((f) => f !== feature) : [...this.ablated, feature].sort((a, b) => a - b) });
  }

  /** How the SAE enters a run. */
  splice(): SaeUse {
    return this.errorTerm ? withErrorTerm(this.sae!) : this.sae!;
  }

  /** A key naming the feature experiment, for figures' job keys. */
  key(what: { ablate: boolean; steer: boolean }): string {
    return [this.name, this.errorTerm, what.ablate ? this.ablated.join('.') : '', what.steer && this.selected !== null ? `${this.selected}*${this.steer}` : ''].join('|');
  }

  /** The interventions of the reader's feature experiment (ablations, steering), as asked. */
  async hooks(what: { ablate: boolean; steer: boolean }): Promise<Intervention[]> {
    const sae = this.sae!;
    const out: Intervention[] = what.ablate && this.ablated.length ? [zeroFeature(sae, this.ablated)] : [];
    if (what.steer && this.selected !== null && this.steer !== 0) {
      let dir = this.directions.get(this.selected);
      if (!dir) this.directions.set(this.selected, (dir = sae.decoderRow(this.selected)));
      out.push(addVector(sae.hookNameOut, await dir, this.steer));
    }
    return out;
  }
}

export const featureContext = createContext<FeatureSession>(Symbol('pb-sae'));

/**
 * The prompt through the model with the SAE spliced, the page's head ablations (zero or mean, as
 * `runAblated` does them) and, as asked, the reader's feature ablations and steering.
 */
export async function runWithFeatures(
  model: Model,
  fs: FeatureSession,
  ids: readonly number[],
  heads: readonly HeadRef[],
  mode: 'zero' | 'mean',
  what: { ablate: boolean; steer: boolean; cache?: CacheFilter },
): Promise<RunResult> {
  const saes = [fs.splice()];
  const hooks = await fs.hooks(what);
  let reference: RunResult | null = null;
  if (heads.length && mode === 'mean') {
    reference = await model.run([ids], { saes, cache: [...new Set(heads.map((h) => `blocks.${h.layer}.attn.hook_z`))] });
    hooks.push(...heads.map((h) => meanHead(h.layer, h.head, reference!.cache, { pooled: true })));
  } else hooks.push(...heads.map((h) => zeroHead(h.layer, h.head)));
  try {
    return await model.run([ids], { saes, hooks, ...(what.cache ? { cache: what.cache } : {}) });
  } finally {
    reference?.release();
  }
}

/** The SAE's feature activations [pos, d_sae] on the prompt (no feature interventions). */
export async function featureActivations(model: Model, fs: FeatureSession, ids: readonly number[], heads: readonly HeadRef[], mode: 'zero' | 'mean'): Promise<Float32Array> {
  const name = saeHook(fs.sae!, 'hook_sae_acts_post');
  const run = await runWithFeatures(model, fs, ids, heads, mode, { ablate: false, steer: false, cache: [name] });
  try {
    return await run.cache.read(name);
  } finally {
    run.release();
  }
}
