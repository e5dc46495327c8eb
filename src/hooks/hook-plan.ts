/**
 * Compiling a run's interventions into GPU work at each hook point.
 *
 * Every intervention becomes entries of one table (see `shaders/intervene.wgsl.ts`); entries of
 * consecutive interventions at the same hook that read the same source and touch disjoint
 * elements share one dispatch, so a sweep of hundreds of single-row patches costs a handful of
 * dispatches. Sources are GPU tensors: a patch reads the other run's cached activation where it
 * lies; a mean is computed on the GPU from the reference cache; add uploads its vector. Everything compiled here lives for one run.
 */
import type { Gpu } from '../gpu/device.ts';
import { intervene, type SiteLayout } from '../gpu/kernels/intervene.ts';
import { batchMean } from '../gpu/kernels/reduce.ts';
import type { Dispatch, Params } from '../gpu/recorder.ts';
import { Tensor } from '../gpu/tensor.ts';
import { ENTRY_WORDS, OP } from '../../shaders/intervene.wgsl.ts';
import { ActivationCache } from './activation-cache.ts';
import type { HookFn, Intervention, Selection } from './interventions.ts';
import { hasHeads, isPatternLike, siteLayout } from './site-layout.ts';
import { isFeatureSite, unknownHookMessage } from '../model/hook-points.ts';

export type SiteWork = { kind: 'dispatch'; dispatches: Dispatch[] } | { kind: 'callback'; fn: HookFn };

export interface CompiledHooks {
  /** Work that must run before the forward (means of reference caches). */
  prelude: Dispatch[];
  /** Work to do at each hook point, in order. */
  bySite: Map<string, SiteWork[]>;
  /** Frees the entry table, uploaded sources and uniforms (after the run is submitted). */
  release(): void;
}

interface Group {
  hook: string;
  layout: SiteLayout;
  src: GPUBuffer;
  srcFloats: number;
  srcHeadStride: number;
  entries: number[][];
  touched: Set<number>;
  maxHeadSpan: number;
  /** The site's work item this group's dispatches go into. */
  work: { kind: 'dispatch'; dispatches: Dispatch[] };
}

export async function compileHooks(
  gpu: Gpu,
  sites: ReadonlyMap<string, { buffer: GPUBuffer; shape: number[]; pos0: number }>,
  interventions: readonly Intervention[],
  dummy: GPUBuffer,
): Promise<CompiledHooks> {
  const temps: Tensor[] = [];
  const params: Params[] = [];
  const bySite = new Map<string, SiteWork[]>();
  const prelude: Dispatch[] = [];
  const groups: Group[] = [];
  const push = (hook: string, w: SiteWork) => {
    const list = bySite.get(hook) ?? [];
    list.push(w);
    bySite.set(hook, list);
  };
  const release = () => {
    for (const t of temps) t.release();
    for (const p of params) p.destroy();
  };

  try {
    // Work at each site in order; a group is open while it is the site's latest work.
    const openGroup = new Map<string, Group>();
    for (const iv of interventions) {
      const site = sites.get(iv.hook);
      if (!site) throw new Error(unknownHookMessage(iv.hook, [...sites.keys()]));
      const { shape, pos0 } = site;
      if (iv.op === 'callback') {
        push(iv.hook, { kind: 'callback', fn: iv.fn });
        openGroup.delete(iv.hook);
        continue;
      }
      const layout = siteLayout(iv.hook, shape);
      const sel = resolveSelection(iv.hook, shape, layout, pos0, iv);
      const src = await resolveSource(gpu, iv, shape, layout, pos0, temps, prelude, params, dummy);
      let g = openGroup.get(iv.hook);
      const keys = targetKeys(layout, pos0, sel);
      if (!g || g.src !== src.buffer || g.srcHeadStride !== src.headStride || keys.some((k) => g!.touched.has(k))) {
        const work = { kind: 'dispatch' as const, dispatches: [] };
        g = { hook: iv.hook, layout, src: src.buffer, srcFloats: src.floats, srcHeadStride: src.headStride, entries: [], touched: new Set(), maxHeadSpan: 0, work };
        groups.push(g);
        openGroup.set(iv.hook, g);
        push(iv.hook, work);
      }
      for (const k of keys) g.touched.add(k);
      const op = OP[iv.op === 'mean' ? 'replace' : iv.op];
      const value = iv.op === 'scale' ? iv.factor : iv.op === 'add' ? (iv.coeff ?? 1) : iv.op === 'set' ? iv.value : 0;
      for (const b of sel.batch) {
        for (const p of sel.pos) {
          for (const [h0, h1] of sel.headRanges) {
            // The site holds positions pos0 ..; sources are indexed by absolute position.
            for (const [f0, f1] of sel.keyRanges) g.entries.push([op, b, p - pos0, h0, h1, src.base(b, p), value, f0, f1]);
            g.maxHeadSpan = Math.max(g.maxHeadSpan, h1 - h0);
          }
        }
      }
    }

    const total = groups.reduce((n, g) => n + g.entries.length, 0);
    if (total > 0) {
      const table = new Uint32Array(total * ENTRY_WORDS);
      const f32 = new Float32Array(table.buffer);
      let i = 0;
      for (const g of groups) {
        for (const e of g.entries) {
          table.set(e.slice(0, 6), i * ENTRY_WORDS);
          f32[i * ENTRY_WORDS + 6] = e[6];
          table.set(e.slice(7, 9), i * ENTRY_WORDS + 7);
          i++;
        }
      }
      const entries = Tensor.from(gpu, new Float32Array(table.buffer), [table.length], 'intervention entries');
      temps.push(entries);
      let entry0 = 0;
      for (const g of groups) {
        const site = sites.get(g.hook)!;
        g.work.dispatches.push(
          ...intervene(
            gpu,
            {
              x: site.buffer,
              xFloats: site.shape.reduce((a, b) => a * b, 1),
              layout: g.layout,
              entries: entries.buffer,
              entry0,
              nEntries: g.entries.length,
              maxHeadSpan: g.maxHeadSpan,
              src: g.src,
              srcFloats: g.srcFloats,
              srcHeadStride: g.srcHeadStride,
              label: `intervene ${g.hook}`,
            },
            params,
          ),
        );
        entry0 += g.entries.length;
      }
    }
  } catch (e) {
    release();
    throw e;
  }
  return { prelude, bySite, release };
}

