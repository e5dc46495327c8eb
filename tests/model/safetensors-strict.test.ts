/**
 * Patchbay's safetensors parser accepts and refuses exactly the files the reference reader (the
 * `safetensors` library) does: 87 crafted files (duplicate names and fields, gaps, overlaps and
 * trailing bytes, a BOM, `2.0` or `-0` where an integer belongs, `"__metadata__": null`, a
 * zero-sized dimension beside one of 2^64 - 1, sizes that overflow, serde_json's number and
 * nesting limits, ...) with the library's verdicts, both made by
 * tests/fixtures/safetensors-strict/make_cases.py. Both readers are checked: the in-memory
 * `SafetensorsFile` and the header-first `SafetensorsReader`.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SafetensorsError, SafetensorsFile, SafetensorsReader } from '../../src/model/safetensors.ts';
import { bytesFile } from '../../src/model/source.ts';
import { FIXTURES } from '../helpers/fixtures.ts';

const DIR = join(FIXTURES, 'safetensors-strict');
const RERUN = 'rerun /work/venv/bin/python tests/fixtures/safetensors-strict/make_cases.py';

interface Verdict {
  what: string;
  ok: boolean;
  error?: string;
  tensors?: Array<[string, string, number[]]>;
}

const file = JSON.parse(readFileSync(join(DIR, 'verdicts.json'), 'utf8')) as { format: string; version: number; library: string; cases: Record<string, Verdict> };

/** Tensors as [name, dtype, shape], sorted like the script's, or the error. */
async function patchbay(bytes: Uint8Array): Promise<{ memory: unknown; reader: unknown }> {
  const list = (f: { names: string[]; info(n: string): { dtype: string; shape: number[] } }) =>
    f.names.map((n) => [n, f.info(n).dtype, f.info(n).shape] as [string, string, number[]]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const run = async (open: () => Promise<{ names: string[]; info(n: string): { dtype: string; shape: number[] } }>) => {
    try {
      return list(await open());
    } catch (e) {
      if (!(e instanceof SafetensorsError)) throw e; // anything else is a crash, not a verdict
      return `refused: ${e.message}`;
    }
  };
  return {
    memory: await run(async () => new SafetensorsFile(bytes, 'case')),
    reader: await run(() => SafetensorsReader.open(bytesFile(bytes), 'case')),
  };
}

describe(`safetensors parsing agrees with the reference library (${file.library})`, () => {
  it('the verdicts file is current: its format, and one verdict per crafted file', () => {
    expect(file.format, RERUN).toBe('patchbay-safetensors-verdicts');
    expect(file.version, RERUN).toBe(1);
    const files = readdirSync(join(DIR, 'cases'))
      .map((f) => f.replace(/\.safetensors$/, ''))
      .sort();
    expect(files, RERUN).toEqual(Object.keys(file.cases).sort());
  });

  it.each(Object.entries(file.cases))('%s', async (name, v) => {
    const bytes = new Uint8Array(readFileSync(join(DIR, 'cases', `${name}.safetensors`)));
    const got = await patchbay(bytes);
    const want = v.ok ? v.tensors!.map(([n, d, s]) => [n, d, s.map(Number)]) : expect.stringMatching(/^refused: case: /);
    expect(got.memory, `${v.what}; the library: ${v.ok ? 'accepted' : v.error}`).toEqual(want);
    expect(got.reader, `${v.what} (header-first reader)`).toEqual(want);
  });
});
