/**
 * `patchbay cache` end to end, as a child process: a good run writes activations that match the
 * Hugging Face reference, --names filters them, and each kind of bad input exits non-zero with
 * one line that names the problem.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { expectClose } from '../helpers/compare.ts';
import { projectRoot, runCli, type CliResult } from '../helpers/run-cli.ts';

const FIXTURE = resolve(projectRoot, 'tests/fixtures/tiny-gpt2-random'); // vocab 1000, n_ctx 64
const cases = JSON.parse(readFileSync(join(FIXTURE, 'cases.json'), 'utf8')) as { prompts: number[][] };
const idFlags = cases.prompts.flatMap((row) => ['--ids', row.join(',')]);

const tmp = mkdtempSync(join(tmpdir(), 'patchbay-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function readSafetensors(path: string): SafetensorsFile {
  return new SafetensorsFile(new Uint8Array(readFileSync(path)), path);
}

/** The failure contract: non-zero exit, nothing on stdout, one `patchbay: ` line matching `problem`. */
function expectOneLineError(r: CliResult, problem: RegExp): void {
  expect(r.code, `exit code; stderr: ${r.stderr}`).not.toBe(0);
  expect(r.stdout).toBe('');
  expect(r.errorLines).toHaveLength(1);
  expect(r.errorLines[0]).toMatch(/^patchbay: /);
  expect(r.errorLines[0]).toMatch(problem);
}

describe('patchbay cache on tiny-gpt2-random', () => {
  const reference = readSafetensors(join(FIXTURE, 'activations.safetensors'));

  test('writes every reference activation and the logits, matching Hugging Face', async () => {
    const out = join(tmp, 'all.safetensors');
    const r = await runCli(['cache', FIXTURE, ...idFlags, '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.errorLines).toEqual([]);
    expect(r.stdout).toMatch(/2 × 12 tokens/);

    const got = readSafetensors(out);
    // The reference holds a subset of TransformerLens' hook points (no hook_scale, hook_attn_scores).
    for (const name of reference.names) {
      expect(got.has(name), `${name} missing from the output`).toBe(true);
      expect(got.info(name).shape, name).toEqual(reference.info(name).shape);
      expectClose(name, got.float32(name), reference.float32(name));
    }
  });

  test("--names 'hook_pattern$' writes only the patterns and the logits", async () => {
    const out = join(tmp, 'patterns.safetensors');
    const r = await runCli(['cache', FIXTURE, ...idFlags, '--out', out, '--names', 'hook_pattern$']);
    expect(r.code, r.stderr).toBe(0);

    const got = readSafetensors(out);
    expect([...got.names].sort()).toEqual(['blocks.0.attn.hook_pattern', 'blocks.1.attn.hook_pattern', 'logits']);
    for (const name of got.names) expectClose(name, got.float32(name), reference.float32(name));
  });
});

describe('patchbay cache rejects bad input with one line', () => {
  const out = () => join(tmp, 'never-written.safetensors');

  test('missing model folder', async () => {
    const r = await runCli(['cache', join(tmp, 'no-such-model'), '--ids', '1,2', '--out', out()]);
    expectOneLineError(r, /no such model folder: .*no-such-model/);
    expect(existsSync(out())).toBe(false);
  });

  test('malformed safetensors: header length past the end of the file', async () => {
    const dir = mkdtempSync(join(tmp, 'truncated-'));
    copyFileSync(join(FIXTURE, 'config.json'), join(dir, 'config.json'));
    // The first 100 bytes of a good file: its 8-byte header length now points past the end.
    writeFileSync(join(dir, 'model.safetensors'), readFileSync(join(FIXTURE, 'model.safetensors')).subarray(0, 100));
    const r = await runCli(['cache', dir, '--ids', '1,2', '--out', out()]);
    expectOneLineError(r, /model\.safetensors/);
    expect(existsSync(out())).toBe(false);
  });

  test('malformed safetensors: garbage bytes', async () => {
    const dir = mkdtempSync(join(tmp, 'garbage-'));
    copyFileSync(join(FIXTURE, 'config.json'), join(dir, 'config.json'));
    writeFileSync(join(dir, 'model.safetensors'), 'this is not a safetensors file at all');
    const r = await runCli(['cache', dir, '--ids', '1,2', '--out', out()]);
    expectOneLineError(r, /model\.safetensors/);
  });

  test('token id >= vocab', async () => {
    const r = await runCli(['cache', FIXTURE, '--ids', '0,1000', '--out', out()]);
    expectOneLineError(r, /1000.*vocab/);
  });

  test('more tokens than n_ctx', async () => {
    const ids = Array.from({ length: 65 }, (_, i) => i).join(',');
    const r = await runCli(['cache', FIXTURE, '--ids', ids, '--out', out()]);
    expectOneLineError(r, /65 tokens.*64.*n_ctx/);
  });

  test('ragged rows', async () => {
    const r = await runCli(['cache', FIXTURE, '--ids', '1,2,3', '--ids', '1,2,3,4', '--out', out()]);
    expectOneLineError(r, /^patchbay: --ids rows have different lengths: 3, 4$/);
  });

  test('bad --names regex', async () => {
    const r = await runCli(['cache', FIXTURE, '--ids', '1,2', '--out', out(), '--names', 'hook_(pattern']);
    expectOneLineError(r, /--names: invalid regular expression "hook_\(pattern"/);
  });

  test('a token id that is not a non-negative integer', async () => {
    const r = await runCli(['cache', FIXTURE, '--ids', '1,2.5', '--out', out()]);
    expectOneLineError(r, /"2\.5" is not a token id/);
  });

  test('missing --out', async () => {
    const r = await runCli(['cache', FIXTURE, '--ids', '1,2']);
    expectOneLineError(r, /missing --out/);
  });

  test('unknown option', async () => {
    const r = await runCli(['cache', FIXTURE, '--ids', '1,2', '--out', out(), '--frobnicate']);
    expectOneLineError(r, /unknown option --frobnicate/);
  });
});
