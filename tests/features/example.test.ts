/**
 * The README's features example is `examples/features.ts` verbatim; it runs, and what it prints
 * matches the fixture: the top features at the last token are the reference's (and their
 * activations to 1e-3), the spliced model with the error term is the plain one to fp32 noise,
 * and zeroing a feature moves the logits.
 */
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { GEMMA_SAE, saeReference } from './helpers.ts';

const root = join(import.meta.dirname, '..', '..');

describe('README features example', () => {
  it('is examples/features.ts, which runs and prints the reference features', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const example = readFileSync(join(root, 'examples/features.ts'), 'utf8');
    expect(readme).toContain(example.trim());
    const out = execFileSync(process.execPath, ['--import', 'tsx', 'examples/features.ts'], {
      cwd: root,
      env: { ...process.env, XDG_RUNTIME_DIR: '/tmp' },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    // The reference: prompt 0, position 20 (no gate there is left to rounding).
    const acts = saeReference(GEMMA_SAE)
      .float32('feature_acts')
      .subarray(20 * 256, 21 * 256);
    const top = [...acts.keys()].sort((a, b) => acts[b] - acts[a]).slice(0, 3);
    const printed = [...(out.match(/top features at the last token: (.*)/)?.[1] ?? '').matchAll(/#(\d+) ([\d.]+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
    expect(printed.map(([f]) => f)).toEqual(top);
    for (const [f, a] of printed) expect(Math.abs(a - acts[f])).toBeLessThan(1e-3);
    expect(Number(out.match(/spliced vs plain logits, max \|diff\|: ([\d.e+-]+)/)?.[1])).toBeLessThan(1e-4);
    expect(Number(out.match(/zeroed, max \|logit change\|: ([\d.]+)/)?.[1])).toBeGreaterThan(0.01);
    expect(out).toMatch(/feature ablation sweep: 21 x 2 cells/);
  });
});
