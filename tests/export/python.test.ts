/**
 * Experiments exported to Python (`patchbay export SPEC --to transformers`) reproduce Patchbay:
 * each script runs in the test's .venv (CPU PyTorch + transformers, scripts/setup-python.sh) on
 * the shared fixtures and must print the JSON `patchbay run SPEC --json` prints, every number
 * within 1e-4. The transformers script is also checked against the fixtures' own recorded
 * experiments (cases.json, made with PyTorch hooks by tests/fixtures/make/make_fixtures.py).
 * The nnsight and TransformerLens scripts cannot run here (neither library installs from this
 * machine's mirror): they are compiled with py_compile.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { fixtureCases } from '../helpers/fixtures.ts';
import { runCli } from '../helpers/run-cli.ts';
import { runPython } from '../helpers/python.ts';
import { ROOT } from '../helpers/browser.ts';

const dir = mkdtempSync(join(tmpdir(), 'patchbay-export-'));
let n = 0;

/** Writes a spec for a fixture model (version 1 unless `rest` says otherwise). */
function specFile(fixture: string, rest: Record<string, unknown>): string {
  const path = join(dir, `spec-${n++}.json`);
  writeFileSync(path, JSON.stringify({ patchbay: 1, model: { url: join(ROOT, 'tests/fixtures', fixture) }, ...rest }));
  return path;
}

/** A fixed vector of n values in (-1, 1). */
const vec = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.round(1000 * Math.sin(1 + i * seed)) / 1000);

