/**
 * The optimizers against PyTorch's own (tests/fixtures/optim/optim_steps.safetensors, made by
 * tests/fixtures/make/optim_steps.py): 10 updates of three tensors (shapes [7, 5], [13], [3, 3, 3])
 * with the gradients the fixture gives per step, and every parameter compared after every update,
 * on the GPU (Optimizer: clip + AdamW / SGD kernels, clock rows from the schedule) and on the CPU
 * references (adamwCpu, sgdCpu, gradNormCpu).
 *
 *   adamw     betas (0.9, 0.98), eps 1e-8, weight decay 0.01 on a and c and 0 on b, clipping to
 *             norm 1 (the fixture's gradients alternate between norms ~0.4 and ~17, so it clips
 *             every other step), Patchbay's warm-up + cosine schedule (peak 1e-2, 3 warm-up, 10 total)
 *   sgd       momentum 0.9, dampening 0.1, weight decay 1e-3; nesterov (momentum 0.9, wd 1e-3); plain
 *
 * Tolerance: both sides compute in fp32, so they differ by rounding only. An AdamW update moves a
 * parameter by at most ~lr (|m / denom| <= ~1 after bias correction), each operation of it off by
 * <= 1 ulp; the largest effect is the clipping factor (norm summed in a different order: a few ulp
 * relative) and sqrt/divide (WGSL: <= 2.5 ulp). Over 10 updates that is well under
 * 1e-6 * max(1, max |p|) (|p| ~ 3 here): abs 1e-6, rel 1e-6. The grad norms to 1e-6 relative.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { gradNormCpu } from '../../src/gpu/kernels/grad-norm.cpu.ts';
import { adamwCpu, sgdCpu, type SgdHyper } from '../../src/gpu/kernels/optim.cpu.ts';
import { submitSteps } from '../../src/gpu/recorder.ts';
import { readBuffer } from '../../src/gpu/tensor.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { TrainClock } from '../../src/train/clock.ts';
import { Optimizer, entriesOf, type OptimizerOptions } from '../../src/train/optimizer.ts';
import { ParamStore } from '../../src/train/params.ts';
import { warmupCosine } from '../../src/train/schedule.ts';
import { FIXTURES } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';
import { expectNear } from '../kernels/check.ts';

const file = new SafetensorsFile(new Uint8Array(readFileSync(join(FIXTURES, 'optim', 'optim_steps.safetensors'))), 'optim_steps.safetensors');
const NAMES = ['a', 'b', 'c'] as const;
const SHAPES: Record<string, number[]> = { a: [7, 5], b: [13], c: [3, 3, 3] };
const STEPS = 10;
const TOL = { abs: 1e-6, rel: 1e-6 };
const WD: Record<string, number> = { a: 0.01, b: 0, c: 0.01 };
const schedule = warmupCosine({ peak: 1e-2, warmup: 3, total: STEPS, floor: 0.1 });
const t32 = (name: string) => new Float32Array(file.float32(name)); // a copy, safe to mutate

const SGD: Record<string, SgdHyper & { lr: number }> = {
  sgd: { lr: 0.05, momentum: 0.9, dampening: 0.1, nesterov: false, weightDecay: 1e-3 },
  nesterov: { lr: 0.05, momentum: 0.9, dampening: 0, nesterov: true, weightDecay: 1e-3 },
  plain: { lr: 0.05, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0 },
};

it('the fixture is the version this test reads (re-run tests/fixtures/make/optim_steps.py if not)', () => {
  expect(file.metadata.format).toBe('patchbay-optim-steps');
  expect(file.metadata.version).toBe('1');
  expect(Number(file.metadata.steps)).toBe(STEPS);
});

it('the warm-up + cosine schedule gives the learning rates the fixture used', () => {
  const lrs = file.float32('adamw.lr');
  for (let t = 1; t <= STEPS; t++) expect(Math.fround(schedule(t))).toBe(lrs[t - 1]);
  expect(schedule(3)).toBeCloseTo(1e-2, 15); // end of warm-up: the peak
  expect(schedule(STEPS)).toBeCloseTo(1e-3, 15); // the floor
});

/** Runs `options` on the GPU for STEPS updates; `check(t, values, gradNorm)` after each. */
async function runGpu(options: OptimizerOptions, check: (t: number, values: Map<string, Float32Array>, gradNorm: number) => void): Promise<void> {
  const gpu = await testGpu();
  const store = new ParamStore(
    gpu,
    NAMES.map((n) => ({ name: n, shape: SHAPES[n]!, init: t32(`init.${n}`), ...(options.kind === 'adamw' ? { weightDecay: WD[n] } : {}) })),
  );
  const clock = new TrainClock(gpu, 4);
  const opt = new Optimizer(gpu, clock, entriesOf(store.list), options);
  try {
    for (let t = 1; t <= STEPS; t++) {
      for (const n of NAMES) {
        const g = t32(`grad.${t}.${n}`);
        gpu.device.queue.writeBuffer(store.get(n).grad.buffer, 0, g.buffer, g.byteOffset, g.byteLength);
      }
      clock.write(t - 1, [opt.row(t)]);
      submitSteps(gpu, [...opt.steps, clock.tick], `update ${t}`);
      const header = await readBuffer(gpu, clock.buffer, 0, 16);
      expect(new Uint32Array(header.buffer)[0], 'the tick advanced the clock').toBe(t);
      check(t, await store.read(), header[2]!);
    }
  } finally {
    opt.destroy();
    clock.destroy();
    store.destroy();
  }
}

