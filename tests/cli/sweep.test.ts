/**
 * The sweep commands end to end, as child processes: `patch --site` for head and 3-D sites and
 * `--normalize` against the library's `patchingSweep` (computed in this process), `sweep-ablate`
 * against the fixtures' recorded head zero-ablations, `bench`'s JSON, and one-line errors for bad
 * sites, metrics and bench shapes. (`patch --site resid_pre` against the fixture grid is in
 * ablate-patch.test.ts.)
 */
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { headAblationSweep } from '../../src/experiments/ablation.ts';
import { logProbMetric, logitDiffMetric, lossMetric, type Metric } from '../../src/model/metric.ts';
import { patchingSweep, type PatchSite } from '../../src/experiments/patching.ts';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { GPT2_FIXTURES, fixtureCases, fixtureSource, type Cases } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';
import { projectRoot, runCli, type CliResult } from '../helpers/run-cli.ts';

const TOL = 1e-3;
const fixtureDir = (name: string) => resolve(projectRoot, 'tests/fixtures', name);
const metricFlag = (c: Cases) => `logit-diff:${c.metric.position}:${c.metric.good_token}:${c.metric.bad_token}`;
const metricOf = (c: Cases) => logitDiffMetric(c.metric.position, c.metric.good_token, c.metric.bad_token);

function parseJson<T>(r: CliResult): T {
  expect(r.code, `exit code; stderr: ${r.stderr}`).toBe(0);
  expect(r.errorLines).toEqual([]);
  const lines = r.stdout.trim().split('\n');
  expect(lines, 'one line of JSON on stdout').toHaveLength(1);
  return JSON.parse(lines[0]) as T;
}

/** Nested arrays, checked against `shape` on the way, flattened row-major. */
function flatten(values: unknown, shape: readonly number[]): number[] {
  if (shape.length === 0) {
    expect(typeof values).toBe('number');
    return [values as number];
  }
  expect(Array.isArray(values)).toBe(true);
  expect((values as unknown[]).length).toBe(shape[0]);
  return (values as unknown[]).flatMap((v) => flatten(v, shape.slice(1)));
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  return Array.from(a).reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
};

interface PatchOut {
  site: string;
  shape: number[];
  axes: string[];
  values: unknown;
  clean: number;
  corrupt: number;
}
interface SweepAblateOut {
  shape: number[];
  axes: string[];
  values: number[][];
  unablated: number;
}

describe.each(GPT2_FIXTURES)('patchbay sweep-ablate on %s', (name) => {
  test('--mode zero reproduces every head of head_zero_ablation_on_clean', async () => {
    const cases = fixtureCases(name);
    const [clean] = cases.prompts;
    const out = parseJson<SweepAblateOut>(await runCli(['sweep-ablate', fixtureDir(name), '--ids', clean.join(','), '--metric', metricFlag(cases), '--json']));
    const L = Math.max(...cases.head_zero_ablation_on_clean.map((c) => c.layer)) + 1;
    const H = Math.max(...cases.head_zero_ablation_on_clean.map((c) => c.head)) + 1;
    expect(out.shape).toEqual([L, H]);
    expect(out.axes).toEqual(['layer', 'head']);
    flatten(out.values, out.shape);
    let worst = 0;
    for (const c of cases.head_zero_ablation_on_clean) {
      const err = Math.abs(out.values[c.layer][c.head] - c.logit_diff);
      expect(err, `head ${c.layer}.${c.head}`).toBeLessThanOrEqual(TOL);
      worst = Math.max(worst, err);
    }
    expect(Math.abs(out.unablated - cases.clean_logit_diff), 'unablated').toBeLessThanOrEqual(TOL);
    console.log(`${name}: CLI sweep-ablate of ${L * H} heads, max |error| ${worst.toExponential(2)}`);
  });
});

