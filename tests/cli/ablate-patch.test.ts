/**
 * `patchbay ablate` and `patchbay patch` end to end, as child processes, against the experiments
 * Hugging Face + PyTorch hooks recorded in cases.json (1e-3 absolute, as the fixture README
 * expects): every head's zero-ablation (metric and the 64 recorded logits), the resid_pre patching
 * grid, a mean-ablation checked against the library, and one-line errors for bad options.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { meanHead } from '../../src/hooks/interventions.ts';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { maxAbsDiff } from '../helpers/compare.ts';
import { GPT2_FIXTURES, fixtureCases, fixtureSource, type Cases } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';
import { projectRoot, runCli, type CliResult } from '../helpers/run-cli.ts';

const TOL = 1e-3;

/**
 * A head per fixture whose mean-ablation (over both prompts) lands far from both its
 * zero-ablation and the clean metric: tiny-gpt2-random 0.1: clean 3.23, zero 2.23, mean 1.63;
 * induction-2l 1.3: clean 10.13, zero 4.50, mean 5.76.
 */
const MEAN_HEAD: Record<(typeof GPT2_FIXTURES)[number], [number, number]> = { 'tiny-gpt2-random': [0, 1], 'induction-2l': [1, 3] };

const fixtureDir = (name: string) => resolve(projectRoot, 'tests/fixtures', name);
const metricFlag = (c: Cases) => `logit-diff:${c.metric.position}:${c.metric.good_token}:${c.metric.bad_token}`;

function parseJson<T>(r: CliResult): T {
  expect(r.code, `exit code; stderr: ${r.stderr}`).toBe(0);
  expect(r.errorLines).toEqual([]);
  const lines = r.stdout.trim().split('\n');
  expect(lines, 'one line of JSON on stdout').toHaveLength(1);
  return JSON.parse(lines[0]) as T;
}

interface AblateOut {
  metric: number;
  logits_at_pos: number[];
}
interface PatchOut {
  site: string;
  shape: [number, number];
  values: number[][];
}

