/** `patchbay cache` on GPT-NeoX and Llama folders writes activations that match Hugging Face. */
import { describe, it, expect } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { expectClose } from '../helpers/compare.ts';
import { fixtureActivations, fixtureCases } from '../helpers/fixtures.ts';
import { runCli } from '../helpers/run-cli.ts';

describe.each(['tiny-llama-random', 'tiny-neox-random'])('patchbay cache on %s', (name) => {
  it('writes every reference tensor, matching', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pb-cache-'));
    try {
      const out = join(dir, 'acts.safetensors');
      const [a, b] = fixtureCases(name).prompts;
      const r = await runCli(['cache', `tests/fixtures/${name}`, '--ids', a.join(','), '--ids', b.join(','), '--out', out]);
      expect(r.errorLines, r.stderr).toEqual([]);
      expect(r.code).toBe(0);
      const got = new SafetensorsFile(new Uint8Array(readFileSync(out)), 'acts.safetensors');
      const ref = fixtureActivations(name);
      for (const n of ref.names) expectClose(n, got.float32(n), ref.float32(n));
      expect(got.has(`blocks.0.attn.hook_rot_q`)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
