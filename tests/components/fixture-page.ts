/**
 * The components test page's script: registers the elements (through the library entry, as a
 * page would), exposes the API as `window.patchbay` for the test to compute references with,
 * and mounts a `<pb-prompt>` on a fake tokenizer whose tokens look like markup, next to a
 * heatmap labelled with them. figures.test.ts drives it.
 */
import * as patchbay from '../../src/components/index.ts';
import type { TextTokenizer } from '../../src/model/tokenizer.ts';

declare global {
  interface Window {
    patchbay: typeof patchbay;
  }
}
window.patchbay = patchbay;

/** Tokens that are markup if a figure ever rendered them as HTML. */
export const MARKUP_TOKENS = ['<img src=x onerror=alert(1)>', ' <b>bold</b>', '\n', ' &amp;', '<script>alert(2)</script>'];

const fakeTokenizer = {
  /** Greedy longest match over MARKUP_TOKENS; other characters are skipped. */
  encode(text: string): number[] {
    const ids: number[] = [];
    for (let i = 0; i < text.length;) {
      let best = -1;
      MARKUP_TOKENS.forEach((t, id) => {
        if (text.startsWith(t, i) && (best < 0 || t.length > MARKUP_TOKENS[best].length)) best = id;
      });
      if (best < 0) i++;
      else {
        ids.push(best);
        i += MARKUP_TOKENS[best].length;
      }
    }
    return ids;
  },
  decode: (ids: readonly number[]) => ids.map((id) => MARKUP_TOKENS[id]).join(''),
  tokenText: (id: number) => MARKUP_TOKENS[id],
} as unknown as TextTokenizer;

const section = document.getElementById('literal')!;
const host = document.createElement('pb-model');
host.id = 'fake';
host.setAttribute('url-state', 'none'); // a second model on the page: keep the URL for the first
host.session.set({ tokenizer: fakeTokenizer });
const prompt = document.createElement('pb-prompt');
prompt.label = 'Prompt (fake tokenizer)';
host.append(prompt);
section.append(host);

const heatmap = document.createElement('pb-heatmap');
heatmap.id = 'markup-heatmap';
heatmap.rows = 2;
heatmap.cols = 3;
heatmap.values = Float32Array.from([0.1, 0.5, 0.9, 1, 0.25, 0]);
heatmap.rowLabels = [MARKUP_TOKENS[0], MARKUP_TOKENS[4]].map(patchbay.visibleText);
heatmap.colLabels = MARKUP_TOKENS.slice(0, 3).map(patchbay.visibleText);
heatmap.rowAxis = 'query';
heatmap.colAxis = 'key';
heatmap.caption = 'Labels that look like markup';
section.append(heatmap);

interface DrawnHeatmap {
  head: string | undefined;
  site: string | undefined;
  caption: string;
  rowLabels: string[];
  colLabels: string[];
  /** Row-major, as the canvas draws them. */
  values: number[];
  selected: boolean[];
  cellText: string[];
}

const toy = () => document.getElementById('toy') as patchbay.PbModel;

function shadowRoots(root: Document | ShadowRoot = document): ShadowRoot[] {
  const out: ShadowRoot[] = [];
  for (const el of root.querySelectorAll('*')) {
    if (el.shadowRoot) out.push(el.shadowRoot, ...shadowRoots(el.shadowRoot));
  }
  return out;
}

