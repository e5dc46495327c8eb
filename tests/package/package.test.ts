/**
 * The published package, as a consumer gets it: `npm pack` (its prepack compiles lib/ with
 * tsconfig.build.json), the tarball unpacked into node_modules/patchbay of a fresh folder outside
 * the repository, its runtime dependencies linked from this checkout's node_modules (what `npm
 * install` would fetch, without the network), and no tsx anywhere that folder can reach. Then:
 * - the tarball holds lib/ (JavaScript and typings for every source file), bin/, package.json and
 *   the README, and nothing else (no sources, tests or fixtures);
 * - without `webgpu` (a browser-only install) the library loads and asking for a GPU in Node says
 *   which package to install, and so does the CLI;
 * - with `webgpu` linked (a Node install), plain Node runs the library and the CLI on
 *   induction-2l and reproduces the recorded head 0.2 zero-ablation (1e-3, as the CLI tests);
 * - a consumer's TypeScript compiles against the typings with only WebGPU's types in scope.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { maxAbsDiff } from '../helpers/compare.ts';
import { fixtureCases } from '../helpers/fixtures.ts';
import { projectRoot } from '../helpers/run-cli.ts';

const TOL = 1e-3;

interface PackageJson {
  name: string;
  version: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
  peerDependenciesMeta: Record<string, { optional?: boolean }>;
  optionalDependencies?: Record<string, string>;
}
const pkg = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as PackageJson;
const cases = fixtureCases('induction-2l');
const head02 = cases.head_zero_ablation_on_clean.find((c) => c.layer === 0 && c.head === 2)!;
const [clean] = cases.prompts;
const { position, good_token: good, bad_token: bad } = cases.metric;
const installWebgpu = `npm install webgpu@${pkg.peerDependencies.webgpu}`;

let tmp = '';
let app = '';
let files: string[] = [];

/** Runs plain `node` (no loader) in the consumer's folder. */
function node(args: string[]) {
  const r = spawnSync(process.execPath, args, {
    cwd: app,
    env: { ...process.env, XDG_RUNTIME_DIR: '/tmp', PATCHBAY_DEBUG: '', NODE_OPTIONS: '' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  // Dawn's own startup warnings on lavapipe ("Warning: maxDynamic… artificially reduced …").
  const errorLines = r.stderr.split('\n').filter((l) => l !== '' && !/^Warning: /.test(l));
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, errorLines };
}

/** Links node_modules/NAME in the consumer's folder to this checkout's copy. */
function link(name: string) {
  const to = join(app, 'node_modules', name);
  mkdirSync(dirname(to), { recursive: true });
  symlinkSync(join(projectRoot, 'node_modules', name), to, 'dir');
}

const bin = () => join(app, 'node_modules/patchbay/bin/patchbay.js');
const fixture = join(projectRoot, 'tests/fixtures/induction-2l');
const ablateArgs = () => [bin(), 'ablate', fixture, '--ids', clean.join(','), '--heads', '0.2', '--metric', `logit-diff:${position}:${good}:${bad}`, '--json'];

/** The library through its package name: head 0.2 zero-ablated on the clean prompt. */
const LIBRARY_SCRIPT = `
import { openAsBlob } from 'node:fs';
import { acquireGpu, blobModelSource, loadModel, logitDiff, zeroHead, NoWebGPUError } from 'patchbay';
let gpu;
try {
  gpu = await acquireGpu();
} catch (e) {
  console.log(JSON.stringify({ error: e.message, noWebGPU: e instanceof NoWebGPUError }));
  process.exit(0);
}
const dir = ${JSON.stringify(fixture)};
const model = await loadModel(gpu, blobModelSource({
  'config.json': await openAsBlob(dir + '/config.json'),
  'model.safetensors': await openAsBlob(dir + '/model.safetensors'),
}));
const r = await model.runWithHooks([${JSON.stringify(clean)}], [zeroHead(0, 2)]);
console.log(JSON.stringify({ metric: logitDiff(await r.logits.read(), r.logits.shape, ${position}, ${good}, ${bad}) }));
process.exit(0);
`;

/** A consumer's TypeScript: the public API's types and WebGPU's, strict, library types checked. */
const CONSUMER_TS = `
import { acquireGpu, loadModel, zeroHead, patchFrom, type Model, type Grid } from 'patchbay';
import 'patchbay/components';
const gpu = await acquireGpu();
const device: GPUDevice = gpu.device;
const model: Model = await loadModel(gpu, 'https://example.org/models/induction-2l/');
const run = await model.runWithCache([[0, 1, 2]]);
const patched = await model.runWithHooks([[0, 1, 3]], [patchFrom('blocks.1.hook_resid_pre', run.cache, { pos: 2 }), zeroHead(0, 1)]);
const logits: Float32Array = await patched.logits.read();
const grid: Grid | null = null;
const element: HTMLElement = document.createElement('pb-model');
console.log(device.label, logits.length, grid, element.tagName);
`;

describe('the packed package', () => {
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'patchbay-package-'));
    execFileSync('npm', ['pack', '--pack-destination', tmp], { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    const tarball = join(tmp, `${pkg.name}-${pkg.version}.tgz`);
    files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map((f) => f.replace(/^package\//, ''));
    app = join(tmp, 'app');
    mkdirSync(join(app, 'node_modules/patchbay'), { recursive: true });
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    execFileSync('tar', ['-xzf', tarball, '-C', join(app, 'node_modules/patchbay'), '--strip-components=1']);
    for (const name of Object.keys(pkg.dependencies)) link(name);
  }, 240_000);

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test('declares webgpu an optional peer, and tsx and onnxruntime-web no runtime dependency', () => {
    expect(pkg.peerDependenciesMeta.webgpu?.optional).toBe(true);
    expect(pkg.devDependencies.webgpu, 'the repository itself tests on Dawn').toBeDefined();
    const runtime = { ...pkg.dependencies, ...pkg.optionalDependencies };
    for (const name of ['webgpu', 'tsx', 'onnxruntime-web']) expect(runtime[name], name).toBeUndefined();
    expect(pkg.devDependencies['onnxruntime-web'], 'bench/peer/package.json holds it').toBeUndefined();
  });

  test('holds lib/ for every source file, bin/, package.json and the README, and nothing else', () => {
    const outside = files.filter((f) => !/^(lib\/.+\.(js|d\.ts)|bin\/patchbay\.js|package\.json|README\.md)$/.test(f));
    expect(outside).toEqual([]);
    const sources = (dir: string): string[] =>
      readdirSync(join(projectRoot, dir), { recursive: true, encoding: 'utf8' })
        .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
        .map((f) => `${dir}/${f}`);
    const missing = [...sources('src'), ...sources('shaders')].filter((f) => !files.includes(`lib/${f.replace(/\.ts$/, '.js')}`));
    expect(missing).toEqual([]);
    expect(files).toContain('lib/src/index.d.ts');
    expect(files).toContain('lib/src/components/index.d.ts');
    expect(
      files.filter((f) => f.startsWith('lib/src/cli/') && f.endsWith('.d.ts')),
      'the CLI is no API',
    ).toEqual([]);
  });

  test('the consumer folder cannot reach tsx or the repository', () => {
    expect(relative(projectRoot, app).startsWith('..')).toBe(true);
    const require = createRequire(join(app, 'index.js'));
    expect(() => require.resolve('tsx')).toThrow();
    expect(existsSync(join(app, 'node_modules/patchbay/src'))).toBe(false);
  });

  describe('without webgpu (a browser-only install)', () => {
    test('the library loads, and a GPU in Node asks for the webgpu package', () => {
      writeFileSync(join(app, 'library.mjs'), LIBRARY_SCRIPT);
      const r = node(['library.mjs']);
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { error: string; noWebGPU: boolean };
      expect(out.noWebGPU).toBe(true);
      expect(out.error).toContain(installWebgpu);
    });

    test('the CLI exits 1 with the same one-line message', () => {
      const r = node(ablateArgs());
      expect(r.code).toBe(1);
      expect(r.errorLines).toHaveLength(1);
      expect(r.errorLines[0]).toMatch(/^patchbay: /);
      expect(r.errorLines[0]).toContain(installWebgpu);
    });
  });

  describe('with webgpu (a Node install)', () => {
    beforeAll(() => link('webgpu'));

    test('plain Node runs the library and reproduces the recorded ablation', () => {
      const r = node(['library.mjs']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.errorLines).toEqual([]);
      const out = JSON.parse(r.stdout) as { metric: number };
      expect(Math.abs(out.metric - head02.logit_diff)).toBeLessThan(TOL);
    });

    test('the CLI runs without tsx: --version and ablate', () => {
      const v = node([bin(), '--version']);
      expect(v.code, v.stderr).toBe(0);
      expect(v.stdout.trim()).toBe(pkg.version);
      const r = node(ablateArgs());
      expect(r.code, r.stderr).toBe(0);
      expect(r.errorLines).toEqual([]);
      const out = JSON.parse(r.stdout) as { metric: number; logits_at_pos: number[] };
      expect(Math.abs(out.metric - head02.logit_diff)).toBeLessThan(TOL);
      expect(maxAbsDiff(out.logits_at_pos.slice(0, 64), head02.logits_at_pos!)).toBeLessThan(TOL);
    });
  });

  test("a consumer's TypeScript compiles against the typings", () => {
    writeFileSync(join(app, 'use.ts'), CONSUMER_TS);
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          target: 'ES2022',
          module: 'ESNext',
          moduleResolution: 'Bundler',
          lib: ['ES2023', 'DOM', 'DOM.Iterable'],
          types: [], // WebGPU's types come from the package's own typings
          skipLibCheck: false,
        },
        files: ['use.ts'],
      }),
    );
    const tsc = join(projectRoot, 'node_modules/typescript/bin/tsc');
    const r = spawnSync(process.execPath, [tsc, '-p', app], { encoding: 'utf8', timeout: 120_000 });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  }, 150_000);
});
