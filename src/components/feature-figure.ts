/**
 * Base class of the feature figures: a computing figure (`PbComputedFigure`) that also receives
 * the `FeatureSession` of the nearest `<pb-sae>` and recomputes when it changes.
 */
import { ContextConsumer } from '@lit/context';
import { state } from 'lit/decorators.js';
import { PbComputedFigure } from './figure.ts';
import { featureContext, type FeatureSession } from './feature-session.ts';

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

  /** A status line while the model or the SAE is not there. */
  protected waiting(): string | null {
    if (!this.model) return this.session?.status === 'error' ? 'No model.' : 'Waiting for the model…';
    if (!this.features) return 'Put this figure inside a <pb-sae>.';
    if (this.features.status === 'error') return 'No SAE.';
    if (!this.ready) return 'Waiting for the SAE…';
    return null;
  }
}
