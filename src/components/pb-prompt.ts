/**
 * `<pb-prompt>`: the experiment's prompt as a text field, tokenized as the reader types and shown
 * as token chips (each token's text, whitespace made visible, with its position). For a model
 * without a tokenizer it takes token ids separated by commas or spaces.
 *
 * ```html
 * <pb-prompt></pb-prompt>                 <!-- edits the prompt -->
 * <pb-prompt for="corrupt"></pb-prompt>   <!-- edits the corrupted prompt patching figures use -->
 * ```
 *
 * The state (and the page URL) is updated 250 ms after the last keystroke, or at once on Enter
 * or leaving the field; text that does not tokenize keeps the last good prompt and says why.
 *
 * @fires pb-prompt-change - `{ text, ids }` when the prompt in the experiment state changes from this field.
 * @csspart label - The field's label.
 * @csspart input - The text field.
 * @csspart tokens - The row of token chips.
 * @csspart chip - One token.
 * @csspart error - The tokenization error.
 */
import { css, html, nothing } from 'lit';
import { customElement, property, state } from 'lit/decorators.js';
import { live } from 'lit/directives/live.js';
import { PbFigure } from './figure.ts';
import { figureStyles } from './figure-styles.ts';
import { errorMessage } from './latest.ts';
import { tokenText, tokenTextStyles } from './token-text.ts';

export interface PromptChangeDetail {
  /** Which state key changed. */
  for: 'prompt' | 'corrupt';
  text: string;
  ids: number[];
}

let nextId = 0;

@customElement('pb-prompt')
export class PbPrompt extends PbFigure {
  static override styles = [
    figureStyles,
    tokenTextStyles,
    css`
      :host {
        margin: 0.6rem 0;
      }
      label {
        display: block;
        font-weight: 600;
        font-size: 0.9em;
        margin-bottom: 0.25rem;
      }
      .count {
        font-weight: 400;
        color: var(--_muted);
        margin-left: 0.4em;
      }
      input {
        box-sizing: border-box;
        width: 100%;
        font: inherit;
        padding: 0.4em 0.55em;
        border: 1px solid var(--_border);
        border-radius: 6px;
        background: var(--_bg);
        color: inherit;
      }
      input[aria-invalid='true'] {
        border-color: var(--_error);
      }
      .toolbar.end {
        justify-content: flex-end;
        margin: 0.3rem 0 0;
      }
      .tokens {
        display: flex;
        flex-wrap: wrap;
        gap: 0.25rem;
        margin-top: 0.4rem;
        min-height: 1.9em;
      }
    `,
  ];

  /** Which state key this field edits. */
  @property() for: 'prompt' | 'corrupt' = 'prompt';
  /** The field's label (default "Prompt" or "Corrupted prompt"). */
  @property() label = '';
  @property() placeholder = '';
  /** Milliseconds after the last keystroke before the state updates. */
  @property({ type: Number }) debounce = 250;

  @state() private text = '';
  @state() private ids: number[] = [];
  @state() private error = '';
  /** True when there is no tokenizer yet (the model is still loading). */
  @state() private pending = true;

  /** The state's value this field last showed or wrote. */
  private shown: string | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly inputId = `pb-prompt-${nextId++}`;

  protected override stateChanged(): void {
    const value = this.experiment?.state[this.for] ?? '';
    // Adopt a change made elsewhere (URL, another field), unless the reader is mid-edit here.
    if (value !== this.shown && this.timer === undefined) {
      this.shown = value;
      this.text = value;
    }
    this.tokenize();
  }

  protected override willUpdate(changed: Map<string, unknown>): void {
    if (changed.has('for') && changed.get('for') !== undefined) {
      this.shown = null;
      this.stateChanged();
    }
  }

  private tokenize(): void {
    const s = this.session;
    const snap = s?.status === 'snapshot' ? s.snapshot : null;
    if (snap) {
      this.pending = false;
      this.ids = this.for === 'corrupt' ? (snap.ids.corrupt ?? []) : snap.ids.clean;
      this.error = '';
      return;
    }
    this.pending = !s || !(s.tokenizer || s.status === 'ready' || s.status === 'weightless');
    if (this.pending) return;
    try {
      this.ids = s!.tokenize(this.text);
      this.error = '';
    } catch (e) {
      this.error = errorMessage(e);
    }
  }

  private onInput(e: InputEvent): void {
    this.text = (e.target as HTMLInputElement).value;
    this.tokenize();
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.commit(), this.debounce);
  }

  private commit(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending || this.error || !this.experiment || this.text === this.shown) return;
    this.shown = this.text;
    this.experiment.update({ [this.for]: this.text });
    this.dispatchEvent(new CustomEvent<PromptChangeDetail>('pb-prompt-change', { detail: { for: this.for, text: this.text, ids: [...this.ids] }, bubbles: true, composed: true }));
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    if (this.timer !== undefined) this.commit();
  }

  override render() {
    const s = this.session;
    const label = this.label || (this.for === 'corrupt' ? 'Corrupted prompt' : 'Prompt');
    const placeholder = this.placeholder || (s?.tokenizer ? 'Type a prompt' : 'Token ids, e.g. 0, 200, 290');
    const errorId = `${this.inputId}-error`;
    return html`
      <label part="label" for=${this.inputId}
        >${label}${this.pending ? nothing : html`<span class="count">${this.ids.length} ${this.ids.length === 1 ? 'token' : 'tokens'}</span>`}</label
      >
      <input
        id=${this.inputId}
        part="input"
        type="text"
        spellcheck="false"
        autocomplete="off"
        placeholder=${placeholder}
        aria-invalid=${this.error ? 'true' : 'false'}
        aria-describedby=${errorId}
        .value=${live(this.text)}
        ?readonly=${this.fromSnapshot}
        @input=${this.onInput}
        @change=${this.commit}
        @keydown=${(e: KeyboardEvent) => e.key === 'Enter' && this.commit()}
      />
      <div class="tokens" part="tokens" role="list" aria-label="Tokens">
        ${
          this.pending
            ? html`<span class="muted">${s?.noModelText() ?? 'Waiting for the model…'}</span>`
            : this.ids.map(
                (id, i) =>
                  html`<span class="chip" part="chip" role="listitem" title=${`position ${i}, token id ${id}`}
                  ><span class="text">${tokenText(s!.label(id))}</span><span class="pos">${i}</span></span
                >`,
              )
        }
      </div>
      <div id=${errorId} class="error" part="error" role="alert" ?hidden=${!this.error}>${this.error}</div>
      <div class="toolbar end">${this.renderExport()}</div>
    `;
  }

  protected override exportTable() {
    const s = this.session;
    return { header: ['pos', 'id', 'token'], rows: this.ids.map((id, i) => [i, id, s?.label(id) ?? String(id)]) };
  }

  protected override exportJson() {
    return { figure: 'prompt', for: this.for, text: this.text, ids: this.ids, tokens: this.ids.map((id) => this.session?.label(id) ?? String(id)) };
  }

  protected override exportPictures() {
    return null;
  }

  protected override exportExperiment() {
    return { kind: 'ablate' as const };
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'pb-prompt': PbPrompt;
  }
  interface HTMLElementEventMap {
    'pb-prompt-change': CustomEvent<PromptChangeDetail>;
  }
}
