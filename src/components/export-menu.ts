/**
 * The "Export" menu every figure has: PNG and SVG of the figure, CSV and JSON of its data, the
 * experiment as a spec (JSON, loadable again) and as Python (transformers, nnsight,
 * TransformerLens), "Copy link", "Copy embed code", and "Load spec…". Downloads are blobs with a
 * file name; copies go to the clipboard, or into a text box to copy by hand where the page may
 * not write to it.
 */
import { html, nothing, type TemplateResult } from 'lit';
import { parseSpecText, type ExperimentKind } from '../experiments/spec.ts';
import { pythonScript, type PythonTarget } from '../export/python/index.ts';
import { pngOf, type PbHeatmap } from './heatmap.ts';
import type { PbModel } from './pb-model.ts';
import type { SaeHookNames } from '../experiments/spec.ts';

/** A feature figure's SAE: where it loads from (as written, and as an absolute URL) and its hook points once loaded. */
export interface ExportSae {
  url: string;
  src: string;
  errorTerm: boolean;
  hooks: SaeHookNames | null;
}

/** What a figure offers its menu. */
export interface Exportable {
  /** A short name for files: "patching", "attention". */
  name: string;
  /** Data as a table (CSV). */
  table(): { header: string[]; rows: (string | number)[][] } | null;
  /** Data as JSON. */
  json(): unknown;
  /** The heatmaps to draw (PNG, SVG), or a figure's own drawing. */
  pictures(): { svg(): string; png(): Promise<Blob> } | null;
  /** False for a figure that never draws a picture (the prompt). */
  hasPictures: boolean;
  /** What the figure computes, as a spec's experiment (null: nothing to run). */
  experiment(): ExperimentKind | null;
  /** The SAE of a feature figure (its `<pb-sae>`), or null. */
  sae?(): ExportSae | null;
  /** The figure's tag, for embed code. */
  tag(): string;
}

export function download(name: string, blob: Blob): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.rel = 'noopener';
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

const csvCell = (v: string | number) => {
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

export function toCsv(t: { header: string[]; rows: (string | number)[][] }): string {
  return [t.header, ...t.rows].map((r) => r.map(csvCell).join(',')).join('\n') + '\n';
}

/** Several heatmaps as one picture, stacked. */
export function stackPictures(maps: readonly PbHeatmap[]): { svg(): string; png(): Promise<Blob> } | null {
  if (!maps.length) return null;
  return {
    svg() {
      const parts = maps.map((m) => m.toSvg());
      let y = 0;
      let width = 0;
      const groups = parts.map((s) => {
        const w = Number(/width="(\d+)"/.exec(s)?.[1] ?? 0);
        const h = Number(/height="(\d+)"/.exec(s)?.[1] ?? 0);
        const g = `<g transform="translate(0 ${y})">${s.replace(/^<svg[^>]*>/, '').replace(/<\/svg>$/, '')}</g>`;
        y += h;
        width = Math.max(width, w);
        return g;
      });
      return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}">${groups.join('')}</svg>`;
    },
    png: () => pngOf(maps),
  };
}

/** State of one figure's menu: what a copy that could not reach the clipboard shows instead. */
export class ExportMenu {
  manual: { what: string; text: string } | null = null;
  message = '';

  constructor(
    private readonly host: HTMLElement & { requestUpdate(): void },
    private readonly source: Exportable,
  ) {}

  private model(): PbModel | null {
    return this.host.closest('pb-model');
  }

  private async copy(what: string, text: string): Promise<void> {
    try {
      await navigator.clipboard.writeText(text);
      this.manual = null;
      this.message = `${what} copied.`;
    } catch {
      this.manual = { what, text };
      this.message = '';
    }
    this.host.requestUpdate();
  }

  private spec() {
    const kind = this.source.experiment();
    const model = this.model();
    if (!kind || !model) return null;
    const sae = this.source.sae?.() ?? null;
    if (sae && !sae.hooks) throw new Error('the SAE is not loaded yet');
    return model.specFor(kind, sae ? { url: sae.url, errorTerm: sae.errorTerm, hooks: sae.hooks! } : undefined);
  }

