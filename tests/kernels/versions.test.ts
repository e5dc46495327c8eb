/**
 * Every shader module's `*_VERSIONS` list matches the `@compute` entry points its source really
 * has, for every preprocessor variant, and its header comment names each one (verbatim, or as
 * kernel name plus version: "head_result ... v1 of each") — so the lists
 * cannot drift from the code (llm.c's layernorm had an unlisted v6; its attention listed an 11
 * it could not run). Every listed entry point also compiles on the device.
 *
 * The shader files are found by listing shaders/, so a new family is checked without edits here;
 * only families whose source takes preprocessor flags need their variants named below, and
 * families generated per shape (one entry point per source) their generators (GENERATED).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it, expect, beforeAll } from 'vitest';
import type { Gpu } from '../../src/gpu/device.ts';
import { testGpu } from '../helpers/gpu.ts';

const SHADER_DIR = new URL('../../shaders/', import.meta.url);
const FILES = readdirSync(SHADER_DIR)
  .filter((f) => f.endsWith('.wgsl.ts'))
  .sort();

/** Source arguments for each variant, for the families whose source takes flags. */
const VARIANTS: Record<string, unknown[]> = {
  // matmul_v6 exists only where the device has subgroups: lavapipe's 8, and the 32 and 64 of
  // NVIDIA / Apple and AMD GPUs (a wider workgroup; compiled here, run in matmul-subgroups.test.ts).
  // The input gradient's forms: transposed and accumulated stores, v6's one-subgroup workgroups.
  'matmul.wgsl.ts': [
    ...[8, 32, 64].flatMap((subgroupSize) => [false, true].flatMap((transB) => [false, true].map((bias) => ({ transB, bias, subgroupSize })))),
    ...[8, 32].map((subgroupSize) => ({ transB: false, bias: false, vec4B: true, subgroupSize, narrow: true, transC: true, accC: true })),
    { transB: true, bias: false, subgroupSize: 8, accC: true },
  ],
  'layernorm.wgsl.ts': [{ rms: false }, { rms: true }],
  'matmul-backward.wgsl.ts': [{}, { transW: true, rows: true, acc: true }, { affine: true, transOut: true, acc: true }, { transW: true, scalarG: true }, { transOut: true, scalarG: true }],
  'layernorm-backward.wgsl.ts': [{}, { rms: true, detach: true, acc: true }],
  'activation-backward.wgsl.ts': [{ gated: false }, { gated: true }],
  'embed-backward.wgsl.ts': [{ acc: false }, { acc: true }],
  'metrics-backward.wgsl.ts': [{ inPlace: false }, { inPlace: true }, { inPlace: true, softcap: true }],
  'sae-backward.wgsl.ts': [{}, { gain: true }],
};

/**
 * Families whose kernels are generated per shape, one entry point per source (the attention-only
 * trainer's: sizes are baked in and loops unrolled): each generator with sample arguments at odd
 * shapes (not multiples of any tile) and the entry point it must produce. Together they must
 * cover the family's *_VERSIONS list.
 */