describe.each(GPT2_FIXTURES)('patchbay ablate / patch on %s', (name) => {
  const dir = fixtureDir(name);
  const cases = fixtureCases(name);
  const [clean, corrupt] = cases.prompts;
  const V = (JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { vocab_size: number }).vocab_size;

  test('ablate --mode zero reproduces every head of head_zero_ablation_on_clean', async () => {
    const t0 = performance.now();
    let worst = 0;
    for (const c of cases.head_zero_ablation_on_clean) {
      const r = await runCli(['ablate', dir, '--ids', clean.join(','), '--heads', `${c.layer}.${c.head}`, '--mode', 'zero', '--metric', metricFlag(cases), '--json']);
      const out = parseJson<AblateOut>(r);
      expect(out.logits_at_pos, 'the full row of logits').toHaveLength(V);
      const first = c.logits_at_pos!; // the GPT-2 folders' name
      const err = Math.max(Math.abs(out.metric - c.logit_diff), maxAbsDiff(out.logits_at_pos.slice(0, first.length), first));
      expect(err, `head ${c.layer}.${c.head}`).toBeLessThanOrEqual(TOL);
      worst = Math.max(worst, err);
    }
    const n = cases.head_zero_ablation_on_clean.length;
    console.log(`${name}: ${n} CLI head ablations in ${((performance.now() - t0) / 1000).toFixed(1)} s, max |error| ${worst.toExponential(2)}`);
  });

  test('patch --site resid_pre reproduces resid_pre_patch_corrupt_from_clean', async () => {
    const r = await runCli(['patch', dir, '--clean', clean.join(','), '--corrupt', corrupt.join(','), '--site', 'resid_pre', '--metric', metricFlag(cases), '--json']);
    const out = parseJson<PatchOut>(r);
    const expected = cases.resid_pre_patch_corrupt_from_clean;
    expect(out.site).toBe('resid_pre');
    expect(out.shape).toEqual([expected.length, clean.length]);
    expect(out.values.map((row) => row.length)).toEqual(expected.map(() => clean.length));
    let worst = 0;
    expected.forEach((row, l) => {
      const err = maxAbsDiff(out.values[l], row);
      expect(err, `layer ${l}`).toBeLessThanOrEqual(TOL);
      worst = Math.max(worst, err);
    });
    console.log(`${name}: CLI resid_pre patching grid, max |error| ${worst.toExponential(2)}`);
  });

  describe('ablate --mode mean', () => {
    let model: Model;
    beforeAll(async () => {
      model = await loadModel(await testGpu(), await fixtureSource(name));
    });
    afterAll(() => model?.destroy());

    /** The CLI's --mode mean on both prompts as the batch (so the mean pools over rows and positions), and the library's. */
    async function cliAndLibrary(heads: Array<[number, number]>): Promise<{ cli: AblateOut; libMetric: number; libRow: Float32Array }> {
      const rows = [clean, corrupt];
      const headsFlag = heads.map(([l, h]) => `${l}.${h}`).join(',');
      const r = await runCli(['ablate', dir, ...rows.flatMap((row) => ['--ids', row.join(',')]), '--heads', headsFlag, '--mode', 'mean', '--metric', metricFlag(cases), '--json']);
      const cli = parseJson<AblateOut>(r);
      const layers = [...new Set(heads.map(([l]) => l))];
      const plain = await model.run(rows, { cache: layers.map((l) => `blocks.${l}.attn.hook_z`) });
      const ablated = await model.runWithHooks(
        rows,
        heads.map(([l, h]) => meanHead(l, h, plain.cache, { pooled: true })),
      );
      const logits = await ablated.logits.read();
      ablated.release();
      plain.release();
      const p = cases.metric.position;
      const libMetric = logits[p * V + cases.metric.good_token] - logits[p * V + cases.metric.bad_token];
      return { cli, libMetric, libRow: logits.slice(p * V, (p + 1) * V) };
    }

    test('one head: equals the library, and differs from zero-ablation and from no ablation', async () => {
      const [layer, head] = MEAN_HEAD[name];
      const zero = cases.head_zero_ablation_on_clean.find((c) => c.layer === layer && c.head === head)!;
      const { cli, libMetric, libRow } = await cliAndLibrary([[layer, head]]);
      expect(Math.abs(cli.metric - libMetric), 'metric vs library').toBeLessThanOrEqual(TOL);
      expect(maxAbsDiff(cli.logits_at_pos, libRow), 'logits vs library').toBeLessThanOrEqual(TOL);
      expect(Math.abs(cli.metric - zero.logit_diff), `mean vs zero ablation of ${layer}.${head}`).toBeGreaterThan(0.1);
      expect(Math.abs(cli.metric - cases.clean_logit_diff), 'mean ablation vs none').toBeGreaterThan(0.1);
      console.log(`${name}: head ${layer}.${head}: clean ${cases.clean_logit_diff.toFixed(3)}, zero ${zero.logit_diff.toFixed(3)}, mean ${cli.metric.toFixed(3)}`);
    });

    test('heads in both layers together: equals the library', async () => {
      const { cli, libMetric, libRow } = await cliAndLibrary([
        [0, 1],
        [1, 3],
      ]);
      expect(Math.abs(cli.metric - libMetric), 'metric vs library').toBeLessThanOrEqual(TOL);
      expect(maxAbsDiff(cli.logits_at_pos, libRow), 'logits vs library').toBeLessThanOrEqual(TOL);
    });
  });
});

describe('ablate / patch summaries without --json', () => {
  const name = 'induction-2l';
  const dir = fixtureDir(name);
  const cases = fixtureCases(name);
  const [clean, corrupt] = cases.prompts;

  test('ablate prints the ablated and unablated metric', async () => {
    const r = await runCli(['ablate', dir, '--ids', clean.join(','), '--heads', '0.2,1.3', '--metric', metricFlag(cases)]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/ablated +0\.2, 1\.3: hook_z set to 0/);
    const unablated = Number(/unablated (-?[\d.]+)/.exec(r.stdout)?.[1]);
    expect(Math.abs(unablated - cases.clean_logit_diff)).toBeLessThanOrEqual(TOL);
  });

  test('patch prints the clean and corrupt metric and the grid', async () => {
    const r = await runCli(['patch', dir, '--clean', clean.join(','), '--corrupt', corrupt.join(','), '--site', 'resid_pre', '--metric', metricFlag(cases)]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/resid_pre: 2 layers × 17 positions = 34 patched runs in (one batched pass|\d+ batched passes)/);
    const [, cleanText, corruptText] = /clean (-?[\d.]+), corrupt (-?[\d.]+)/.exec(r.stdout) ?? [];
    expect(Math.abs(Number(cleanText) - cases.clean_logit_diff)).toBeLessThanOrEqual(TOL);
    expect(Math.abs(Number(corruptText) - cases.corrupt_logit_diff)).toBeLessThanOrEqual(TOL);
    // The grid: a header of positions, then one row per layer with 17 values.
    const gridRows = r.stdout
      .trimEnd()
      .split('\n')
      .slice(-2)
      .map((line) => line.trim().split(/\s+/));
    expect(gridRows.map((cells) => cells.length)).toEqual([18, 18]);
    expect(gridRows.map((cells) => cells[0])).toEqual(['0', '1']);
  });
});

