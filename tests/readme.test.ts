/** The README's API examples are `examples/*.ts` verbatim, and they run and print the fixture's numbers. */
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');

describe('README example', () => {
  it('is the quickstart file, which runs and reproduces the fixture numbers', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const example = readFileSync(join(root, 'examples/quickstart.ts'), 'utf8');
    expect(readme).toContain(example.trim());
    const out = execFileSync(process.execPath, ['--import', 'tsx', 'examples/quickstart.ts'], {
      cwd: root,
      env: { ...process.env, XDG_RUNTIME_DIR: '/tmp' },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const cases = JSON.parse(readFileSync(join(root, 'tests/fixtures/induction-2l/cases.json'), 'utf8'));
    const num = (re: RegExp) => Number(out.match(re)?.[1]);
    expect(num(/clean logit diff: (-?[\d.]+)/)).toBeCloseTo(cases.clean_logit_diff, 3);
    const h02 = cases.head_zero_ablation_on_clean.find((c: { layer: number; head: number }) => c.layer === 0 && c.head === 2);
    expect(num(/head 0.2 ablated: (-?[\d.]+)/)).toBeCloseTo(h02.logit_diff, 3);
    expect(num(/corrupt: (-?[\d.]+)/)).toBeCloseTo(cases.corrupt_logit_diff, 3);
    expect(num(/patched: (-?[\d.]+)/)).toBeCloseTo(cases.resid_pre_patch_corrupt_from_clean[1][16], 3);
  });

  it('the TransformerLens port is examples/from-transformer-lens.ts, whose attributions add up to the logit differences', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const example = readFileSync(join(root, 'examples/from-transformer-lens.ts'), 'utf8');
    expect(readme).toContain(example.trim());
    const out = execFileSync(process.execPath, ['--import', 'tsx', 'examples/from-transformer-lens.ts'], {
      cwd: root,
      env: { ...process.env, XDG_RUNTIME_DIR: '/tmp' },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const nums = (re: RegExp) => (out.match(re)?.[1] ?? '').split(', ').map(Number);
    const cases = JSON.parse(readFileSync(join(root, 'tests/fixtures/induction-2l/cases.json'), 'utf8'));
    const diffs = nums(/logit differences: (.*)/);
    expect(diffs[0]).toBeCloseTo(cases.clean_logit_diff, 2);
    expect(nums(/attributions \+ b_U difference: (.*)/)).toEqual(diffs);
    expect(out).toMatch(/resid_pre grid \[ 2, 17 \] layer 1, last position: -?\d/);
  });

  it('the training example is examples/train-superposition.ts: the dense instance keeps 2 features, the sparse one 5', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const example = readFileSync(join(root, 'examples/train-superposition.ts'), 'utf8');
    expect(readme).toContain(example.trim());
    const out = execFileSync(process.execPath, ['--import', 'tsx', 'examples/train-superposition.ts'], {
      cwd: root,
      env: { ...process.env, XDG_RUNTIME_DIR: '/tmp' },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    expect(out).toContain('sparsity 0: 2 of 5 features represented');
    expect(out).toContain('sparsity 0.9: 5 of 5 features represented');
    // The loss is reported every 250 updates, per instance.
    expect(out.match(/^step (250|500|750|1000): loss [\d.]+, [\d.]+$/gm)).toHaveLength(4);
  });
});
