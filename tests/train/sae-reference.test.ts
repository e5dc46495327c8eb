/**
 * The SAE training step's CPU reference (`saeStepCpu`) against PyTorch autograd on SAELens'
 * definitions (tests/fixtures/sae-train/sae_train_refs.safetensors, made by
 * tests/fixtures/make/sae_train_refs.py): the loss, its MSE and sparsity parts, the activations,
 * the reconstruction and every parameter's gradient, for ReLU + L1, TopK + AuxK (5 of 11 latents
 * dead) and JumpReLU + L0 (the threshold's straight-through gradient included). The fixture is
 * float64 stored as fp32: rel 1e-6 of each tensor's largest magnitude. The reference is also
 * checked against finite differences where the loss is differentiable (everything but JumpReLU's
 * threshold, whose gradient is an estimate by design).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { saeStepCpu, type SaeArchitecture, type SaeParamsCpu } from '../../src/gpu/kernels/sae-train.cpu.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { FIXTURES } from '../helpers/fixtures.ts';
import { expectNear } from '../kernels/check.ts';

const file = new SafetensorsFile(new Uint8Array(readFileSync(join(FIXTURES, 'sae-train', 'sae_train_refs.safetensors'))), 'sae_train_refs.safetensors');
const { B, D, S } = JSON.parse(file.metadata.shape!) as { B: number; D: number; S: number };
const NAMES = ['W_enc', 'b_enc', 'W_dec', 'b_dec'] as const;

interface Case {
  p: SaeParamsCpu;
  x: Float32Array;
  hyper: { coefficient: number; k?: number; bandwidth?: number; dead?: number[]; loss: number; mse: number; aux: number };
}

function load(arch: SaeArchitecture): Case {
  const get = (n: string) => Float64Array.from(file.float32(`${arch}.${n}`));
  const p: SaeParamsCpu = { W_enc: get('W_enc'), b_enc: get('b_enc'), W_dec: get('W_dec'), b_dec: get('b_dec') };
  if (arch === 'jumprelu') p.log_threshold = get('log_threshold');
  return { p, x: file.float32(`${arch}.x`), hyper: JSON.parse(file.metadata[arch]!) };
}

const run = (arch: SaeArchitecture, c: Case, p = c.p, residual?: Float64Array) =>
  saeStepCpu(
    p,
    c.x,
    { B, D, S },
    { architecture: arch, coefficient: c.hyper.coefficient, k: c.hyper.k, bandwidth: c.hyper.bandwidth, dead: c.hyper.dead ? Uint8Array.from(c.hyper.dead) : undefined, residual },
  );

it('the fixture is the version this test reads (re-run tests/fixtures/make/sae_train_refs.py if not)', () => {
  expect(file.metadata.format).toBe('patchbay-sae-train-refs');
  expect(file.metadata.version).toBe('1');
});

describe.each(['standard', 'topk', 'jumprelu'] as SaeArchitecture[])('%s', (arch) => {
  const c = load(arch);
  it('loss, activations, reconstruction and gradients match PyTorch autograd', () => {
    const r = run(arch, c);
    expect(Math.abs(r.loss - c.hyper.loss) / c.hyper.loss).toBeLessThan(1e-6);
    expect(Math.abs(r.mse - c.hyper.mse) / c.hyper.mse).toBeLessThan(1e-6);
    expect(Math.abs(r.aux - c.hyper.aux) / c.hyper.aux).toBeLessThan(1e-6);
    expect(c.hyper.aux, 'the sparsity term is exercised').toBeGreaterThan(0);
    const tol = { abs: 0, rel: 1e-6 };
    expectNear(`${arch} acts`, r.acts, file.float32(`${arch}.acts`), tol);
    expectNear(`${arch} recon`, r.recon, file.float32(`${arch}.recon`), tol);
    for (const n of NAMES) expectNear(`${arch} grad ${n}`, r.grads[n], file.float32(`${arch}.grad.${n}`), tol);
    if (arch === 'jumprelu') {
      const g = file.float32('jumprelu.grad.log_threshold');
      expect(Array.from(g).filter((v) => v !== 0).length, 'some pre-activations fall within the bandwidth of their threshold').toBeGreaterThan(2);
      expectNear('jumprelu grad log_threshold', r.grads.log_threshold!, g, tol);
    }
  });

  it('gradients equal finite differences of the loss (the differentiable parameters)', () => {
    const eps = 1e-6;
    const r = run(arch, c);
    // TopK's AuxK holds its residual constant (detached): difference the loss with that residual fixed.
    const residual = Float64Array.from(c.x, (v, k) => v - r.recon[k]!);
    for (const n of NAMES) {
      const fd = new Float64Array(c.p[n].length);
      for (let k = 0; k < fd.length; k++) {
        const probe = (delta: number) => {
          const q = { ...c.p, [n]: Float64Array.from(c.p[n]) };
          q[n][k] += delta;
          return run(arch, c, q, residual).loss;
        };
        fd[k] = (probe(eps) - probe(-eps)) / (2 * eps);
      }
      expectNear(`${arch} ${n} vs finite differences`, r.grads[n], fd, { abs: 1e-6, rel: 1e-5 });
    }
  });
});
