/**
 * The CLI's contract on results and arguments it cannot honour:
 * - non-finite metrics are written into --json as the strings "NaN", "Infinity", "-Infinity"
 *   (JSON has no such numbers), and the command exits 1 unless --allow-nonfinite is given;
 * - --out is checked before the model is loaded (a folder, an unwritable path), and no
 *   temporary file is left behind when a run fails;
 * - options that the model's config rules out (a token id outside the vocabulary, patching
 *   resid_mid in a parallel-residual block) are usage errors (exit 2) before any weights load.
 */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { SafetensorsFile, writeSafetensors } from '../../src/model/safetensors.ts';
import { checkpointFiles, neoxCheckpoint } from '../helpers/checkpoints.ts';
import { projectRoot, runCli, type CliResult } from '../helpers/run-cli.ts';

const fixtureDir = (name: string) => resolve(projectRoot, 'tests/fixtures', name);
const tmp = mkdtempSync(join(tmpdir(), 'patchbay-cli-'));

function expectError(r: CliResult, code: number, problem: RegExp): void {
  expect(r.code, `exit code; stderr: ${r.stderr}`).toBe(code);
  expect(r.errorLines, r.stderr).toHaveLength(1);
  expect(r.errorLines[0]).toMatch(/^patchbay: /);
  expect(r.errorLines[0]).toMatch(problem);
}

describe('non-finite metrics', () => {
  // induction-2l with ln_final's bias at +Infinity in d_model 0: every logit is
  // +-Infinity, with the sign of W_E[v, 0]. A logit difference of a positive-sign and a
  // negative-sign token is +Infinity, the reverse -Infinity, and of two positive ones NaN.
  const dir = join(tmp, 'inf-model');
  const pos: number[] = [];
  const neg: number[] = [];
  const ids = '0,200,290,288,235,361,417,247,69,18,454,200,290,288,235,361,417';
  const corrupt = '0,374,411,18,486,308,403,72,372,134,242,200,290,288,235,361,417';
  beforeAll(() => {
    const src = fixtureDir('induction-2l');
    const f = new SafetensorsFile(new Uint8Array(readFileSync(join(src, 'model.safetensors'))), 'model.safetensors');
    const tensors = f.names.map((name) => ({ name, shape: f.info(name).shape, data: f.float32(name).slice() }));
    tensors.find((t) => t.name === 'transformer.ln_f.bias')!.data[0] = Infinity;
    const wte = f.float32('transformer.wte.weight'); // [512, 128]
    for (let v = 1; v < 512 && (pos.length < 2 || neg.length < 1); v++) (wte[v * 128] > 0 ? pos : neg).push(v);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'config.json'), readFileSync(join(src, 'config.json')));
    writeFileSync(join(dir, 'model.safetensors'), writeSafetensors(tensors));
  });

  test('ablate --json writes "Infinity" / "-Infinity" / "NaN" and exits 1; --allow-nonfinite exits 0', async () => {
    const cases: Array<[string, string]> = [
      [`logit-diff:16:${pos[0]}:${neg[0]}`, 'Infinity'],
      [`logit-diff:16:${neg[0]}:${pos[0]}`, '-Infinity'],
      [`logit-diff:16:${pos[0]}:${pos[1]}`, 'NaN'],
    ];
    for (const [metric, want] of cases) {
      const r = await runCli(['ablate', dir, '--ids', ids, '--heads', '0.1', '--metric', metric, '--json']);
      expectError(r, 1, new RegExp(`the metric is not finite \\(${want}\\).*--allow-nonfinite`));
      const out = JSON.parse(r.stdout) as { metric: unknown; logits_at_pos: unknown[] };
      expect(out.metric).toBe(want);
      expect(out.logits_at_pos.every((x) => x === 'Infinity' || x === '-Infinity')).toBe(true);
    }
    const ok = await runCli(['ablate', dir, '--ids', ids, '--heads', '0.1', '--metric', cases[0][0], '--json', '--allow-nonfinite']);
    expect(ok.code, ok.stderr).toBe(0);
    expect((JSON.parse(ok.stdout) as { metric: unknown }).metric).toBe('Infinity');
  });

  test('patch --json writes non-finite cells as strings and exits 1; the summary form exits 1 too', async () => {
    const metric = `logit-diff:16:${pos[0]}:${neg[0]}`;
    const r = await runCli(['patch', dir, '--clean', ids, '--corrupt', corrupt, '--site', 'resid_pre', '--metric', metric, '--json']);
    expectError(r, 1, /not finite.*--allow-nonfinite/);
    const out = JSON.parse(r.stdout) as { values: unknown[][]; clean: unknown; corrupt: unknown };
    expect(out.clean).toBe('Infinity');
    expect(out.values.flat().every((v) => v === 'Infinity')).toBe(true);
    const text = await runCli(['patch', dir, '--clean', ids, '--corrupt', corrupt, '--site', 'resid_pre', '--metric', metric]);
    expectError(text, 1, /not finite/);
    const allowed = await runCli(['sweep-ablate', dir, '--ids', ids, '--metric', metric, '--json', '--allow-nonfinite']);
    expect(allowed.code, allowed.stderr).toBe(0);
    expect((JSON.parse(allowed.stdout) as { unablated: unknown }).unablated).toBe('Infinity');
  });
});

