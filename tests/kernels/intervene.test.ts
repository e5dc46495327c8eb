/**
 * The intervention kernel (`intervene`) against `interveneCpu`, with entry tables built by hand
 * (the layout in `shaders/intervene.wgsl.ts`: ENTRY_WORDS u32 words op, b, p, h0, h1,
 * src_base, value (f32 bits), f0, f1, pad).
 *
 * Layouts (B = 3, T = 7, H = 3, dh = 5, d = 37 — distinct and odd):
 *   [B, T, d]         resid-like: sh = 0, one "head"; also d = 131 (3 workgroups per entry)
 *   [B, T, H, dh]     per head (hook_z / q / k / v), head sub-ranges not starting at 0
 *   [B, T, H, C]      hook_result, C = 37: a span of 2-3 heads crosses a 64-wide workgroup
 *   [B, H, T, T]      patterns: sb = H T T, sp = T, sh = T T, F = T
 * Every dispatch mixes the five ops (zero, scale, add, replace, set) over entries on different batch
 * rows, positions and head ranges (two entries on one (b, p) with disjoint heads, spans shorter
 * than the dispatch's maxHeadSpan), starts at entry0 > 0 in a table whose earlier entries (for
 * another dispatch) and trailing entries must not be applied, and reads its source three ways:
 *   patch      another run's activation of the same layout, src_sh = sh, base = (b', p') != (b, p)
 *   per head   a [T, heads, F] table (mean-like), src_sh = F
 *   broadcast  a bank of F-vectors at an unaligned offset, src_sh = 0 (one vector for all heads)
 * plus zero/scale-only dispatches whose source is a separate 1-float tensor, as hook-plan binds;
 * two groups over one table in one submit (order matters); and 65,542 entries, which
 * `intervene` splits into two dispatches (65,535 workgroups in y at most).
 * Elements no entry addresses must be bit-identical afterwards.
 *
 * Tolerance (u = 2^-24):
 *   zero, replace, set: a stored value; scale: one fp32 multiply, correctly rounded in WGSL/Vulkan as
 *           in the reference's Math.fround: bit-exact.
 *   add: x + value * src may be contracted to an FMA on the GPU (the reference rounds the
 *           product first): |diff| <= u |v s| (1 + u) + 2u / (1 - u) |ref|, so abs = 2u max|v s|,
 *           rel = 3u over the added elements.
 * Entries of one dispatch run concurrently, so the tables here never address one element twice
 * in a dispatch (asserted); the two-dispatch test orders overlapping entries across dispatches.
 */
import { describe, it, expect } from 'vitest';
import { intervene, type SiteLayout } from '../../src/gpu/kernels/intervene.ts';
import { interveneCpu } from '../../src/gpu/kernels/intervene.cpu.ts';
import { submitSteps, type Dispatch } from '../../src/gpu/recorder.ts';
import { ENTRY_WORDS, OP } from '../../shaders/intervene.wgsl.ts';
import { maxAbs } from '../helpers/compare.ts';
import { expectNear, firstNaN, U } from './check.ts';
import { kernelHarness } from './harness.ts';
import { mulberry32, normal } from './random.ts';

const B = 3,
  T = 7,
  H = 3,
  dh = 5,
  d = 37;

const kh = kernelHarness();
const { params, upload } = kh;

type Op = keyof typeof OP;

interface Entry {
  op: Op;
  b: number;
  p: number;
  h0: number;
  h1: number;
  value?: number;
  /** Feature range [f0, f1) (default: all F); patterns patch single key positions with it. */
  f0?: number;
  f1?: number;
}

/** An entry with its source offset filled in. */
type Placed = Entry & { base: number };

function flat(Fd: number): SiteLayout {
  return { sb: T * Fd, sp: Fd, sh: 0, F: Fd, batch: B, pos: T, heads: 1 };
}
function perHead(F: number): SiteLayout {
  return { sb: T * H * F, sp: H * F, sh: F, F, batch: B, pos: T, heads: H };
}
const PATTERN: SiteLayout = { sb: H * T * T, sp: T, sh: T * T, F: T, batch: B, pos: T, heads: H };

const numel = (L: SiteLayout) => L.batch * L.sb;
const index = (L: SiteLayout, b: number, p: number, h: number, f: number) => b * L.sb + p * L.sp + h * L.sh + f;

