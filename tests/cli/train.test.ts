/**
 * `patchbay train` end to end, as a child process: 3 AdamW updates of induction-2l on the two
 * prompts of cases.json write a folder whose weights reproduce PyTorch's float64
 * train_steps.safetensors (the bound of tests/train/transformer.test.ts) and whose tensor names,
 * order, shapes and dtypes are the checkpoint's; that folder runs under `patchbay ablate` and
 * opens in transformers with the logits of PyTorch's trained weights; a
 * --metric objective and SGD train too; bad options are one-line usage errors.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect, test } from 'vitest';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { maxAbs, maxAbsDiff } from '../helpers/compare.ts';
import { fixtureCases } from '../helpers/fixtures.ts';
import { runPython } from '../helpers/python.ts';
import { projectRoot, runCli } from '../helpers/run-cli.ts';

const dir = resolve(projectRoot, 'tests/fixtures/induction-2l');
const cases = fixtureCases('induction-2l');
const ids = cases.prompts.flatMap((p) => ['--ids', p.join(',')]);
const st = (path: string) => new SafetensorsFile(new Uint8Array(readFileSync(path)), path);

test('3 AdamW updates reproduce train_steps.safetensors; names and dtypes kept; the folder runs', async () => {
  const out = mkdtempSync(join(tmpdir(), 'patchbay-train-'));
  const r = await runCli(['train', dir, ...ids, '--steps', '3', '--lr', '1e-3', '--weight-decay', '0.01', '--out', out, '--json'], 120_000);
  expect(r.code, r.stderr).toBe(0);
  expect(r.errorLines).toEqual([]);
  const res = JSON.parse(r.stdout.trim()) as { loss: number[]; out: string };
  const want = JSON.parse(readFileSync(join(dir, 'train_steps.json'), 'utf8')).loss_before_each_step as number[];
  res.loss.forEach((l, k) => expect(Math.abs(l - want[k]!) / want[k]!).toBeLessThan(1e-5));
  const got = st(join(out, 'model.safetensors'));
  const src = st(join(dir, 'model.safetensors'));
  const ref = st(join(dir, 'train_steps.safetensors'));
  const floor = JSON.parse(readFileSync(join(dir, 'train_steps_fp32.json'), 'utf8')).max_rel_error as Record<string, number>;
  expect(got.names).toEqual(src.names);
  for (const n of src.names) {
    expect([got.info(n).dtype, got.info(n).shape]).toEqual([src.info(n).dtype, src.info(n).shape]);
    const rel = maxAbsDiff(got.float32(n), ref.float32(n)) / maxAbs(ref.float32(n));
    expect(rel, n).toBeLessThanOrEqual(floor[n]! > 1e-4 ? 1.5 * floor[n]! : 1e-4);
  }
  expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'))).toEqual(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
  const { position, good_token, bad_token } = cases.metric;
  const ablate = await runCli(['ablate', out, '--ids', cases.prompts[0]!.join(','), '--heads', '0.2', '--metric', `logit-diff:${position}:${good_token}:${bad_token}`, '--json']);
  expect(ablate.code, ablate.stderr).toBe(0);
  expect(Number.isFinite(JSON.parse(ablate.stdout).metric)).toBe(true);

  // The folder opens in transformers, and its logits are those of PyTorch's float64 trained
  // weights (train_steps.safetensors, loaded into the same model): to 1e-4 of their scale, the
  // weights' own bound.
  const py = `import json, sys, torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
m = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float64).eval()
x = torch.tensor(json.loads(sys.argv[3]))
with torch.no_grad(): ours = m(x).logits
res = m.load_state_dict({k: v.double() for k, v in load_file(sys.argv[2]).items()}, strict=False)
with torch.no_grad(): ref = m(x).logits
print(json.dumps({"unexpected": res.unexpected_keys, "diff": float((ours - ref).abs().max()), "scale": float(ref.abs().max())}))`;
  const hf = JSON.parse(await runPython(['-c', py, out, join(dir, 'train_steps.safetensors'), JSON.stringify(cases.prompts)], 150_000)) as { unexpected: string[]; diff: number; scale: number };
  expect(hf.unexpected).toEqual([]);
  expect(hf.diff / hf.scale).toBeLessThan(1e-4);
}, 300_000);

test('a --metric objective and SGD: the objective falls', async () => {
  const out = mkdtempSync(join(tmpdir(), 'patchbay-train-'));
  const { position, good_token, bad_token } = cases.metric;
  // Minimizing logit(good) - logit(bad) at the metric's position.
  const r = await runCli(
    ['train', dir, ...ids, '--steps', '4', '--optimizer', 'sgd', '--lr', '0.01', '--metric', `logit-diff:${position}:${good_token}:${bad_token}`, '--out', out, '--json'],
    120_000,
  );
  expect(r.code, r.stderr).toBe(0);
  const { loss } = JSON.parse(r.stdout.trim()) as { loss: number[] };
  expect(loss).toHaveLength(4);
  expect(loss[3]!).toBeLessThan(loss[0]!);
  // The first value is the untrained model's metric summed over the two rows.
  expect(Math.abs(loss[0]! - (cases.clean_logit_diff + cases.corrupt_logit_diff))).toBeLessThan(1e-3);
}, 180_000);

test('usage errors', async () => {
  const bad = async (args: string[], re: RegExp) => {
    const r = await runCli(['train', dir, ...args]);
    expect(r.code).toBe(2);
    expect(r.errorLines.join('\n')).toMatch(re);
  };
  await bad([...ids, '--steps', '3'], /missing --out/);
  await bad([...ids, '--steps', '0', '--out', '/tmp/x'], /--steps 0: expected a positive integer/);
  await bad([...ids, '--steps', '1', '--optimizer', 'adam', '--out', '/tmp/x'], /--optimizer adam: expected adamw or sgd/);
  await bad([...ids, '--steps', '1', '--metric', 'loss:0:99', '--out', '/tmp/x'], /--metric/);
});
