/**
 * Kernel wrappers share one calling convention (src/gpu/kernels/README.md):
 *
 *   kernel(gpu, args, params, version?)
 *
 * `args` names the buffers, sizes and label, `params` collects the uniform buffers the dispatch
 * makes, and `version` (where a kernel has several) picks one. This reads the TypeScript sources
 * of src/gpu/kernels/ and checks every exported function that returns dispatches.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, test } from 'vitest';

const kernels = resolve(import.meta.dirname, '../../src/gpu/kernels');

/** `name: problem` for each exported dispatch-returning function of `text` that breaks the convention. */
export function wrapperViolations(file: string, text: string): string[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: string[] = [];
  for (const st of sf.statements) {
    if (!ts.isFunctionDeclaration(st) || !st.name || !st.modifiers?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)) continue;
    if (!st.type || !/^Dispatch(\[\])?$/.test(st.type.getText(sf))) continue;
    const ps = st.parameters;
    const name = `${file}: ${st.name.text}`;
    if (ps.length > 4) out.push(`${name} takes ${ps.length} parameters (at most gpu, args, params, version)`);
    if (ps[0]?.type?.getText(sf) !== 'Gpu') out.push(`${name}: the first parameter is not the Gpu`);
    const paramsAt = ps.findIndex((p) => p.type?.getText(sf) === 'Params[]');
    if (paramsAt !== -1 && paramsAt !== 2) out.push(`${name}: the Params[] collector is parameter ${paramsAt + 1}, not 3`);
  }
  return out;
}

describe('kernel wrappers', () => {
  test('take (gpu, args, params, version?)', () => {
    const files = readdirSync(kernels).filter((f) => f.endsWith('.ts') && !f.endsWith('.cpu.ts'));
    expect(files.length).toBeGreaterThan(20);
    const violations = files.flatMap((f) => wrapperViolations(f, readFileSync(join(kernels, f), 'utf8')));
    expect(violations).toEqual([]);
  });

  test('the check finds a positional wrapper', () => {
    const positional = 'export function add(gpu: Gpu, out: GPUBuffer, a: GPUBuffer, b: GPUBuffer, n: number, params: Params[], label: string): Dispatch { return null!; }';
    expect(wrapperViolations('x.ts', positional)).toEqual(['x.ts: add takes 7 parameters (at most gpu, args, params, version)', 'x.ts: add: the Params[] collector is parameter 6, not 3']);
    const object = 'export function add(gpu: Gpu, args: AddArgs, params: Params[]): Dispatch { return null!; }';
    expect(wrapperViolations('x.ts', object)).toEqual([]);
  });
});