describe('patchbay patch / sweep-ablate against the library on induction-2l', () => {
  const name = 'induction-2l';
  const dir = fixtureDir(name);
  const cases = fixtureCases(name);
  const [clean, corrupt] = cases.prompts;
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(await testGpu(), await fixtureSource(name));
  });
  afterAll(() => model?.destroy());

  const patch = (site: string, metric: string, ...extra: string[]) => runCli(['patch', dir, '--clean', clean.join(','), '--corrupt', corrupt.join(','), '--site', site, '--metric', metric, ...extra]);

  /** The CLI's grid for `site` equals the library's, computed here (1e-5). */
  async function expectLibraryGrid(out: PatchOut, site: PatchSite, metric: Metric, normalize = false): Promise<void> {
    const lib = await patchingSweep(model, clean, corrupt, site, metric, { normalize });
    expect(out.site).toBe(site);
    expect(out.shape).toEqual(lib.shape);
    expect(out.axes).toEqual(lib.axes);
    expect(maxDiff(flatten(out.values, out.shape), lib.values), `${site} values`).toBeLessThanOrEqual(1e-5);
    expect(Math.abs(out.clean - lib.clean)).toBeLessThanOrEqual(1e-5);
    expect(Math.abs(out.corrupt - lib.corrupt)).toBeLessThanOrEqual(1e-5);
  }

  test('--site z: a [layer, head] grid equal to patchingSweep', async () => {
    const out = parseJson<PatchOut>(await patch('z', metricFlag(cases), '--json'));
    expect(out.shape).toEqual([2, 4]);
    expect(out.axes).toEqual(['layer', 'head']);
    expect(Math.abs(out.clean - cases.clean_logit_diff)).toBeLessThanOrEqual(TOL);
    expect(Math.abs(out.corrupt - cases.corrupt_logit_diff)).toBeLessThanOrEqual(TOL);
    await expectLibraryGrid(out, 'z', metricOf(cases));
  });

  test('--site z_by_pos with a loss metric: [layer, pos, head] as TransformerLens orders it, the clean prompt as targets', async () => {
    const out = parseJson<PatchOut>(await patch('z_by_pos', 'loss:10:16', '--json'));
    expect(out.shape).toEqual([2, clean.length, 4]);
    expect(out.axes).toEqual(['layer', 'pos', 'head']);
    await expectLibraryGrid(out, 'z_by_pos', lossMetric(clean, 10, 16));
  });

  test('--normalize: (m - corrupt) / (clean - corrupt) of the raw grid', async () => {
    const out = parseJson<PatchOut>(await patch('resid_pre', metricFlag(cases), '--normalize', '--json'));
    expect(out.shape).toEqual([2, clean.length]);
    // clean and corrupt stay the raw metrics; values are normalized by them.
    expect(Math.abs(out.clean - cases.clean_logit_diff)).toBeLessThanOrEqual(TOL);
    expect(Math.abs(out.corrupt - cases.corrupt_logit_diff)).toBeLessThanOrEqual(TOL);
    const raw = await patchingSweep(model, clean, corrupt, 'resid_pre', metricOf(cases));
    const want = Array.from(raw.values, (m) => (m - raw.corrupt) / (raw.clean - raw.corrupt));
    expect(maxDiff(flatten(out.values, out.shape), want)).toBeLessThanOrEqual(1e-5);
    // Against the fixture's own grid too (1e-3 absolute there, divided by clean - corrupt ≈ 10).
    const fromFixture = cases.resid_pre_patch_corrupt_from_clean.flat().map((m) => (m - cases.corrupt_logit_diff) / (cases.clean_logit_diff - cases.corrupt_logit_diff));
    expect(maxDiff(flatten(out.values, out.shape), fromFixture)).toBeLessThanOrEqual(TOL);
  });

  test('--site pattern_by_pos with a log-prob metric equals patchingSweep', async () => {
    const out = parseJson<PatchOut>(await patch('pattern_by_pos', 'logprob:16:247', '--json'));
    await expectLibraryGrid(out, 'pattern_by_pos', logProbMetric(16, 247));
  });

  test("sweep-ablate --mode mean equals headAblationSweep (mean over the prompt's positions)", async () => {
    const out = parseJson<SweepAblateOut>(await runCli(['sweep-ablate', dir, '--ids', clean.join(','), '--mode', 'mean', '--metric', metricFlag(cases), '--json']));
    const lib = await headAblationSweep(model, clean, metricOf(cases), { mode: 'mean' });
    expect(out.shape).toEqual([2, 4]);
    expect(maxDiff(flatten(out.values, out.shape), lib.values)).toBeLessThanOrEqual(1e-5);
    expect(Math.abs(out.unablated - lib.clean)).toBeLessThanOrEqual(1e-5);
    // Mean-ablation is not zero-ablation.
    const zero = cases.head_zero_ablation_on_clean.find((c) => c.layer === 1 && c.head === 3)!;
    expect(Math.abs(out.values[1][3] - zero.logit_diff)).toBeGreaterThan(0.1);
  });

  /**
   * Under a budget with room for only a few rows of a pass, the sweep engine sizes its passes to
   * fit (freeing each group's plan before the next) and gives the same grid in more passes.
   */
  test('the patching sweep under a GPU budget too small for one pass: same grid, more passes', async () => {
    const pool = model.gpu.pool;
    const whole = await patchingSweep(model, clean, corrupt, 'resid_pre', metricOf(cases));
    const previousBudget = pool.budgetBytes;
    pool.trim(); // free buffers count as live: drop them so that all the room left is new
    // Room for the clean and corrupted runs' caches and logits, and passes of a few rows only.
    pool.budgetBytes = pool.liveBytes + pool.weightBytes + 0.5 * 2 ** 20;
    try {
      const small = await patchingSweep(model, clean, corrupt, 'resid_pre', metricOf(cases));
      expect(small.stats.passes).toBeGreaterThan(whole.stats.passes);
      expect(maxDiff(small.values, whole.values)).toBeLessThanOrEqual(1e-5);
      cases.resid_pre_patch_corrupt_from_clean.flat().forEach((want, i) => expect(Math.abs(small.values[i] - want)).toBeLessThanOrEqual(TOL));
      console.log(`${name}: resid_pre sweep in ${small.stats.passes} passes (${whole.stats.passes} unbudgeted) under a ${(pool.budgetBytes / 2 ** 20).toFixed(1)} MiB budget`);
    } finally {
      pool.budgetBytes = previousBudget;
    }
  });

  test('a 3-D grid without --json prints one table per leading index', async () => {
    const r = await patch('block_every', metricFlag(cases));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/block_every: 3 components × 2 layers × 17 positions = 102 patched runs in/);
    for (const c of ['resid_pre', 'attn_out', 'mlp_out']) expect(r.stdout).toContain(`  component ${c}:`);
    const lines = r.stdout.trimEnd().split('\n');
    const headers = lines.filter((l) => /^\s+L\\p(\s+\d+){17}$/.test(l));
    expect(headers).toHaveLength(3);
    const rows = lines.slice(-2).map((l) => l.trim().split(/\s+/));
    expect(rows.map((cells) => cells.length)).toEqual([18, 18]);
  });

  test('a 4-D grid prints one positions x heads table per (component, layer)', async () => {
    const r = await patch('head_by_pos_every', metricFlag(cases));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/head_by_pos_every: 5 components × 2 layers × 17 positions × 4 heads = 680 patched runs in/);
    for (const c of ['z', 'q', 'k', 'v', 'pattern']) for (const l of [0, 1]) expect(r.stdout).toContain(`  component ${c}, layer ${l}:`);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines.filter((l) => /^\s+P\\h(\s+\d+){4}$/.test(l))).toHaveLength(10);
    expect(lines.at(-1)!.trim().split(/\s+/)).toHaveLength(5); // position 16, then 4 heads
  });
});

