/**
 * `patchbay features` and `patchbay cache --sae`, as child processes, on tiny-gemma3-random with
 * its SAE (`sae-resid-post-3`): the features and activations printed, and the SAE hook points
 * written, match the reference's feature activations (rows without a gate the fixture leaves to
 * rounding, see tests/features/sae-fixture.test.ts), and the logits stay the model's.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { expectClose } from '../helpers/compare.ts';
import { projectRoot, runCli } from '../helpers/run-cli.ts';
import { ambiguousGates } from '../features/gates.ts';

const MODEL = resolve(projectRoot, 'tests/fixtures/tiny-gemma3-random');
const SAE = join(MODEL, 'sae-resid-post-3');
const prompts = (JSON.parse(readFileSync(join(MODEL, 'cases.json'), 'utf8')) as { prompts: number[][] }).prompts;
const ref = new SafetensorsFile(new Uint8Array(readFileSync(join(SAE, 'reference.safetensors'))), 'reference');
const w = new SafetensorsFile(new Uint8Array(readFileSync(join(SAE, 'sae_weights.safetensors'))), 'weights');
/** Rows (batch * pos) with a JumpReLU gate within rounding of its threshold. */
const tieRows = new Set([...ambiguousGates(ref.float32('input'), w.float32('W_enc'), w.float32('b_enc'), w.float32('threshold'), 64, 256)].map((i) => Math.floor(i / 256)));
const tmp = mkdtempSync(join(tmpdir(), 'patchbay-cli-sae-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('patchbay features / cache --sae on tiny-gemma3-random', () => {
  test('features --json: the top features of every position, as the reference ranks them', async () => {
    const r = await runCli(['features', MODEL, '--sae', SAE, '--ids', prompts[0].join(','), '--top', '3', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { sae: { hook_name: string; d_sae: number }; rows: Array<Array<{ pos: number; token: number; features: [number, number][] }>> };
    expect(out.sae).toMatchObject({ hook_name: 'blocks.3.hook_resid_post', d_sae: 256, error_term: true });
    const acts = ref.float32('feature_acts');
    const T = prompts[0].length;
    for (let p = 0; p < T; p++) {
      if (tieRows.has(p)) continue;
      const row = Array.from(acts.subarray(p * 256, (p + 1) * 256));
      const top = [...row.keys()]
        .filter((f) => row[f] > 0)
        .sort((a, b) => row[b] - row[a])
        .slice(0, 3);
      const got = out.rows[0][p];
      expect(got.token).toBe(prompts[0][p]);
      expect(
        got.features.map(([f]) => f),
        `position ${p}`,
      ).toEqual(top);
      for (const [f, a] of got.features) expect(Math.abs(a - row[f])).toBeLessThan(1e-4 * Math.max(1, row[f]));
    }
  });

  test("cache --sae writes the SAE hook points; the logits are the model's own", async () => {
    const out = join(tmp, 'acts.safetensors');
    const plain = join(tmp, 'plain.safetensors');
    const ids = prompts.flatMap((p) => ['--ids', p.join(',')]);
    const r = await runCli(['cache', MODEL, ...ids, '--sae', SAE, '--names', 'hook_sae|blocks\\.3\\.hook_resid_post$', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const r2 = await runCli(['cache', MODEL, ...ids, '--names', '^$', '--out', plain]);
    expect(r2.code, r2.stderr).toBe(0);
    const got = new SafetensorsFile(new Uint8Array(readFileSync(out)), out);
    const names = ['input', 'acts_pre', 'acts_post', 'recons', 'error', 'output'].map((s) => `blocks.3.hook_resid_post.hook_sae_${s}`);
    for (const n of names) expect(got.has(n), n).toBe(true);
    expectClose('hook_sae_input', got.float32(names[0]), ref.float32('input'));
    // Rows without a gate left to rounding.
    const rows = (a: Float32Array, width: number) => a.filter((_, i) => !tieRows.has(Math.floor(i / width)));
    expectClose('hook_sae_acts_post', rows(got.float32(names[2]), 256), rows(ref.float32('feature_acts'), 256));
    expectClose('logits', got.float32('logits'), new SafetensorsFile(new Uint8Array(readFileSync(plain)), plain).float32('logits'));
  });

  test('a missing SAE folder is a usage error naming it', async () => {
    const r = await runCli(['features', MODEL, '--sae', join(tmp, 'nope'), '--ids', '2,3']);
    expect(r.code).toBe(2);
    expect(r.errorLines).toEqual([`patchbay: no such SAE folder: ${join(tmp, 'nope')}`]);
  });
});
