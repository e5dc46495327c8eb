/**
 * `--processing transformer-lens` and batches of prompt pairs on the command line, as child
 * processes, against what TransformerLens computed (`tl/`): `cache` writes TransformerLens'
 * processed cache, `patch` reproduces its grids (a 4-pair batch with a metric per pair, and the
 * zero-padded [5, layer, head] grid of a grouped-query model), `sweep-ablate --mode mean` and
 * `bench` take the flag, and prompts patching cannot change are one-line errors.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { expectClose } from '../helpers/compare.ts';
import { fixtureCases } from '../helpers/fixtures.ts';
import { projectRoot, runCli, type CliResult } from '../helpers/run-cli.ts';
import { finiteParts, tlJson, tlSafetensors, type TlGrid, type TlPatching } from '../helpers/tl.ts';

const tmp = mkdtempSync(join(tmpdir(), 'patchbay-cli-processing-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const dir = (name: string) => resolve(projectRoot, 'tests/fixtures', name);

function json<T>(r: CliResult): T {
  expect(r.code, `exit code; stderr: ${r.stderr}`).toBe(0);
  expect(r.errorLines).toEqual([]);
  return JSON.parse(r.stdout.trim()) as T;
}

function oneLineError(r: CliResult, problem: RegExp): void {
  expect(r.code).not.toBe(0);
  expect(r.stdout).toBe('');
  expect(r.errorLines).toHaveLength(1);
  expect(r.errorLines[0]).toMatch(/^patchbay: /);
  expect(r.errorLines[0]).toMatch(problem);
}

const nested = (v: unknown): number[] => (Array.isArray(v) ? v.flatMap(nested) : [v as number]);

describe('--processing transformer-lens', () => {
  test("cache writes TransformerLens' processed cache (tiny-llama-random: RMSNorm, GQA, rotary)", async () => {
    const name = 'tiny-llama-random';
    const out = join(tmp, 'processed.safetensors');
    const ids = fixtureCases(name).prompts.flatMap((row) => ['--ids', row.join(',')]);
    const r = await runCli(['cache', dir(name), ...ids, '--out', out, '--processing', 'transformer-lens']);
    expect(r.code, r.stderr).toBe(0);
    const got = new SafetensorsFile(new Uint8Array(readFileSync(out)), out);
    const ref = tlSafetensors(name, 'processed.safetensors');
    for (const n of ref.names) {
      expect(got.has(n), n).toBe(true);
      const [a, b] = finiteParts(got.float32(n), ref.float32(n), n);
      expectClose(n, a, b);
    }
  });

  test("patch on a batch of 4 pairs, a metric per pair: TransformerLens' batch-mean grid", async () => {
    const name = 'tiny-llama-random';
    const ref = tlJson<{ clean: number[][]; corrupt: number[][]; metrics: string[] } & Record<string, unknown>>(name, 'batch_patching.json');
    const pairs = ref.clean.flatMap((c, n) => ['--clean', c.join(','), '--corrupt', ref.corrupt[n].join(','), '--metric', ref.metrics[n]]);
    const out = json<{ shape: number[]; values: unknown }>(await runCli(['patch', dir(name), ...pairs, '--site', 'z', '--processing', 'transformer-lens', '--json']));
    const want = ref.get_act_patch_attn_head_out_all_pos as TlGrid;
    expect(out.shape).toEqual(want.shape);
    expectClose('batch z grid', nested(out.values), want.values);
  });

  test('patch --site head_all_pos_every on a GQA model: [5, layer, head], k and v padded with 0 as TransformerLens pads them', async () => {
    const name = 'tiny-qwen2-random';
    const ref = tlJson<TlPatching>(name, 'patching.json');
    const [clean, corrupt] = fixtureCases(name).prompts;
    const r = await runCli([
      'patch',
      dir(name),
      '--clean',
      clean.join(','),
      '--corrupt',
      corrupt.join(','),
      '--site',
      'head_all_pos_every',
      '--metric',
      ref.metric,
      '--processing',
      'transformer-lens',
      '--json',
    ]);
    const out = json<{ shape: number[]; values: unknown }>(r);
    const want = ref.get_act_patch_attn_head_all_pos_every as TlGrid;
    expect(out.shape).toEqual(want.shape);
    expectClose('head_all_pos_every', nested(out.values), want.values);
  });

  test('mean-ablating heads gives the same grid with and without processing (fold_value_biases moves a constant out of z)', async () => {
    const name = 'induction-2l';
    const cases = fixtureCases(name);
    const args = [
      'sweep-ablate',
      dir(name),
      '--ids',
      cases.prompts[0].join(','),
      '--mode',
      'mean',
      '--metric',
      `logit-diff:${cases.metric.position}:${cases.metric.good_token}:${cases.metric.bad_token}`,
      '--json',
    ];
    const raw = json<{ values: unknown }>(await runCli(args));
    const processed = json<{ values: unknown }>(await runCli([...args, '--processing', 'transformer-lens']));
    expectClose('mean ablation, processed vs raw', nested(processed.values), nested(raw.values));
  });

  test('bench takes the flag; an unknown processing is a usage error naming the choices', async () => {
    const b = json<{ median_ms: number }>(await runCli(['bench', dir('tiny-gpt2-random'), '--batch', '1', '--pos', '4', '--reps', '1', '--processing', 'transformer-lens', '--json']));
    expect(b.median_ms).toBeGreaterThan(0);
    oneLineError(
      await runCli(['cache', dir('tiny-gpt2-random'), '--ids', '1,2', '--out', join(tmp, 'x.safetensors'), '--processing', 'fold']),
      /--processing fold: unknown processing; expected none or transformer-lens/,
    );
  });
});

describe('patch: prompts patching cannot change', () => {
  const [clean, corrupt] = fixtureCases('induction-2l').prompts;
  const base = ['patch', dir('induction-2l'), '--site', 'resid_pre', '--metric', 'logit-diff:16:247:72', '--json'];

  test('identical --clean and --corrupt, with and without --normalize, alone or as one pair of a batch', async () => {
    oneLineError(await runCli([...base, '--clean', clean.join(','), '--corrupt', clean.join(',')]), /--clean and --corrupt are identical: patching one into the other cannot change anything/);
    oneLineError(await runCli([...base, '--normalize', '--clean', clean.join(','), '--corrupt', clean.join(',')]), /identical/);
    oneLineError(await runCli([...base, '--clean', clean.join(','), '--corrupt', corrupt.join(','), '--clean', corrupt.join(','), '--corrupt', corrupt.join(',')]), /identical \(pair 1\)/);
  });

  test('--normalize with equal clean and corrupted metrics is an error, not a NaN grid', async () => {
    const args = ['patch', dir('induction-2l'), '--site', 'resid_pre', '--metric', 'logit-diff:0:247:72', '--clean', clean.join(','), '--corrupt', corrupt.join(','), '--json'];
    oneLineError(await runCli([...args, '--normalize']), /undefined when they are equal/);
  });
});
