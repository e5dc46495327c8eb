/**
 * Base class of Patchbay's figures: receives the session (model, tokenizer, status) and the
 * experiment state from the nearest `<pb-model>` through `@lit/context`, and re-renders when
 * either changes. Subclasses override `stateChanged()` to start GPU work (a run, a sweep) and
 * `render()` to draw what came back.
 */
import { LitElement } from 'lit';
import { state } from 'lit/decorators.js';
import { ContextConsumer } from '@lit/context';
import { experimentContext, type Experiment } from './experiment.ts';
import { sessionContext, type Session } from './session.ts';

export abstract class PbFigure extends LitElement {
  @state() protected session: Session | undefined;
  @state() protected experiment: Experiment | undefined;
  /** Bumped on every session or experiment change, so `render` runs again. */
  @state() protected revision = 0;

  private readonly onChange = () => {
    this.revision++;
    this.stateChanged();
  };

  constructor() {
    super();
    new ContextConsumer(this, {
      context: sessionContext,
      subscribe: true,
      callback: (s) => {
        this.swap(this.session, s);
        this.session = s;
        this.onChange();
      },
    });
    new ContextConsumer(this, {
      context: experimentContext,
      subscribe: true,
      callback: (e) => {
        this.swap(this.experiment, e);
        this.experiment = e;
        this.onChange();
      },
    });
  }

  /** Moves the change listener from the old provided object to the new one. */
  private swap(old: EventTarget | undefined, next: EventTarget | undefined): void {
    if (old === next) return;
    old?.removeEventListener('change', this.onChange);
    next?.addEventListener('change', this.onChange);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.session?.removeEventListener('change', this.onChange);
    this.experiment?.removeEventListener('change', this.onChange);
  }

  override connectedCallback(): void {
    super.connectedCallback();
    this.session?.addEventListener('change', this.onChange);
    this.experiment?.addEventListener('change', this.onChange);
  }

  /** The model when it is loaded. */
  protected get model() {
    return this.session?.status === 'ready' ? this.session.model : null;
  }

  /** Called after the session or the experiment state changed. */
  protected stateChanged(): void {}
}