/** The table: entries in order, `value` through a Float32Array view, pad set to garbage (unused). */
function table(entries: Placed[], F: number): Uint32Array {
  const t = new Uint32Array(entries.length * ENTRY_WORDS);
  const f = new Float32Array(t.buffer);
  entries.forEach((e, i) => {
    const w = i * ENTRY_WORDS;
    t.set([OP[e.op], e.b, e.p, e.h0, e.h1, e.base], w);
    f[w + 6] = e.value ?? 0;
    t[w + 7] = e.f0 ?? 0;
    t[w + 8] = e.f1 ?? F;
    t[w + 9] = 0xdeadbeef;
  });
  return t;
}

/*
 * Entries (b, p, heads). EARLIER: a previous dispatch's entries sitting before entry0, on sites
 * the real entries leave alone (so applying them shows). REAL: every op, every batch row,
 * positions 0 and 3..6, and for headed layouts two entries on (0, 3) with disjoint heads and
 * sub-ranges [1, 3), [2, 3), [1, 2), [0, 2) besides the full [0, 3).
 */
const EARLIER_HEADED: Entry[] = [
  { op: 'replace', b: 0, p: 0, h0: 0, h1: 3 },
  { op: 'zero', b: 2, p: 6, h0: 1, h1: 2 },
  { op: 'scale', b: 1, p: 1, h0: 0, h1: 3, value: 100 },
];
const REAL_HEADED: Entry[] = [
  { op: 'zero', b: 0, p: 3, h0: 1, h1: 3 },
  { op: 'scale', b: 0, p: 3, h0: 0, h1: 1, value: 3 },
  { op: 'scale', b: 1, p: 0, h0: 2, h1: 3, value: -1.75 },
  { op: 'add', b: 2, p: 4, h0: 1, h1: 2, value: 0.5 },
  { op: 'add', b: 0, p: 5, h0: 0, h1: 3, value: -2 },
  { op: 'replace', b: 1, p: 6, h0: 1, h1: 3 },
  { op: 'replace', b: 2, p: 3, h0: 2, h1: 3 },
  { op: 'add', b: 1, p: 3, h0: 0, h1: 2, value: 0.1 },
  { op: 'set', b: 2, p: 5, h0: 0, h1: 2, value: 0.625 },
];
/**
 * The same for [B, T, d]: one "head", so every entry is [0, 1) and sites are distinct (b, p) —
 * the headed tables with the second real entry, which shares (0, 3) with the first, moved to p = 4.
 */
const oneHead = (e: Entry): Entry => ({ ...e, h0: 0, h1: 1 });
const EARLIER_FLAT: Entry[] = EARLIER_HEADED.map(oneHead);
const REAL_FLAT: Entry[] = REAL_HEADED.map((e, i) => (i === 1 ? { ...oneHead(e), p: 4 } : oneHead(e)));
/** Appended after the dispatch's range (a later dispatch's); must not be applied either. */
const TRAILING: Entry = { op: 'zero', b: 2, p: 0, h0: 0, h1: 1 };

type SrcKind = 'patch' | 'per head' | 'broadcast';

interface Source {
  data: Float32Array;
  sh: number;
  /** src_base of the k-th entry acting on (b, p). */
  base: (b: number, p: number, k: number) => number;
}

/** Source data ~ N(5, 1), visibly unlike the activation ~ N(0, 1). */
function makeSource(kind: SrcKind, L: SiteLayout, rng: () => number): Source {
  switch (kind) {
    case 'patch': // another run's activation: its row b + 1, position p + 2
      return { data: normal(rng, numel(L), 5), sh: L.sh, base: (b, p) => ((b + 1) % L.batch) * L.sb + ((p + 2) % L.pos) * L.sp };
    case 'per head': // [T, heads, F], position p + 3
      return { data: normal(rng, L.pos * L.heads * L.F, 5), sh: L.F, base: (_b, p) => ((p + 3) % L.pos) * L.heads * L.F };
    case 'broadcast': // 4 F-vectors after 3 floats of padding, one per entry in turn
      return { data: normal(rng, 3 + 4 * L.F, 5), sh: 0, base: (_b, _p, k) => 3 + (k % 4) * L.F };
  }
}