describe('--out', () => {
  const model = fixtureDir('tiny-gpt2-random');

  test('a folder is refused before the model loads, and nothing is left beside it', async () => {
    const parent = mkdtempSync(join(tmp, 'out-'));
    const folder = join(parent, 'acts.safetensors');
    mkdirSync(folder);
    const r = await runCli(['cache', model, '--ids', '1,2,3', '--out', folder]);
    expectError(r, 2, /--out .*acts\.safetensors is a folder/);
    expect(r.stdout).toBe('');
    expect(readdirSync(parent)).toEqual(['acts.safetensors']);
  });

  test('an unwritable path is refused before the model loads', async () => {
    const parent = mkdtempSync(join(tmp, 'out-'));
    writeFileSync(join(parent, 'plain-file'), 'x');
    // A broken model folder: if --out were checked only after loading, this error would show.
    const broken = join(parent, 'broken');
    mkdirSync(broken);
    writeFileSync(join(broken, 'config.json'), readFileSync(join(model, 'config.json')));
    writeFileSync(join(broken, 'model.safetensors'), new Uint8Array(16));
    const r = await runCli(['cache', broken, '--ids', '1,2,3', '--out', join(parent, 'plain-file', 'acts.safetensors')]);
    expectError(r, 2, /--out .*plain-file\/acts\.safetensors: cannot write there/);
  });

  test('a run that fails leaves no temporary file', async () => {
    const parent = mkdtempSync(join(tmp, 'out-'));
    const broken = join(tmp, 'broken-weights');
    mkdirSync(broken, { recursive: true });
    writeFileSync(join(broken, 'config.json'), readFileSync(join(model, 'config.json')));
    writeFileSync(join(broken, 'model.safetensors'), new Uint8Array(16));
    const r = await runCli(['cache', broken, '--ids', '1,2,3', '--out', join(parent, 'acts.safetensors')]);
    expect(r.code).toBe(1);
    expect(readdirSync(parent)).toEqual([]);
  });
});

describe('options the config rules out are usage errors, before loading', () => {
  test.each([
    [['cache', '--ids', '1,1000,3', '--out', join(tmp, 'never.safetensors')]],
    [['ablate', '--ids', '1,1000,3', '--heads', '0.1', '--metric', 'prob:2:1']],
    [['patch', '--clean', '1,2,1000', '--corrupt', '1,2,3', '--site', 'resid_pre', '--metric', 'prob:2:1']],
    [['sweep-ablate', '--ids', '1000,2,3', '--metric', 'prob:2:1']],
  ])('%j: a token id outside the vocabulary exits 2', async ([command, ...rest]) => {
    const r = await runCli([command, fixtureDir('tiny-gpt2-random'), ...rest]);
    expectError(r, 2, /token id 1000 .*not in the vocabulary.*0 \.\. 999/);
  });

  test('patch --site resid_mid on a parallel-residual model names the sites it has', async () => {
    const dir = join(tmp, 'neox-parallel');
    mkdirSync(dir, { recursive: true });
    const files = checkpointFiles(neoxCheckpoint({ use_parallel_residual: true }));
    writeFileSync(join(dir, 'config.json'), files['config.json']);
    writeFileSync(join(dir, 'model.safetensors'), new Uint8Array(16)); // never read: the check comes first
    const r = await runCli(['patch', dir, '--clean', '1,2,3', '--corrupt', '4,5,6', '--site', 'resid_mid', '--metric', 'prob:2:1']);
    expectError(r, 2, /--site resid_mid: GPTNeoXForCausalLM .*parallel.*no resid_mid.*resid_pre, resid_post, attn_out, mlp_out/);
    expect(r.errorLines[0]).not.toMatch(/=>|hookFn|\(\)/);
  });
});