interface ResolvedSelection {
  batch: number[];
  pos: number[];
  headRanges: Array<[number, number]>;
  /** Feature ranges: [0, F) but for a key-position selection on a pattern. */
  keyRanges: Array<[number, number]>;
}

/** Sorted, distinct indices as ranges [a, b) of consecutive ones (fewer entries). */
function ranges(list: readonly number[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const i of [...new Set(list)].sort((a, b) => a - b)) {
    const last = out.at(-1);
    if (last && last[1] === i) last[1] = i + 1;
    else out.push([i, i + 1]);
  }
  return out;
}

/** The selected indices, all in `from .. n - 1` (everything there when none are given). */
function asList(v: number | readonly number[] | undefined, n: number, what: string, hook: string, from = 0): number[] {
  const list = v === undefined ? Array.from({ length: n - from }, (_, i) => from + i) : typeof v === 'number' ? [v] : [...v];
  for (const i of list) {
    if (!Number.isInteger(i) || i < 0 || i >= n) {
      throw new Error(`${what} ${i} is out of range for ${hook} (it has ${n} ${what === 'batch row' ? 'batch rows' : what + 's'}: 0 .. ${n - 1})`);
    }
    if (i < from) throw new Error(`${what} ${i} of ${hook} comes before this resumed pass's first position ${from}`);
  }
  return list;
}

function resolveSelection(hook: string, shape: readonly number[], layout: SiteLayout, pos0: number, sel: Selection): ResolvedSelection {
  const batch = asList(sel.batch, layout.batch, 'batch row', hook);
  const pos = asList(sel.pos, pos0 + layout.pos, 'position', hook, pos0);
  if (sel.heads !== undefined && !hasHeads(hook, shape)) {
    throw new Error(`${hook} has no head axis, so a head selection does not apply (shape [${shape.join(', ')}])`);
  }
  const headRanges = ranges(asList(sel.heads, layout.heads, isFeatureSite(hook) ? 'feature' : 'head', hook));
  if (sel.keyPos !== undefined && !isPatternLike(hook)) {
    throw new Error(`${hook} has no key-position axis, so a keyPos selection does not apply (only hook_pattern and hook_attn_scores have one)`);
  }
  const keyRanges = sel.keyPos === undefined ? [[0, layout.F] as [number, number]] : ranges(asList(sel.keyPos, layout.F, 'key position', hook));
  return { batch, pos, headRanges, keyRanges };
}

function targetKeys(layout: SiteLayout, pos0: number, sel: ResolvedSelection): number[] {
  const keys: number[] = [];
  const T = pos0 + layout.pos;
  for (const b of sel.batch) for (const p of sel.pos) for (const [h0, h1] of sel.headRanges) for (let h = h0; h < h1; h++) keys.push((b * T + p) * layout.heads + h);
  return keys;
}