interface Group {
  entries: Placed[];
  src: Float32Array;
  srcSh: number;
}

/** Every element an entry addresses (throws if one is addressed twice: a race on the GPU). */
function addressed(L: SiteLayout, entries: readonly Entry[]): Map<number, Entry> {
  const out = new Map<number, Entry>();
  for (const e of entries) {
    if (!(e.h0 < e.h1 && e.h1 <= L.heads && e.b < L.batch && e.p < L.pos)) throw new Error(`test entry out of range: ${JSON.stringify(e)}`);
    for (let h = e.h0; h < e.h1; h++) {
      for (let f = e.f0 ?? 0; f < (e.f1 ?? L.F); f++) {
        const i = index(L, e.b, e.p, h, f);
        if (out.has(i)) throw new Error(`test table addresses element ${i} twice in one dispatch`);
        out.set(i, e);
      }
    }
  }
  return out;
}

/**
 * Runs `groups` as consecutive dispatches over one shared table (each group's entries at its
 * own entry0, after `before` entries of another dispatch, with TRAILING after them all), in one
 * submit, and the reference in the same order. Returns the activation before, after, and the
 * reference.
 */
async function run(name: string, L: SiteLayout, x0: Float32Array, before: Placed[], groups: Group[]): Promise<{ got: Float32Array; ref: Float32Array }> {
  const all = [...before, ...groups.flatMap((g) => g.entries), { ...TRAILING, base: 0 }];
  const tab = table(all, L.F);
  const entriesT = upload(new Float32Array(tab.buffer), `${name} entries`);
  const xT = upload(x0, `${name} x`);
  const ref = x0.slice();
  const dispatches: Dispatch[] = [];
  let entry0 = before.length;
  for (const [i, g] of groups.entries()) {
    const srcT = upload(g.src, `${name} source ${i}`);
    dispatches.push(
      ...intervene(
        kh.gpu,
        {
          x: xT.buffer,
          xFloats: numel(L),
          layout: L,
          entries: entriesT.buffer,
          entry0,
          nEntries: g.entries.length,
          maxHeadSpan: Math.max(...g.entries.map((e) => e.h1 - e.h0)),
          src: srcT.buffer,
          srcFloats: g.src.length,
          srcHeadStride: g.srcSh,
          label: `${name} ${i}`,
        },
        params,
      ),
    );
    interveneCpu(ref, L, tab.subarray(entry0 * ENTRY_WORDS), g.entries.length, g.src, g.srcSh);
    entry0 += g.entries.length;
  }
  submitSteps(kh.gpu, dispatches, name);
  return { got: await xT.read(), ref };
}

/**
 * Compares: elements no group addresses keep their bits; elements an add touched (nothing
 * after it) within the add tolerance; every other addressed element bit-exact.
 */
function check(name: string, L: SiteLayout, x0: Float32Array, groups: Group[], got: Float32Array, ref: Float32Array): void {
  expect(firstNaN(got), `${name}: NaN in the output`).toBe(-1);
  const touched = new Set<number>();
  const added = new Map<number, number>(); // element -> |value * src|
  for (const g of groups) {
    for (const [i, e] of addressed(L, g.entries)) {
      touched.add(i);
      if (e.op === 'add') {
        const pe = e as Placed;
        const r = i - index(L, e.b, e.p, 0, 0); // h * sh + f
        const h = L.sh ? Math.floor(r / L.sh) : 0; // (pattern: sh = T T, so r < sh within one head)
        const f = r - h * L.sh;
        added.set(i, Math.abs(Math.fround(e.value ?? 0) * g.src[pe.base + h * g.srcSh + f]!));
      } else added.delete(i);
    }
  }
  const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
  const [g32, r32, x32] = [bits(got), bits(ref), bits(x0)];
  const changedOutside: number[] = [];
  const refChanged: number[] = [];
  const inexact: number[] = [];
  const addGot: number[] = [];
  const addRef: number[] = [];
  for (let i = 0; i < got.length; i++) {
    if (!touched.has(i)) {
      if (g32[i] !== x32[i]) changedOutside.push(i);
      if (r32[i] !== x32[i]) refChanged.push(i);
    } else if (added.has(i)) {
      addGot.push(got[i]!);
      addRef.push(ref[i]!);
    } else if (g32[i] !== r32[i]) inexact.push(i);
  }
  const show = (is: number[], what: string) =>
    `${name}: ${is.length} ${what}, first ${is
      .slice(0, 5)
      .map((i) => `[${i}] ${got[i]} (was ${x0[i]}, ref ${ref[i]})`)
      .join(', ')}`;
  expect(refChanged.length, `${name}: the reference changed ${refChanged.length} unaddressed elements`).toBe(0);
  expect(changedOutside.length, show(changedOutside, 'unaddressed elements changed')).toBe(0);
  expect(inexact.length, show(inexact, 'zero/scale/replace elements not bit-exact')).toBe(0);
  if (addGot.length) expectNear(`${name} add`, addGot, addRef, { abs: 2 * U * maxAbs([...added.values()]), rel: 3 * U });
}