describe('patchbay bench', () => {
  test('--batch 2 --pos 8 --reps 3 --json prints the adapter and positive times', async () => {
    const out = parseJson<Record<string, unknown>>(await runCli(['bench', fixtureDir('tiny-gpt2-random'), '--batch', '2', '--pos', '8', '--reps', '3', '--json']));
    expect(Object.keys(out).sort()).toEqual(['adapter', 'batch', 'median_ms', 'min_ms', 'pos']);
    expect(typeof out.adapter).toBe('string');
    expect((out.adapter as string).length).toBeGreaterThan(0);
    expect(out.batch).toBe(2);
    expect(out.pos).toBe(8);
    for (const k of ['median_ms', 'min_ms'] as const) {
      expect(typeof out[k]).toBe('number');
      expect(out[k] as number).toBeGreaterThan(0);
    }
    expect(out.min_ms as number).toBeLessThanOrEqual(out.median_ms as number);
  });
});

describe('sweep commands reject bad input with one line', () => {
  const dir = fixtureDir('tiny-gpt2-random'); // 2 layers, 4 heads, vocab 1000, n_ctx 64
  const ids = '1,2,3,4';

  /** The failure contract: exit 2 (usage), nothing on stdout, one `patchbay: ` line matching `problem`. */
  function expectUsageError(r: CliResult, problem: RegExp): void {
    expect(r.code, `exit code; stderr: ${r.stderr}`).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.errorLines).toHaveLength(1);
    expect(r.errorLines[0]).toMatch(/^patchbay: /);
    expect(r.errorLines[0]).toMatch(problem);
  }

  test('patch: unknown site, listing the sites', async () => {
    const r = await runCli(['patch', dir, '--clean', ids, '--corrupt', '5,6,7,8', '--site', 'head_out', '--metric', 'logit-diff:3:1:2']);
    expectUsageError(
      r,
      /--site head_out: unknown site; the sites are resid_pre, resid_mid, resid_post, attn_out, mlp_out, block_every, z, q, k, v, pattern, z_by_pos, q_by_pos, k_by_pos, v_by_pos, pattern_by_pos, pattern_dest_src, head_all_pos_every, head_by_pos_every$/,
    );
  });

  test.each([
    ['perplexity:0:3', /--metric perplexity:0:3: unknown metric "perplexity"; expected logit-diff:POS:GOOD:BAD, logprob:POS:TOKEN, prob:POS:TOKEN or loss:START:END/],
    ['prob:3', /--metric prob:3: expected prob:POS:TOKEN/],
    ['logprob:3:1:2', /--metric logprob:3:1:2: expected logprob:POS:TOKEN/],
    ['logprob:x:1', /POS "x" is not an integer or a quoted token; expected logprob:POS:TOKEN/],
    ['prob:4:1', /position 4 is out of range; the prompt has 4 positions/],
    ['prob:3:1000', /token 1000 is not in the vocabulary .*d_vocab 1000/],
    ['loss:2:2', /START 2 must be less than END 2/],
    ['loss:0:4', /END 4 is out of range; the prompt has 4 positions and the last one has no next token, so END <= 3/],
    ['loss:0', /--metric loss:0: expected loss:START:END/],
  ])('sweep-ablate --metric %s', async (metric, problem) => {
    expectUsageError(await runCli(['sweep-ablate', dir, '--ids', ids, '--metric', metric, '--json']), problem);
  });

  test('sweep-ablate: unknown mode', async () => {
    expectUsageError(await runCli(['sweep-ablate', dir, '--ids', ids, '--mode', 'resample', '--metric', 'prob:3:1']), /--mode resample: unknown mode; expected zero or mean/);
  });

  test('bench: --pos past n_ctx', async () => {
    expectUsageError(await runCli(['bench', dir, '--batch', '1', '--pos', '65', '--json']), /--pos 65 is more than the model's context: n_ctx 64/);
  });

  test('bench: --batch not a positive integer', async () => {
    expectUsageError(await runCli(['bench', dir, '--batch', '0', '--pos', '8']), /--batch 0: expected a positive integer/);
  });
});
