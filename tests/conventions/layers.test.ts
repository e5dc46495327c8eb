/**
 * Layers import only downwards: gpu → model → features → hooks → experiments → export →
 * the public API (src/index.ts) → components / cli. Folders of one rank do not import each
 * other; util and shaders are below everything. A new folder under src/ needs a rank here.
 *
 *   gpu          devices, buffers, kernels and their CPU references
 *   model        configs, checkpoints, weights, the forward and backward plans, hook point
 *                names and shapes, metrics on the logits
 *   features     SAEs and transcoders: configs, loaders, the GPU module
 *   hooks        running a model: interventions, caches, SAE splicing, `Model` and `loadModel`
 *   experiments  sweeps, patching, attribution, specs, snapshots (and train, beside them)
 *   export       Python scripts written from specs
 *   components   the figures; cli: the command line
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, test } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const src = join(root, 'src');

const RANK: Record<string, number> = {
  util: 0,
  shaders: 0,
  gpu: 1,
  model: 2,
  features: 3,
  hooks: 4,
  experiments: 5,
  train: 5,
  export: 6,
  'index.ts': 7,
  components: 8,
  cli: 8,
};

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** The layer of a file: its folder under src/ (or src/index.ts itself, or shaders/). */
function layerOf(file: string): string {
  const rel = relative(root, file).split('/');
  if (rel[0] === 'shaders') return 'shaders';
  if (rel[0] !== 'src') return rel[0];
  return rel[1];
}

/** Relative module specifiers of `import … from`, `export … from`, `import '…'` and `import('…')`. */
export function importsOf(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'";]*?(?:from\s*)?['"](\.{1,2}\/[^'"]+)['"]|\bimport\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g)) out.push(m[1] ?? m[2]);
  return out;
}

const files = walk(src);
const violations = files.flatMap((file) => {
  const from = layerOf(file);
  return importsOf(readFileSync(file, 'utf8')).flatMap((spec) => {
    const to = layerOf(resolve(dirname(file), spec));
    if (to === from) return [];
    return RANK[to] < RANK[from] ? [] : [`${relative(root, file)} (${from}) imports ${spec} (${to})`];
  });
});

describe('layers import only downwards', () => {
  test('every folder under src/ has a rank', () => {
    const unranked = [...new Set(files.map(layerOf))].filter((l) => !(l in RANK));
    expect(unranked, 'give each new folder a rank in tests/conventions/layers.test.ts').toEqual([]);
  });

  test('the import scanner finds every form of import', () => {
    const text = `import a from './a.ts';\nimport type { B } from '../b.ts';\nexport * from '../c.ts';\nimport {\n  d,\n} from './d.ts';\nimport './e.ts';\nconst f = await import('./f.ts');\nimport g from 'lit';`;
    expect(importsOf(text)).toEqual(['./a.ts', '../b.ts', '../c.ts', './d.ts', './e.ts', './f.ts']);
  });

  test('no file imports a layer above its own, or a sibling layer', () => {
    expect(violations).toEqual([]);
  });
});