/** Every number in `a` within 1e-4 × max(1, |b|) of `b`, and the same structure otherwise. */
function expectClose(a: unknown, b: unknown, path = '$'): void {
  if (typeof b === 'number') {
    expect(typeof a, path).toBe('number');
    expect(Math.abs((a as number) - b), `${path}: ${a} vs ${b}`).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(b)));
  } else if (Array.isArray(b)) {
    expect(Array.isArray(a), path).toBe(true);
    expect((a as unknown[]).length, path).toBe(b.length);
    b.forEach((x, i) => expectClose((a as unknown[])[i], x, `${path}[${i}]`));
  } else if (b && typeof b === 'object') {
    expect(Object.keys(a as object).sort(), path).toEqual(Object.keys(b).sort());
    for (const k of Object.keys(b)) expectClose((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`);
  } else expect(a, path).toEqual(b);
}

/**
 * Runs the exported scripts of `specs` in one Python process (importing torch once, not once per
 * script: each script runs as __main__ with its own argv), returning each one's stdout.
 */
async function runScripts(scripts: readonly string[]): Promise<string[]> {
  const driver = join(dir, 'driver.py');
  writeFileSync(
    driver,
    `import contextlib, io, json, runpy, sys
out = []
for path in sys.argv[1:]:
    sys.argv = [path]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        runpy.run_path(path, run_name="__main__")
    out.append(buf.getvalue())
print(json.dumps(out))
`,
  );
  return JSON.parse(await runPython([driver, ...scripts], 300_000)) as string[];
}

const gpt2 = fixtureCases('tiny-gpt2-random');
const ind = fixtureCases('induction-2l');
const neox = JSON.parse(readFileSync(join(ROOT, 'tests/fixtures/tiny-neox-random/cases.json'), 'utf8')) as { prompts: number[][] };
const llama = JSON.parse(readFileSync(join(ROOT, 'tests/fixtures/tiny-llama-random/cases.json'), 'utf8')) as { prompts: number[][] };
const gm = gpt2.metric;
const prompts = (c: { prompts: number[][] }) => ({ clean: c.prompts[0], corrupt: c.prompts[1] });
const gpt2Metric = `logit-diff:${gm.position}:${gm.good_token}:${gm.bad_token}`;

/** The experiments, by name: a fixture model and the rest of a spec. */
const CASES: Record<string, [string, Record<string, unknown>]> = {
  // POS counted from the end: the fixture's position 10 of 12 tokens is -2.
  resid_pre: [
    'tiny-gpt2-random',
    { prompts: prompts(gpt2), experiment: { kind: 'patch', site: 'resid_pre', metric: `logit-diff:${gm.position - gpt2.prompts[0].length}:${gm.good_token}:${gm.bad_token}` } },
  ],
  resid_mid: ['tiny-gpt2-random', { prompts: prompts(gpt2), experiment: { kind: 'patch', site: 'resid_mid', metric: gpt2Metric, normalize: true } }],
  z_by_pos: ['tiny-gpt2-random', { prompts: prompts(gpt2), experiment: { kind: 'patch', site: 'z_by_pos', metric: gpt2Metric } }],
  pattern: ['tiny-gpt2-random', { prompts: prompts(gpt2), experiment: { kind: 'patch', site: 'pattern', metric: gpt2Metric, normalize: true } }],
  k: ['tiny-gpt2-random', { prompts: prompts(gpt2), experiment: { kind: 'patch', site: 'k', metric: gpt2Metric } }],
  resid_post: ['tiny-gpt2-random', { prompts: prompts(gpt2), experiment: { kind: 'patch', site: 'resid_post', metric: gpt2Metric } }],
  block_every: ['induction-2l', { prompts: prompts(ind), experiment: { kind: 'patch', site: 'block_every', metric: 'loss:-7:-1' } }],
  sweep_mean: ['induction-2l', { prompts: { clean: ind.prompts[0] }, experiment: { kind: 'sweep-ablate', metric: 'logit-diff:-1:247:72', mode: 'mean' } }],
  ablate_two: [
    'induction-2l',
    {
      prompts: { clean: ind.prompts[0] },
      interventions: [
        { op: 'zero', hook: 'blocks.0.attn.hook_z', head: 2 },
        { op: 'zero', hook: 'blocks.1.attn.hook_z', head: 3 },
      ],
      experiment: { kind: 'ablate', metric: 'logit-diff:-1:247:72' },
    },
  ],
  ablate_one: [
    'induction-2l',
    { prompts: { clean: ind.prompts[0] }, interventions: [{ op: 'zero', hook: 'blocks.0.attn.hook_z', head: 2 }], experiment: { kind: 'ablate', metric: 'logit-diff:16:247:72' } },
  ],
  neox_q: ['tiny-neox-random', { prompts: prompts(neox), experiment: { kind: 'patch', site: 'q', metric: 'logit-diff:-1:3:5' } }],
  llama_v: ['tiny-llama-random', { prompts: prompts(llama), experiment: { kind: 'patch', site: 'v', metric: 'logit-diff:-1:3:5', normalize: true } }],
  // Version 2: every intervention kind, at hook points of every kind, with selections, several per spec.
  gpt2_every_op: [
    'tiny-gpt2-random',
    {
      patchbay: 2,
      prompts: {
        clean: [gpt2.prompts[0].slice(0, 10), gpt2.prompts[1].slice(0, 10)],
        corrupt: gpt2.prompts[1].slice(2, 12),
        reference: [gpt2.prompts[0].slice(1, 11), gpt2.prompts[1].slice(1, 11), gpt2.prompts[0].slice(2, 12)],
      },
      interventions: [
        { op: 'add', hook: 'hook_embed', pos: 0, vector: vec(64, 0.7), coeff: 2 },
        { op: 'zero', hook: 'hook_pos_embed', pos: [-1, -2] },
        { op: 'zero', hook: 'blocks.0.attn.hook_z', heads: [1], pos: [-1, 2] },
        { op: 'set', hook: 'blocks.0.attn.hook_pattern', heads: 0, pos: [4, 5], key_pos: 0, value: 0.5 },
        { op: 'mean', hook: 'blocks.0.hook_resid_post', pos: 3 },
        { op: 'mean', hook: 'blocks.1.attn.hook_v', heads: 0, pooled: true, batch: 1 },
        { op: 'scale', hook: 'blocks.1.attn.hook_attn_scores', factor: 0.3, batch: 0, key_pos: [0, 1] },
        { op: 'patch', hook: 'blocks.1.hook_attn_out', pos: -2 },
        { op: 'add', hook: 'blocks.1.attn.hook_q', heads: [2, 3], vector: vec(64, 1.3), coeff: -0.5 },
        { op: 'scale', hook: 'blocks.1.mlp.hook_post', factor: 0.5 },
        { op: 'patch', hook: 'blocks.1.hook_resid_mid', from: 'clean', source_batch: 1, batch: 0, pos: [1, 2, 3] },
        { op: 'patch', hook: 'unembed.hook_in', from: 'reference', source_batch: 2, pos: 1 },
        { op: 'scale', hook: 'unembed.hook_out', factor: 1.5, pos: -1 },
      ],
      experiment: { kind: 'ablate', metric: `logit-diff:-1:${gm.good_token}:${gm.bad_token}` },
    },
  ],
  neox_every_op: [
    'tiny-neox-random',
    {
      patchbay: 2,
      prompts: { clean: neox.prompts[0], corrupt: neox.prompts[1], reference: [neox.prompts[1], neox.prompts[0]] },
      interventions: [
        { op: 'zero', hook: 'hook_embed', pos: 3 },
        { op: 'scale', hook: 'blocks.0.attn.hook_rot_q', heads: 1, factor: 2 },
        { op: 'patch', hook: 'blocks.0.attn.hook_k', heads: [0, 3], pos: [-3, -2, -1] },
        { op: 'add', hook: 'blocks.0.mlp.hook_pre', vector: vec(256, 0.3), pos: -1 },
        { op: 'mean', hook: 'blocks.1.hook_resid_pre', pos: [5, 6] },
        { op: 'set', hook: 'blocks.1.attn.hook_rot_k', heads: 2, pos: 0, value: 0.25 },
        { op: 'mean', hook: 'blocks.1.hook_mlp_out', pooled: true, from: 'clean' },
      ],
      experiment: { kind: 'ablate', metric: 'logprob:-1:3' },
    },
  ],
  llama_every_op: [
    'tiny-llama-random',
    {
      patchbay: 2,
      prompts: { clean: [llama.prompts[0], llama.prompts[1]], corrupt: llama.prompts[1] },
      interventions: [
        { op: 'set', hook: 'blocks.0.attn.hook_rot_k', heads: 1, value: 0.1 },
        { op: 'patch', hook: 'blocks.0.attn.hook_attn_scores', heads: [2], pos: -1, key_pos: [0, 4, 8] },
        { op: 'mean', hook: 'blocks.0.attn.hook_v', heads: 0, pooled: true, from: 'clean' },
        { op: 'scale', hook: 'blocks.1.mlp.hook_pre_linear', factor: -1, pos: [-1] },
        { op: 'add', hook: 'blocks.1.attn.hook_z', vector: vec(64, 2.1), batch: 1 },
        { op: 'zero', hook: 'blocks.1.hook_resid_mid', batch: 0, pos: 4 },
      ],
      experiment: { kind: 'ablate', metric: 'loss:0:-1' },
    },
  ],
};

const results = new Map<string, { patchbay: Record<string, unknown>; python: Record<string, unknown> }>();

beforeAll(async () => {
  const names = Object.keys(CASES);
  const specs = names.map((name) => specFile(CASES[name][0], CASES[name][1]));
  const scripts = specs.map((s) => `${s}.py`);
  for (let i = 0; i < specs.length; i++) {
    const exported = await runCli(['export', specs[i], '--to', 'transformers', '--out', scripts[i]]);
    expect(exported.errorLines).toEqual([]);
  }
  const python = runScripts(scripts);
  const runs: string[] = [];
  for (const spec of specs) {
    const r = await runCli(['run', spec, '--json'], 120_000);
    expect(r.errorLines, spec).toEqual([]);
    runs.push(r.stdout);
  }
  const printed = await python;
  names.forEach((name, i) => results.set(name, { patchbay: JSON.parse(runs[i]), python: JSON.parse(printed[i]) }));
}, 400_000);

describe('patchbay export --to transformers runs and prints what patchbay run prints', () => {
  test('resid_pre patching on tiny-gpt2-random: Patchbay, the script and the fixture agree', () => {
    const { patchbay, python } = results.get('resid_pre')!;
    expectClose(python, patchbay);
    // The script is an independent reference too: the fixture's recorded grid, made with PyTorch hooks.
    expectClose(python.values, gpt2.resid_pre_patch_corrupt_from_clean);
    expectClose(python.clean, gpt2.clean_logit_diff);
  });

  test.each(['resid_mid', 'z_by_pos', 'pattern', 'k', 'resid_post'])('tiny-gpt2-random, site %s', (site) => {
    const { patchbay, python } = results.get(site)!;
    expect(patchbay.site).toBe(site);
    expectClose(python, patchbay);
  });

  test('induction-2l: block_every with a loss metric counted from the end', () => {
    const { patchbay, python } = results.get('block_every')!;
    expect(patchbay.shape).toEqual([3, 2, 17]);
    expectClose(python, patchbay);
  });

  test('induction-2l: every head mean-ablated alone, two heads zeroed together, one head as the fixture recorded', () => {
    for (const name of ['sweep_mean', 'ablate_two', 'ablate_one']) {
      const { patchbay, python } = results.get(name)!;
      expectClose(python, patchbay, `${name}:$`);
    }
    const recorded = ind.head_zero_ablation_on_clean.find((h) => h.layer === 0 && h.head === 2)!.logit_diff;
    expectClose(results.get('ablate_one')!.python.metric, recorded);
  });

  test('GPT-NeoX (parallel residual, rotary) and Llama (grouped-query attention) checkpoints', () => {
    for (const name of ['neox_q', 'llama_v']) {
      const { patchbay, python } = results.get(name)!;
      expectClose(python, patchbay, `${name}:$`);
    }
  });

  test('version 2 interventions (zero, mean of reference prompts, patch, scale, set, add; batch, position, head and key selections, several per spec) on GPT-2, NeoX and Llama', () => {
    for (const name of ['gpt2_every_op', 'neox_every_op', 'llama_every_op']) {
      const { patchbay, python } = results.get(name)!;
      expectClose(python, patchbay, `${name}:$`);
      // The interventions did something, row by row.
      const [m, u] = [patchbay.metric, patchbay.unablated].map((x) => [x].flat() as number[]);
      m.forEach((v, b) => expect(Math.abs(v - u[b]), `${name} row ${b}`).toBeGreaterThan(1e-3));
    }
    // A batch of clean prompts gives one metric and one top list per row.
    expect((results.get('gpt2_every_op')!.patchbay.metric as number[]).length).toBe(2);
  });
});

describe('patchbay export --to nnsight | transformer-lens', () => {
  test('writes scripts that compile, for every kind of experiment', async () => {
    const specs = [
      specFile('tiny-gpt2-random', { prompts: prompts(gpt2), experiment: { kind: 'patch', site: 'z_by_pos', metric: 'logit-diff:-1:631:751', normalize: true } }),
      specFile('tiny-gpt2-random', { prompts: prompts(gpt2), experiment: { kind: 'patch', site: 'block_every', metric: 'loss:0:-1' } }),
      specFile('induction-2l', { prompts: { clean: ind.prompts[0] }, experiment: { kind: 'sweep-ablate', metric: 'logit-diff:-1:247:72' } }),
      specFile('induction-2l', { prompts: { clean: ind.prompts[0] }, interventions: [{ op: 'mean', hook: 'blocks.0.attn.hook_z', head: 1 }], experiment: { kind: 'ablate' } }),
    ];
    const files: string[] = [];
    for (const spec of specs) {
      for (const to of ['nnsight', 'transformer-lens']) {
        const out = `${spec}.${to}.py`;
        const r = await runCli(['export', spec, '--to', to, '--out', out]);
        expect(r.errorLines, `${to} ${spec}`).toEqual([]);
        files.push(out);
      }
    }
    await runPython(['-m', 'py_compile', ...files]);
    const nn = readFileSync(files[0], 'utf8');
    expect(nn).toContain('REMOTE = False');
    expect(nn).toMatch(/model\.trace\(.*remote=REMOTE\)/);
    const tl = readFileSync(files[1], 'utf8');
    expect(tl).toContain('patching.get_act_patch_attn_head_out_by_pos');
    expect(tl).toContain('["layer","pos","head"]'); // TransformerLens' shape is Patchbay's
    expect(readFileSync(files[3], 'utf8')).toContain('patching.get_act_patch_block_every');
  }, 120_000);

  test('scripts with version 2 interventions compile, and read the hook points by their TransformerLens names', async () => {
    const [, spec] = CASES.neox_every_op;
    const ok = specFile('tiny-neox-random', { ...spec, interventions: (spec.interventions as { hook: string }[]).filter((iv) => !/rot_|attn_scores/.test(iv.hook)) });
    const all = specFile('tiny-neox-random', spec);
    const files = [`${ok}.nnsight.py`, `${all}.tl.py`];
    expect((await runCli(['export', ok, '--to', 'nnsight', '--out', files[0]])).errorLines).toEqual([]);
    expect((await runCli(['export', all, '--to', 'transformer-lens', '--out', files[1]])).errorLines).toEqual([]);
    await runPython(['-m', 'py_compile', ...files]);
    const nn = readFileSync(files[0], 'utf8');
    // nnsight reads modules in forward order, each hook once.
    expect(nn).toContain('sorted(by_hook, key=forward_rank)');
    expect(nn).toMatch(/"blocks\.0\.mlp\.hook_pre"/);
    const tl = readFileSync(files[1], 'utf8');
    expect(tl).toContain('fwd_hooks.append((iv["hook"], hook))');
    expect(tl).toContain('names_filter=lambda n, hooks=hooks: n in hooks');
  }, 60_000);

  test('refuses what a library cannot express, naming it', async () => {
    const spec = specFile('tiny-gpt2-random', { prompts: prompts(gpt2), experiment: { kind: 'patch', site: 'pattern', metric: 'logit-diff:-1:631:751' } });
    const r = await runCli(['export', spec, '--to', 'nnsight']);
    expect(r.code).toBe(2);
    expect(r.errorLines.join('\n')).toMatch(/pattern sites cannot be exported to nnsight/);
    const rot = specFile('tiny-neox-random', CASES.neox_every_op[1]);
    const r2 = await runCli(['export', rot, '--to', 'nnsight']);
    expect(r2.code).toBe(2);
    expect(r2.errorLines.join('\n')).toMatch(/spec\.interventions\[1\]\.hook: blocks\.0\.attn\.hook_rot_q is not reachable from a nnsight script/);
    const ln = specFile('tiny-gpt2-random', {
      patchbay: 2,
      prompts: { clean: gpt2.prompts[0] },
      interventions: [{ op: 'scale', hook: 'blocks.0.ln1.hook_scale', factor: 2 }],
      experiment: { kind: 'ablate' },
    });
    const r3 = await runCli(['export', ln, '--to', 'transformers']);
    expect(r3.errorLines.join('\n')).toMatch(/blocks\.0\.ln1\.hook_scale is not reachable from a transformers script \(patchbay run runs it; export to transformer-lens/);
  });
});