describe('ablate / patch reject bad input with one line', () => {
  const dir = fixtureDir('tiny-gpt2-random'); // 2 layers, 4 heads, vocab 1000
  const ids = '1,2,3,4';

  /** The failure contract: exit 2 (usage), nothing on stdout, one `patchbay: ` line matching `problem`. */
  function expectUsageError(r: CliResult, problem: RegExp): void {
    expect(r.code, `exit code; stderr: ${r.stderr}`).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.errorLines).toHaveLength(1);
    expect(r.errorLines[0]).toMatch(/^patchbay: /);
    expect(r.errorLines[0]).toMatch(problem);
  }
  const ablate = (...extra: string[]) => runCli(['ablate', dir, '--ids', ids, ...extra]);
  const patch = (...extra: string[]) => runCli(['patch', dir, ...extra]);

  test.each([
    ['logit-diff:1:2', /--metric logit-diff:1:2: expected logit-diff:POS:GOOD:BAD/],
    ['logit_diff:1:2:3', /unknown metric "logit_diff"; expected logit-diff:POS:GOOD:BAD/],
    ['logit-diff:x:2:3', /POS "x" is not an integer or a quoted token; expected logit-diff:POS:GOOD:BAD/],
    ['logit-diff', /expected logit-diff:POS:GOOD:BAD/],
  ])('bad metric syntax %s', async (metric, problem) => {
    expectUsageError(await ablate('--heads', '0.1', '--metric', metric), problem);
  });

  test('metric position past the prompt', async () => {
    expectUsageError(await ablate('--heads', '0.1', '--metric', 'logit-diff:4:1:2'), /position 4 is out of range; the prompt has 4 positions/);
  });

  test('metric token outside the vocabulary', async () => {
    expectUsageError(await ablate('--heads', '0.1', '--metric', 'logit-diff:3:1:1000'), /BAD token 1000 is not in the vocabulary .*d_vocab 1000/);
  });

  test('head layer out of range', async () => {
    expectUsageError(await ablate('--heads', '0.1,2.0', '--metric', 'logit-diff:3:1:2'), /head 2\.0: layer 2 is out of range; the model has 2 layers \(n_layers\)/);
  });

  test('head index out of range', async () => {
    expectUsageError(await ablate('--heads', '1.4', '--metric', 'logit-diff:3:1:2'), /head 1\.4: head 4 is out of range; the model has 4 heads per layer \(n_heads\)/);
  });

  test('malformed head', async () => {
    expectUsageError(await ablate('--heads', '1-3', '--metric', 'logit-diff:3:1:2'), /"1-3" is not a head; expected L\.H/);
  });

  test('unknown mode', async () => {
    expectUsageError(await ablate('--heads', '1.3', '--mode', 'resample', '--metric', 'logit-diff:3:1:2'), /--mode resample: unknown mode; expected zero or mean/);
  });

  test('clean and corrupt of different lengths', async () => {
    expectUsageError(
      await patch('--clean', '1,2,3', '--corrupt', '1,2', '--site', 'resid_pre', '--metric', 'logit-diff:1:1:2'),
      /--clean has 3 tokens and --corrupt 2; patching needs prompts of equal length/,
    );
  });

  test('unknown site', async () => {
    expectUsageError(
      await patch('--clean', '1,2,3', '--corrupt', '4,5,6', '--site', 'attn_z', '--metric', 'logit-diff:1:1:2'),
      /--site attn_z: unknown site; the sites are resid_pre, resid_mid, resid_post, attn_out, mlp_out, block_every, z, q, k, v, pattern, z_by_pos, .*pattern_by_pos, pattern_dest_src, head_all_pos_every, head_by_pos_every$/,
    );
  });

  test('patch metric position past the prompt', async () => {
    expectUsageError(await patch('--clean', '1,2,3', '--corrupt', '4,5,6', '--site', 'resid_pre', '--metric', 'logit-diff:3:1:2'), /position 3 is out of range; the prompt has 3 positions/);
  });

  test('missing --site', async () => {
    expectUsageError(await patch('--clean', '1,2,3', '--corrupt', '4,5,6', '--metric', 'logit-diff:1:1:2'), /missing --site/);
  });
});