interface Source {
  buffer: GPUBuffer;
  floats: number;
  headStride: number;
  /** Element of the source that holds (batch row b, absolute position p, head 0, feature 0). */
  base: (b: number, p: number) => number;
}

/** The hook's full-sequence shape: a resumed pass's site holds positions pos0 .. only. */
function fullShape(hook: string, shape: readonly number[], pos0: number): number[] {
  const full = [...shape];
  full[isPatternLike(hook) ? 2 : 1] += pos0;
  return full;
}

async function resolveSource(
  gpu: Gpu,
  iv: Exclude<Intervention, { op: 'callback' }>,
  shape: readonly number[],
  layout: SiteLayout,
  pos0: number,
  temps: Tensor[],
  prelude: Dispatch[],
  params: Params[],
  dummy: GPUBuffer,
): Promise<Source> {
  const { hook } = iv;
  const perHead = layout.heads * layout.F; // floats of one (b, p) in a [.., heads, F] source
  switch (iv.op) {
    case 'zero':
    case 'scale':
    case 'set':
      return { buffer: dummy, floats: 1, headStride: 0, base: () => 0 };
    case 'add': {
      const v = iv.vector;
      if (v.length !== layout.F && v.length !== perHead) {
        throw new Error(`the vector added at ${hook} has ${v.length} values; it needs ${layout.F}` + (layout.heads > 1 ? ` (or ${perHead} = heads x ${layout.F})` : ''));
      }
      const t = Tensor.from(gpu, Float32Array.from(v), [v.length], `add vector ${hook}`);
      temps.push(t);
      return { buffer: t.buffer, floats: v.length, headStride: v.length === layout.F ? 0 : layout.F, base: () => 0 };
    }
    case 'replace': {
      const t = iv.source instanceof ActivationCache ? iv.source.get(hook) : iv.source;
      t.assertLive();
      const [Bs, ...rest] = t.shape;
      const full = fullShape(hook, shape, pos0);
      if (rest.length !== full.length - 1 || rest.some((d, i) => d !== full[i + 1])) {
        throw new Error(`the replacement for ${hook} has shape [${t.shape.join(', ')}] but the hook has [${full.join(', ')}] (batch may differ)`);
      }
      const src = siteLayout(hook, t.shape);
      let row: (b: number) => number;
      if (iv.sourceBatch !== undefined) {
        if (!Number.isInteger(iv.sourceBatch) || iv.sourceBatch < 0 || iv.sourceBatch >= Bs) {
          throw new Error(`sourceBatch ${iv.sourceBatch} is out of range for a replacement with ${Bs} rows`);
        }
        const r = iv.sourceBatch;
        row = () => r;
      } else if (Bs === 1) row = () => 0;
      else if (Bs === layout.batch) row = (b) => b;
      else {
        throw new Error(
          `the replacement for ${hook} has ${Bs} batch rows and this run ${layout.batch === 1 ? 'one' : layout.batch}; ` +
            `give sourceBatch, or a source of ${layout.batch === 1 ? '1 row' : `1 or ${layout.batch} rows`}`,
        );
      }
      return { buffer: t.buffer, floats: t.numel, headStride: src.sh, base: (b, p) => row(b) * src.sb + p * src.sp };
    }
    case 'mean': {
      const ref = iv.reference.get(hook);
      ref.assertLive();
      const refLayout = siteLayout(hook, ref.shape);
      const pooled = iv.pooled ?? false;
      const T = pos0 + layout.pos;
      if (!pooled && refLayout.pos !== T) {
        throw new Error(`the reference for mean-ablating ${hook} has ${refLayout.pos} positions and this run ${T}; use pooled: true to average over positions`);
      }
      if (refLayout.F !== layout.F || refLayout.heads !== layout.heads) {
        throw new Error(`the reference for ${hook} has shape [${ref.shape.join(', ')}], not compatible with [${shape.join(', ')}]`);
      }
      // The mean is computed on the GPU at the start of the run: [P, heads, F].
      const P = pooled ? 1 : T;
      const t = Tensor.empty(gpu, [P, layout.heads, layout.F], `mean ${hook}`);
      temps.push(t);
      prelude.push(batchMean(gpu, { out: t.buffer, x: ref.buffer, layout: refLayout, pooled, label: `mean ${hook}` }, params));
      return { buffer: t.buffer, floats: t.numel, headStride: layout.F, base: (_b, p) => (pooled ? 0 : p) * perHead };
    }
  }
}