const place = (entries: Entry[], src: Source): Placed[] => entries.map((e, k) => ({ ...e, base: src.base(e.b, e.p, k) }));

const KEYS: Array<Pick<Entry, 'f0' | 'f1'>> = [{ f0: 3, f1: 4 }, { f0: 1, f1: 5 }, { f0: T - 1, f1: T }, {}];

interface LayoutCase {
  name: string;
  L: SiteLayout;
  earlier: Entry[];
  real: Entry[];
  sources: SrcKind[];
}

const CASES: LayoutCase[] = [
  { name: '[B,T,d] d=37', L: flat(d), earlier: EARLIER_FLAT, real: REAL_FLAT, sources: ['patch', 'broadcast'] },
  { name: '[B,T,d] d=131', L: flat(131), earlier: EARLIER_FLAT, real: REAL_FLAT, sources: ['patch', 'broadcast'] },
  { name: '[B,T,H,dh]', L: perHead(dh), earlier: EARLIER_HEADED, real: REAL_HEADED, sources: ['patch', 'per head', 'broadcast'] },
  { name: '[B,T,H,C] C=37', L: perHead(d), earlier: EARLIER_HEADED, real: REAL_HEADED, sources: ['patch', 'per head', 'broadcast'] },
  { name: '[B,H,T,T] pattern', L: PATTERN, earlier: EARLIER_HEADED, real: REAL_HEADED, sources: ['patch', 'per head', 'broadcast'] },
  // Key-position ranges (TransformerLens' dest/src pattern patching): one key, a run of keys, the
  // last key, and two entries on one (b, p, h) with disjoint keys.
  {
    name: '[B,H,T,T] pattern, key ranges',
    L: PATTERN,
    earlier: EARLIER_HEADED,
    real: REAL_HEADED.map((e, i) => ({ ...e, ...KEYS[i % KEYS.length] })).concat([{ op: 'zero', b: 2, p: 3, h0: 2, h1: 3, f0: 0, f1: 2 }]),
    sources: ['patch', 'per head', 'broadcast'],
  },
];

describe.each(CASES)('intervene $name', (c) => {
  it.each(c.sources)('zero, scale, add, replace from a %s source, entry0 > 0', async (kind) => {
    const rng = mulberry32(c.L.F * 1000 + c.L.sh * 10 + c.sources.indexOf(kind));
    const x0 = normal(rng, numel(c.L));
    const src = makeSource(kind, c.L, rng);
    expect(src.sh === 0 || kind !== 'broadcast').toBe(true);
    const before = place(c.earlier, src);
    const group: Group = { entries: place(c.real, src), src: src.data, srcSh: src.sh };
    // Every op, batch row, and an entry shorter than the dispatch's head span are present.
    expect(new Set(c.real.map((e) => e.op))).toEqual(new Set(Object.keys(OP)));
    expect(new Set(c.real.map((e) => e.b))).toEqual(new Set([0, 1, 2]));
    const { got, ref } = await run(`${c.name} ${kind}`, c.L, x0, before, [group]);
    check(`${c.name} ${kind}`, c.L, x0, [group], got, ref);
    // The earlier entries' own sites (untouched by the real ones) are unchanged: not applied.
    const realSites = addressed(c.L, c.real);
    const earlierOnly = [...addressed(c.L, c.earlier).keys()].filter((i) => !realSites.has(i));
    expect(earlierOnly.length).toBeGreaterThan(0);
    expect(earlierOnly.every((i) => Object.is(got[i], x0[i]))).toBe(true);
    // A replaced element holds the source value exactly (read from base + h * src_sh + f).
    const r = group.entries.find((e) => e.op === 'replace')!;
    const rf = (r.f1 ?? c.L.F) - 1;
    expect(got[index(c.L, r.b, r.p, r.h1 - 1, rf)]).toBe(src.data[r.base + (r.h1 - 1) * src.sh + rf]);
  });

  it('zero and scale only, with a separate 1-float source tensor (as hook-plan binds them)', async () => {
    const rng = mulberry32(c.L.F * 1000 + c.L.sh * 10 + 7);
    const x0 = normal(rng, numel(c.L));
    const entries = c.real.filter((e) => e.op === 'zero' || e.op === 'scale').map((e) => ({ ...e, base: 0 }));
    const group: Group = { entries, src: new Float32Array([123]), srcSh: 0 };
    const { got, ref } = await run(`${c.name} zero/scale`, c.L, x0, [], [group]);
    check(`${c.name} zero/scale`, c.L, x0, [group], got, ref);
    const z = entries.find((e) => e.op === 'zero')!;
    expect(Object.is(got[index(c.L, z.b, z.p, z.h0, z.f0 ?? 0)], 0)).toBe(true); // +0
  });
});

