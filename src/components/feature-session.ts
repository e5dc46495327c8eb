/**
 * What `<pb-sae>` shares with the feature figures inside it (through `@lit/context`): the loaded
 * SAE, its loading status, and the reader's feature experiment — the feature they selected,
 * the features they ablated, and how hard they steer along the selected feature's decoder
 * direction. A `change` event fires whenever any of this changes. Figures hold no numerics: they
 * run the model with `runWithFeatures` (src/experiments/feature-run.ts) and draw what comes back.
 */
import { createContext } from '@lit/context';
import type { Sae } from '../features/sae.ts';
import { addVector, type Intervention } from '../hooks/interventions.ts';
import { zeroFeature } from '../hooks/feature-interventions.ts';
import { withErrorTerm, type SaeUse } from '../hooks/splice.ts';
import type { FeatureExperiment } from '../experiments/feature-run.ts';

export type FeatureSessionStatus = 'idle' | 'loading' | 'ready' | 'error';

type Patch = Partial<Pick<FeatureSession, 'status' | 'name' | 'sae' | 'error' | 'progress' | 'errorTerm' | 'selected' | 'ablated' | 'steer'>>;

export class FeatureSession extends EventTarget implements FeatureExperiment {
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