const DIMS = { B: 3, T: 11, D: 20, H: 5, E: 4, V: 36, CAP: 24, P: 13, eps: 1e-5 };
const GENERATED: Record<string, { make: string; args: unknown[]; entries: string[] }[]> = {
  'attn-only-train.wgsl.ts': [
    { make: 'packQkvSource', args: [DIMS], entries: ['pack_qkv_v1'] },
    { make: 'packKvSource', args: [DIMS], entries: ['pack_kv_v1'] },
    { make: 'transposeSource', args: [7, 5], entries: ['transpose_v1'] },
    { make: 'embedSource', args: [DIMS], entries: ['embed_v1'] },
    { make: 'slotRowsSource', args: [DIMS, 20, 'gather'], entries: ['gather_rows_v1'] },
    { make: 'slotRowsSource', args: [DIMS, 20, 'scatter'], entries: ['scatter_add_v1'] },
    { make: 'lnForwardSource', args: [DIMS, 33, false], entries: ['ln_forward_v1'] },
    { make: 'lnForwardSource', args: [DIMS, 33, true], entries: ['ln_forward_v1'] },
    { make: 'attnForwardSource', args: [DIMS, 0.5], entries: ['attn_forward_v1'] },
    { make: 'attnForwardV3Source', args: [DIMS, 0.5, 8], entries: ['attn_forward_v3'] },
    { make: 'attnForwardSlotsSource', args: [DIMS, 0.5], entries: ['attn_forward_slots_v1'] },
    { make: 'lossRowsSource', args: [DIMS], entries: ['loss_rows_v1', 'loss_sum_v1'] },
    { make: 'lnBackwardSource', args: [DIMS, 33, false], entries: ['ln_backward_v1'] },
    { make: 'lnBackwardSource', args: [DIMS, 24, true], entries: ['ln_backward_v1'] },
    { make: 'colSumsSource', args: [DIMS, 33, 5], entries: ['col_sums_part_v1', 'col_sums_total_v1'] },
    { make: 'attnBackwardSource', args: [DIMS, 0.5], entries: ['attn_backward_v1'] },
    { make: 'attnBackwardV4Source', args: [DIMS, 0.5, 8], entries: ['attn_backward_v4'] },
    { make: 'attnBackwardSlotsSource', args: [DIMS, 0.5], entries: ['attn_backward_slots_v1'] },
    { make: 'attnBackwardSlotsV2Source', args: [DIMS, 0.5, 8], entries: ['attn_backward_slots_v2'] },
    { make: 'packKvFoldedSource', args: [DIMS], entries: ['pack_kv_folded_v1'] },
    { make: 'attnForwardFoldedSource', args: [DIMS, 0.5, 8], entries: ['attn_forward_folded_v1'] },
    { make: 'attnBackwardFoldedSource', args: [DIMS, 0.5, 8], entries: ['attn_backward_folded_v1'] },
    { make: 'posGradSource', args: [DIMS], entries: ['pos_grad_v1'] },
    { make: 'embedGradSource', args: [DIMS], entries: ['embed_grad_v1'] },
  ],
  'induction-data.wgsl.ts': [
    ...(['recall', 'repeated'] as const).map((task) => ({
      make: 'inductionDataSource',
      args: [{ task, B: 3, T: 45, V: 53, K: 3, counters: 4096 }],
      entries: ['gen_sequence_v1', 'compact_v1'],
    })),
    { make: 'tokenIndexSource', args: [{ B: 3, T: 11, V: 37 }], entries: ['token_count_v1', 'token_offsets_v1', 'token_fill_v1', 'token_sort_v1'] },
  ],
  'narrow-matmul.wgsl.ts': [
    ...[false, true].flatMap((subgroups) =>
      [
        { C: 1, RB: 16 },
        { C: 3, RB: 8 },
        { C: 2, RB: 32 },
      ].map(({ C, RB }) => ({ make: 'rowsTimesTSource', args: [{ M: 37, K: 20, N: 70, C, RB, ROWS: 64, bias: true, residual: subgroups, subgroups }], entries: ['rows_times_t_v1'] })),
    ),
    ...[false, true].map((subgroups) => ({
      make: 'weightGradSource',
      args: [{ M: 37, Kin: 19, N: 70, C: 2, split: 35, accumulate: subgroups, bias: true, subgroups, KR: 16, base: 3, biasBase: 2 }],
      entries: ['weight_grad_v1'],
    })),
    { make: 'rowsTimesTV2Source', args: [{ M: 37, K: 20, N: 68, RB: 16, bias: true, residual: true }], entries: ['rows_times_t_v2'] },
    { make: 'weightGradV2Source', args: [{ M: 37, Kin: 19, N: 68, C: 1, split: 34, accumulate: true, bias: true, subgroups: true, KR: 16, base: 3, biasBase: 2 }], entries: ['weight_grad_v2'] },
    {
      make: 'weightGradV2Source',
      args: [{ M: 30, Kin: 24, N: 24, C: 1, split: 24, accumulate: false, bias: true, subgroups: true, KR: 8, diagonal: { rows: 8, cols: 8 } }],
      entries: ['weight_grad_v2'],
    },
  ],
};

/** Pipeline constants for overrides without a default (none so far: WG defaults to 64). */
const CONSTANTS: Record<string, Record<string, number>> = {};

/** `@compute @workgroup_size(...) fn NAME` entry points, in source order. */
function computeEntryPoints(source: string): string[] {
  const re = /@compute\s+@workgroup_size\s*\([^)]*\)\s*fn\s+([A-Za-z_][A-Za-z0-9_]*)/g;
  const attrs = /@compute\b/g;
  const names = [...source.matchAll(re)].map((m) => m[1]!);
  // Every @compute must be matched (no attribute order the regex misses).
  expect(names.length, 'every @compute attribute starts a recognised entry point').toBe([...source.matchAll(attrs)].length);
  return names;
}