describe('intervene: several dispatches over one table', () => {
  it('two groups in one submit, in order, the second overwriting and adding to the first', async () => {
    // As hook-plan records a hook point's groups: one table, entry0 = 0 then 3, one submit.
    const L = perHead(dh);
    const rng = mulberry32(99);
    const x0 = normal(rng, numel(L));
    const src = makeSource('patch', L, rng);
    const first: Entry[] = [
      { op: 'scale', b: 0, p: 3, h0: 0, h1: 3, value: -0.5 }, // then zeroed / scaled again
      { op: 'scale', b: 2, p: 4, h0: 1, h1: 2, value: 2 }, // then added to
      { op: 'replace', b: 1, p: 1, h0: 0, h1: 2 }, // left as is
    ];
    const g1: Group = { entries: place(first, src), src: src.data, srcSh: src.sh };
    const g2: Group = { entries: place(REAL_HEADED, src), src: src.data, srcSh: src.sh };
    const { got, ref } = await run('two groups', L, x0, [], [g1, g2]);
    check('two groups', L, x0, [g1, g2], got, ref);
    // Order mattered: the second scale acted on the first's result.
    const i = index(L, 0, 3, 0, 4);
    expect(got[i]).toBe(Math.fround(Math.fround(x0[i]! * -0.5) * 3));
  });
});

describe('intervene: more entries than one dispatch takes (65,535 workgroups in y)', () => {
  it('65,542 entries after entry0 = 2 split into two dispatches, every op, every entry applied once', async () => {
    // One position per entry, F = 3; batch row 1 holds the earlier entries' sites.
    const n = 65535 + 7;
    const L: SiteLayout = { sb: n * 3, sp: 3, sh: 0, F: 3, batch: 2, pos: n, heads: 1 };
    const rng = mulberry32(100);
    const x0 = normal(rng, numel(L));
    const src = makeSource('broadcast', L, rng);
    const ops: Op[] = ['zero', 'scale', 'add', 'replace', 'set'];
    const real: Entry[] = Array.from({ length: n }, (_, p) => ({ op: ops[p % ops.length]!, b: 0, p, h0: 0, h1: 1, value: (p % 5) - 2.5 }));
    const before = place(
      [
        { op: 'replace', b: 1, p: 0, h0: 0, h1: 1 },
        { op: 'zero', b: 1, p: n - 1, h0: 0, h1: 1 },
      ],
      src,
    );
    const group: Group = { entries: place(real, src), src: src.data, srcSh: 0 };
    const { got, ref } = await run('split', L, x0, before, [group]);
    check('split', L, x0, [group], got, ref);
    // The last entry (the second dispatch's last) was applied: position n - 1 = 65541, a scale by -1.5.
    const last = index(L, 0, n - 1, 0, 2);
    expect([real[n - 1]!.op, real[n - 1]!.value]).toEqual(['scale', -1.5]);
    expect(got[last]).toBe(Math.fround(x0[last]! * -1.5));
  });
});
