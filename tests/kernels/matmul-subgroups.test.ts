/**
 * matmul v6 on subgroups of 16 and 32 lanes (32 is NVIDIA's and Apple's width), for real:
 * lavapipe's subgroup size follows its vector width, so a child process started with
 * LP_NATIVE_VECTOR_WIDTH=512 or 1024 gets a device with 16- or 32-wide subgroups (this host's
 * own is 8; matmul.test.ts covers it and the sizes below it). The child
 * (subgroup-matmul-child.ts) runs v6 at the device's size and every smaller one against the CPU
 * reference and against v5 bit for bit; here each result is judged.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../helpers/run-cli.ts';

interface ChildResult {
  adapter: string;
  subgroupSize: number | null;
  entry: string;
  cases: Array<{ name: string; entry: string; diff: number | null; bound: number; sameAsV5: boolean }>;
}

function child(vectorWidth: number): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', 'tests/kernels/subgroup-matmul-child.ts'], {
      cwd: projectRoot,
      env: { ...process.env, LP_NATIVE_VECTOR_WIDTH: String(vectorWidth), XDG_RUNTIME_DIR: '/tmp' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    p.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    p.on('error', reject);
    p.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (code !== 0 || !line) reject(new Error(`child exited ${code}: ${err.slice(-2000)}`));
      else resolve(JSON.parse(line) as ChildResult);
    });
  });
}

describe.each([
  [512, 16],
  [1024, 32],
])('matmul v6 with LP_NATIVE_VECTOR_WIDTH=%i (%i-wide subgroups)', (width, lanes) => {
  it('is pinned on such a device, matches the CPU reference and equals v5 bit for bit at every size up to it', async () => {
    const r = await child(width);
    expect(r.subgroupSize, `${r.adapter}: the device's subgroup size`).toBe(lanes);
    expect(r.entry).toBe('v6');
    const sizes = new Set(r.cases.map((c) => c.name.split(' ')[0]));
    expect([...sizes]).toEqual([`S=${lanes}`, ...[1, 4, 8, 16].filter((s) => s < lanes).map((s) => `S=${s}`)]);
    for (const c of r.cases) {
      expect(c.entry, c.name).toBe('v6');
      expect(c.diff, `${c.name}: max |diff| (null: a row outside the table was written)`).not.toBeNull();
      expect(c.diff!, `${c.name}: max |diff| vs bound`).toBeLessThanOrEqual(c.bound);
      expect(c.sameAsV5, `${c.name}: bit-identical to v5`).toBe(true);
    }
  }, 300_000);
});