interface Family {
  file: string;
  versions: readonly string[];
  sources: string[];
  header: string;
  /** Each source with the entry points it must hold (all of them for a one-source family). */
  samples: { source: string; entries: string[] }[];
}

async function load(file: string): Promise<Family> {
  const mod = (await import(new URL(file, SHADER_DIR).href)) as Record<string, unknown>;
  const lists = Object.keys(mod).filter((k) => k.endsWith('_VERSIONS'));
  const makers = Object.keys(mod).filter((k) => k.endsWith('Source') && typeof mod[k] === 'function');
  expect(lists, `${file} exports one *_VERSIONS list`).toHaveLength(1);
  const text = readFileSync(new URL(file, SHADER_DIR), 'utf8');
  const header = text.slice(0, text.indexOf('*/'));
  const versions = mod[lists[0]!] as readonly string[];
  const generated = GENERATED[file];
  if (generated) {
    // Every generator the module exports is sampled, and the samples cover the list.
    expect(new Set(generated.map((g) => g.make)), `${file}: every *Source function is sampled`).toEqual(new Set(makers));
    expect(new Set(generated.flatMap((g) => g.entries)), `${file}: the samples cover the *_VERSIONS list`).toEqual(new Set(versions));
    return { file, versions, sources: [], header, samples: generated.map((g) => ({ source: (mod[g.make] as (...a: unknown[]) => string)(...g.args), entries: g.entries })) };
  }
  expect(makers, `${file} exports one *Source function`).toHaveLength(1);
  const make = mod[makers[0]!] as (v?: unknown) => string;
  const variants = VARIANTS[file] ?? [undefined];
  // A one-source family: every variant holds every listed entry point.
  return { file, versions, sources: variants.map((v) => make(v)), header, samples: variants.map((v) => ({ source: make(v), entries: [...versions] })) };
}

describe('shader version lists match their entry points', () => {
  it('finds the kernel families', () => {
    expect(FILES).toEqual(expect.arrayContaining(['activation.wgsl.ts', 'attention.wgsl.ts', 'embed.wgsl.ts', 'layernorm.wgsl.ts', 'matmul.wgsl.ts', 'residual.wgsl.ts']));
  });

  describe.each(FILES)('%s', (file) => {
    let fam: Family;
    beforeAll(async () => {
      fam = await load(file);
    });

    it('the *_VERSIONS list equals the @compute entry points of every variant', () => {
      expect(new Set(fam.versions).size, 'no duplicates in the list').toBe(fam.versions.length);
      fam.samples.forEach(({ source, entries }, i) => {
        expect([...computeEntryPoints(source)].sort(), `variant ${i}`).toEqual([...entries].sort());
      });
    });

    it('the header comment names every listed entry point', () => {
      // Either verbatim (`matmul_v2`) or as its kernel name plus the version (`head_result` ... v1).
      for (const name of fam.versions) {
        const m = /^(.*)_(v\d+)$/.exec(name);
        const named = new RegExp(`\\b${name}\\b`).test(fam.header) || (!!m && new RegExp(`\\b${m[1]}\\b`).test(fam.header) && new RegExp(`\\b${m[2]}\\b`).test(fam.header));
        expect(named, `${file}: header does not name ${name}`).toBe(true);
      }
    });

    it('every listed entry point of every variant compiles', async () => {
      const gpu: Gpu = await testGpu();
      for (const [i, { source, entries }] of fam.samples.entries()) {
        for (const entry of entries) {
          await gpu.guard(`compiling ${file} variant ${i} ${entry}`, 0, () => gpu.pipelines.get(file, source, entry, CONSTANTS[file] ?? {}));
        }
      }
    });
  });
});

describe('the checks themselves', () => {
  it('compiling an entry point the source lacks fails', async () => {
    const gpu = await testGpu();
    const fam = await load('residual.wgsl.ts');
    await expect(gpu.guard('compiling add_v9', 0, () => gpu.pipelines.get('residual', fam.sources[0]!, 'add_v9'))).rejects.toThrow(/add_v9/);
  });

  it('reads names across line breaks and ignores non-compute functions', () => {
    const src = `
fn helper() -> f32 { return 1.0; }
@compute @workgroup_size(8, 8)
fn a_v1(@builtin(global_invocation_id) g: vec3u) {}
@compute
@workgroup_size(WG) fn b_v2() {}`;
    expect(computeEntryPoints(src)).toEqual(['a_v1', 'b_v2']);
  });
});