describe('AdamW with clipping and a schedule', () => {
  it('GPU: every parameter after every update, and the gradient norm', async () => {
    const norms = file.float32('adamw.grad_norm');
    let clipped = 0;
    await runGpu({ kind: 'adamw', lr: schedule, betas: [0.9, 0.98], eps: 1e-8, weightDecay: 0.01, clipNorm: 1 }, (t, values, norm) => {
      expect(Math.abs(norm - norms[t - 1]!) / norms[t - 1]!, `grad norm at update ${t}`).toBeLessThan(1e-6);
      if (norm > 1) clipped++;
      for (const n of NAMES) expectNear(`adamw update ${t} ${n}`, values.get(n)!, file.float32(`adamw.${t}.${n}`), TOL);
    });
    expect(clipped, 'clipping was exercised on some updates and not others').toBe(5);
  });

  it('CPU reference: the same trajectory', () => {
    const p = Object.fromEntries(NAMES.map((n) => [n, t32(`init.${n}`)]));
    const m = Object.fromEntries(NAMES.map((n) => [n, new Float32Array(p[n]!.length)]));
    const v = Object.fromEntries(NAMES.map((n) => [n, new Float32Array(p[n]!.length)]));
    for (let t = 1; t <= STEPS; t++) {
      const grads = NAMES.map((n) => t32(`grad.${t}.${n}`));
      const { scale } = gradNormCpu(grads, 1);
      NAMES.forEach((n, k) => adamwCpu(p[n]!, m[n]!, v[n]!, grads[k]!, p[n]!.length, t, schedule(t), scale, { beta1: 0.9, beta2: 0.98, eps: 1e-8, weightDecay: WD[n]! }));
      for (const n of NAMES) expectNear(`adamw cpu update ${t} ${n}`, p[n]!, file.float32(`adamw.${t}.${n}`), TOL);
    }
  });
});

describe.each(Object.keys(SGD))('SGD (%s)', (name) => {
  const h = SGD[name]!;
  it('GPU: every parameter after every update', async () => {
    await runGpu({ kind: 'sgd', lr: h.lr, momentum: h.momentum, dampening: h.dampening, nesterov: h.nesterov, weightDecay: h.weightDecay }, (t, values) => {
      for (const n of NAMES) expectNear(`${name} update ${t} ${n}`, values.get(n)!, file.float32(`${name}.${t}.${n}`), TOL);
    });
  });

  it('CPU reference: the same trajectory', () => {
    const p = Object.fromEntries(NAMES.map((n) => [n, t32(`init.${n}`)]));
    const buf = Object.fromEntries(NAMES.map((n) => [n, new Float32Array(p[n]!.length)]));
    for (let t = 1; t <= STEPS; t++) {
      for (const n of NAMES) sgdCpu(p[n]!, buf[n]!, t32(`grad.${t}.${n}`), p[n]!.length, t, h.lr, 1, h);
      for (const n of NAMES) expectNear(`${name} cpu update ${t} ${n}`, p[n]!, file.float32(`${name}.${t}.${n}`), TOL);
    }
  });
});