  private fail(e: unknown): void {
    this.message = `Export failed: ${e instanceof Error ? e.message : String(e)}`;
    this.host.requestUpdate();
  }

  async run(action: string): Promise<void> {
    const name = this.source.name;
    try {
      switch (action) {
        case 'png':
        case 'svg': {
          // Asked for when clicked: what is drawn may have changed since the menu was rendered.
          const p = this.source.pictures();
          if (!p) throw new Error('nothing is drawn yet');
          if (action === 'png') download(`${name}.png`, await p.png());
          else download(`${name}.svg`, new Blob([p.svg()], { type: 'image/svg+xml' }));
          break;
        }
        case 'csv': {
          const t = this.source.table();
          if (!t) throw new Error('there is no data yet');
          download(`${name}.csv`, new Blob([toCsv(t)], { type: 'text/csv' }));
          break;
        }
        case 'json':
          download(`${name}.json`, new Blob([JSON.stringify(this.source.json(), null, 1)], { type: 'application/json' }));
          break;
        case 'spec': {
          const spec = this.spec();
          if (spec) download(`${name}.spec.json`, new Blob([JSON.stringify(spec, null, 2) + '\n'], { type: 'application/json' }));
          break;
        }
        case 'transformers':
        case 'nnsight':
        case 'transformer-lens': {
          const spec = this.spec();
          if (spec) download(`${name}_${action.replace('-', '_')}.py`, new Blob([pythonScript(spec, action as PythonTarget)], { type: 'text/x-python' }));
          break;
        }
        case 'link':
          await this.copy('Link', this.model()?.linkUrl() ?? location.href);
          break;
        case 'embed':
          await this.copy('Embed code', this.model()?.embedCode(this.source.tag(), this.source.sae?.() ?? null) ?? '');
          break;
      }
    } catch (e) {
      this.fail(e);
    }
  }

  private async load(e: Event): Promise<void> {
    const input = e.target as HTMLInputElement;
    const file = input.files?.[0];
    input.value = '';
    if (!file) return;
    try {
      this.model()?.loadSpec(parseSpecText(await file.text(), file.name));
      this.message = `Loaded ${file.name}.`;
    } catch (err) {
      this.fail(err);
    }
    this.host.requestUpdate();
  }

  render(): TemplateResult {
    // Pictures and tables are looked up when clicked (the figure may draw after this renders).
    const hasPicture = this.source.hasPictures;
    const hasTable = true;
    const runnable = this.source.experiment() !== null;
    const item = (action: string, label: string, enabled = true) => html`<button type="button" data-export=${action} ?disabled=${!enabled} @click=${() => void this.run(action)}>${label}</button>`;
    return html`<details class="export" part="export">
      <summary aria-label="Export this figure">Export</summary>
      <div class="menu" role="group" aria-label="Export">
        ${item('png', 'Image (PNG)', hasPicture)} ${item('svg', 'Image (SVG)', hasPicture)} ${item('csv', 'Data (CSV)', hasTable)} ${item('json', 'Data (JSON)')}
        ${item('spec', 'Experiment spec (JSON)', runnable)} ${item('transformers', 'Python: transformers', runnable)} ${item('nnsight', 'Python: nnsight (NDIF)', runnable)}
        ${item('transformer-lens', 'Python: TransformerLens', runnable)} ${item('link', 'Copy link')} ${item('embed', 'Copy embed code')}
        <label>Load spec… <input type="file" accept=".json,application/json" data-export="load" @change=${(e: Event) => void this.load(e)} /></label>
        ${this.message ? html`<span class="muted" role="status">${this.message}</span>` : nothing}
        ${
          this.manual
            ? html`<label
              >${this.manual.what} (copy it from here):
              <textarea readonly data-export="manual" .value=${this.manual.text}></textarea
            ></label>`
            : nothing
        }
      </div>
    </details>`;
  }
}