/** What the test reads from the page, and references it computes with the engine's API. */
const fixture = {
  /** The heatmaps a figure of the toy model draws, read from their shadow DOM. */
  heatmaps(figure: string): DrawnHeatmap[] {
    const fig = toy().querySelector(figure)!;
    return [...fig.shadowRoot!.querySelectorAll('pb-heatmap')].map((h) => {
      // The cells are drawn on a canvas: read what it draws from the element; labels are text with their full text in the title.
      const root = h.shadowRoot!;
      const cells = Array.from({ length: h.rows * h.cols }, (_, i) => h.cellAt(Math.floor(i / h.cols), i % h.cols));
      const titles = (sel: string) => [...root.querySelectorAll(sel)].map((e) => e.getAttribute('title') ?? '');
      return {
        head: h.dataset.head,
        site: h.dataset.site,
        caption: h.caption,
        rowLabels: titles('.rlabel'),
        colLabels: titles('.clabel'),
        values: cells.map((c) => c.value),
        selected: cells.map((c) => c.selected),
        cellText: cells.map((c) => c.text + (c.badge ?? '')),
      };
    });
  },

  /** Clicks a heatmap cell of a figure of the toy model, where the canvas draws it. */
  cellCenter(figure: string, r: number, c: number, index = 0): { x: number; y: number } {
    const h = toy().querySelector(figure)!.shadowRoot!.querySelectorAll('pb-heatmap')[index];
    h.shadowRoot!.querySelector('canvas')!.scrollIntoView({ block: 'center' }); // a mouse click lands only inside the viewport
    return h.cellCenter(r, c);
  },

  /** True when the model is loaded and no figure is computing. */
  idle(): boolean {
    if (toy().session.status !== 'ready') return false;
    return [...toy().querySelectorAll('*')].every((e) => e.getAttribute('aria-busy') !== 'true');
  },

  /** The engine's hook_pattern of every layer ([H, T, T] each) on the clean prompt with `ablate` zeroed. */
  async patterns(ablate: string[]): Promise<number[][]> {
    const model = toy().session.model!;
    const ids = toy().session.tokenize(toy().state.state.prompt);
    const names = Array.from({ length: model.config.n_layers }, (_, l) => `blocks.${l}.attn.hook_pattern`);
    const hooks = ablate.map((h) => patchbay.zeroHead(Number(h.split('.')[0]), Number(h.split('.')[1])));
    const run = await model.run([ids], { cache: names, hooks });
    try {
      return await Promise.all(names.map(async (n) => Array.from(await run.cache.read(n))));
    } finally {
      run.release();
    }
  },

  /** The most probable next token after the last position, and its probability, with `ablate` zeroed. */
  async nextToken(ablate: string[]): Promise<{ id: number; p: number }> {
    const model = toy().session.model!;
    const ids = toy().session.tokenize(toy().state.state.prompt);
    const hooks = ablate.map((h) => patchbay.zeroHead(Number(h.split('.')[0]), Number(h.split('.')[1])));
    const run = await model.run([ids], { hooks });
    const V = model.config.d_vocab;
    const row = (await run.logits.read()).subarray((ids.length - 1) * V, ids.length * V);
    run.release();
    let id = 0;
    for (let i = 1; i < V; i++) if (row[i] > row[id]) id = i;
    let sum = 0;
    for (const x of row) sum += Math.exp(x - row[id]);
    return { id, p: 1 / sum };
  },

  /** logits[pos, good] − logits[pos, bad] on the clean prompt with `ablate` zero- or mean-ablated (mean: pooled over the prompt). */
  async logitDiff(ablate: string[], mode: 'zero' | 'mean', pos: number, good: number, bad: number): Promise<number> {
    const model = toy().session.model!;
    const ids = toy().session.tokenize(toy().state.state.prompt);
    const heads = ablate.map((h) => h.split('.').map(Number));
    const reference = await model.run([ids], { cache: heads.map(([l]) => `blocks.${l}.attn.hook_z`) });
    const hooks = heads.map(([l, h]) => (mode === 'zero' ? patchbay.zeroHead(l, h) : patchbay.meanHead(l, h, reference.cache, { pooled: true })));
    const run = await model.run([ids], { hooks });
    const V = model.config.d_vocab;
    const logits = await run.logits.read();
    run.release();
    reference.release();
    return logits[pos * V + good] - logits[pos * V + bad];
  },

  /** The engine's patching grid of `site` for the page's prompts and metric (logit-diff:POS:GOOD:BAD). */
  async patchGrid(site: patchbay.PatchSite): Promise<{ shape: number[]; values: number[] }> {
    const model = toy().session.model!;
    const st = toy().state.state;
    const [pos, good, bad] = st.metric.split(':').slice(1).map(Number);
    const grid = await patchbay.patchingSweep(model, toy().session.tokenize(st.prompt), toy().session.tokenize(st.corrupt), site, patchbay.logitDiffMetric(pos, good, bad));
    return { shape: grid.shape, values: Array.from(grid.values) };
  },

  /** Elements inside any shadow root that markup-looking tokens would have created. */
  markupInShadow(): number {
    const made = (r: ShadowRoot) => [...r.querySelectorAll('img, script, b')].filter((e) => e.tagName !== 'B' || e.textContent === 'bold');
    return shadowRoots().reduce((n, r) => n + made(r).length, 0);
  },

  /** Starts recording the progress bars `figure` shows; `stop()` returns the values seen. */
  watchProgress(figure: string): { stop(): { max: number; value: number }[] } {
    const root = toy().querySelector(figure)!.shadowRoot!;
    const seen: { max: number; value: number }[] = [];
    const record = () => {
      const p = root.querySelector('progress');
      if (p) seen.push({ max: p.max, value: p.value });
    };
    const observer = new MutationObserver(record);
    observer.observe(root, { subtree: true, childList: true, attributes: true });
    return {
      stop() {
        observer.disconnect();
        return seen;
      },
    };
  },
};

declare global {
  interface Window {
    fixture: typeof fixture;
    progressWatch?: ReturnType<typeof fixture.watchProgress>;
  }
}
window.fixture = fixture;
