/**
 * Base class of the feature figures: a computing figure (`PbComputedFigure`) that also receives
 * the `FeatureSession` of the nearest `<pb-sae>` and recomputes when it changes.
 */
import { ContextConsumer } from '@lit/context';
import { state } from 'lit/decorators.js';
import { PbComputedFigure } from './figure.ts';
import { featureContext, type FeatureSession } from './feature-session.ts';
import type { FeatureSnapshot } from '../experiments/snapshot.ts';
import type { ExperimentKind } from '../experiments/spec.ts';

export abstract class PbFeatureFigure<T> extends PbComputedFigure<T> {
  @state() protected features: FeatureSession | undefined;

  private readonly onFeatures = () => {
    this.revision++;
    this.stateChanged();
  };

  constructor() {
    super();
    new ContextConsumer(this, {
      context: featureContext,
      subscribe: true,
      callback: (f) => {
        if (this.features !== f) {
          this.features?.removeEventListener('change', this.onFeatures);
          f.addEventListener('change', this.onFeatures);
        }
        this.features = f;
        this.onFeatures();
      },
    });
  }

  /** The reader's feature experiment as a spec: a run with the SAE spliced, the features ablated and steered. */
  protected override exportExperiment(): ExperimentKind | null {
    return this.experiment?.state.prompt ? { kind: 'ablate' } : null;
  }

  /** The enclosing `<pb-sae>`, for the spec (its SAE, its hook points) and the embed code. */
  protected override exportSae() {
    const el = this.closest('pb-sae');
    if (!el) return null;
    const sae = this.features?.sae;
    const snap = this.snapshotFeatures?.sae;
    const acts = sae ? `${sae.hookName}.hook_sae_acts_post` : snap ? `${snap.hook}.hook_sae_acts_post` : null;
    const out = sae ? sae.hookNameOut : (snap?.hook_out ?? null);
    const url = /^hf:\/\//.test(el.src) ? el.src : new URL(el.src, document.baseURI).toString();
    return { url, src: el.src, errorTerm: el.errorTerm, hooks: acts && out ? { acts, out } : null };
  }

  override connectedCallback(): void {
    super.connectedCallback();
    this.features?.addEventListener('change', this.onFeatures);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.features?.removeEventListener('change', this.onFeatures);
  }

  /** The feature session when its SAE is loaded. */
  protected get ready(): FeatureSession | null {
    return this.features?.status === 'ready' && this.features.sae ? this.features : null;
  }

  /** What the feature figures draw without WebGPU: the snapshot's features (null otherwise). */
  protected get snapshotFeatures(): FeatureSnapshot | null {
    return this.fromSnapshot ? (this.session?.snapshot?.features ?? null) : null;
  }

  /** A status line while the model or the SAE is not there. */
  protected waiting(): string | null {
    if (this.fromSnapshot) return this.snapshotFeatures ? null : "This page's snapshot has no SAE features.";
    if (!this.model) return this.session?.noModelText() ?? 'Waiting for the model…';
    if (!this.features) return 'Put this figure inside a <pb-sae>.';
    if (this.features.status === 'error') return 'No SAE.';
    if (!this.ready) return 'Waiting for the SAE…';
    return null;
  }
}
