/** Reading the gradient fixtures (grads.safetensors, weight_grads.safetensors, atp.json) and comparing gradients. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { maxAbs, maxAbsDiff } from './compare.ts';
import { FIXTURES } from './fixtures.ts';

/**
 * Every folder with gradient fixtures: the shared ones (GPT-2 x3, NeoX, Llama), three made here
 * by tests/fixtures/make/grad_more.py on checkpoints they do not include (GPT-2 of odd sizes,
 * Qwen2 with q/k/v biases and tied embeddings, GPT-NeoX with a sequential residual), the Gemma 3
 * and Qwen3 checkpoints (grad_ref.py's forward for them, checked against transformers' own
 * modules in float64: hf_check.json), a Gemma 3 of odd sizes with a final logit soft-cap
 * (grad_more.py models-gemma), and GPT-2 with scale_attn_by_inverse_layer_idx (config-flags).
 */
export const GRAD_FIXTURES = [
  'tiny-gpt2-random',
  'induction-2l',
  'induction-attn-2l',
  'tiny-neox-random',
  'tiny-llama-random',
  'gpt2-odd-random',
  'qwen2-bias-random',
  'neox-seq-random',
  'tiny-gemma3-random',
  'tiny-qwen3-random',
  'gemma3-softcap-random',
  'config-flags/gpt2-inverse-layer',
] as const;

/** Folders with grads_extra.* (hook_scale, detached and intervened gradients; grad_more.py extra). */
export const GRAD_EXTRA_FIXTURES = ['tiny-gpt2-random', 'tiny-llama-random', 'neox-seq-random', 'qwen2-bias-random', 'tiny-qwen3-random', 'gemma3-softcap-random'] as const;

export interface GradExtra {
  metric_spec: string;
  interventions: Array<{ op: string; hook: string; batch?: number[]; pos?: number[]; heads?: number[]; factor?: number; sourceBatch?: number; vector?: string }>;
  metric_plain: number[];
  metric_detached: number[];
  metric_intervened: number[];
}

export const fixtureGradExtra = (name: string): { spec: GradExtra; tensors: SafetensorsFile } => ({
  spec: JSON.parse(readFileSync(join(FIXTURES, name, 'grads_extra.json'), 'utf8')) as GradExtra,
  tensors: new SafetensorsFile(new Uint8Array(readFileSync(join(FIXTURES, name, 'grads_extra.safetensors'))), 'grads_extra.safetensors'),
});

export interface AtpSite {
  axes: string[];
  atp: number[][];
  exact: number[][];
}

export interface Atp {
  metric: { position: number; good_token: number; bad_token: number };
  metric_spec: string;
  clean_metric: number;
  corrupt_metric: number;
  loss_sum: number;
  sites: Record<'resid_pre' | 'attn_out' | 'mlp_out' | 'z', AtpSite>;
}

export const fixtureAtp = (name: string): Atp => JSON.parse(readFileSync(join(FIXTURES, name, 'atp.json'), 'utf8')) as Atp;
export const fixtureGrads = (name: string) => new SafetensorsFile(new Uint8Array(readFileSync(join(FIXTURES, name, 'grads.safetensors'))), 'grads.safetensors');
export const fixtureWeightGrads = (name: string) => new SafetensorsFile(new Uint8Array(readFileSync(join(FIXTURES, name, 'weight_grads.safetensors'))), 'weight_grads.safetensors');

/** The gradient tolerance: 1e-4 of the reference tensor's own largest magnitude. Returns diff / tolerance. */
export function expectGradClose(name: string, got: ArrayLike<number>, want: ArrayLike<number>): number {
  expect(got.length, `${name}: length`).toBe(want.length);
  const diff = maxAbsDiff(got, want);
  const tol = 1e-4 * maxAbs(want);
  expect(diff, `${name}: max |diff| ${diff.toExponential(3)} vs 1e-4 x max|ref| = ${tol.toExponential(3)}`).toBeLessThanOrEqual(tol);
  return tol > 0 ? diff / tol : 0;
}

/** Folders with atp_star.json (grad_more.py atpstar): AtP* by its definitions in float64. */
export const ATP_STAR_FIXTURES = [
  'tiny-gpt2-random',
  'induction-2l',
  'induction-attn-2l',
  'tiny-llama-random',
  'tiny-neox-random',
  'gemma3-softcap-random',
  'config-flags/gpt2-inverse-layer',
] as const;

export interface AtpStar {
  metric_spec: string;
  /** The QK fix alone (signed), by site: [layer][head] or [layer][head][pos]. */
  qk: Record<'q' | 'k' | 'q_by_pos' | 'k_by_pos', number[][] | number[][][]>;
  /** GradDrop magnitudes (with the QK fix on q and k), by site. */
  graddrop: Record<'resid_pre' | 'attn_out' | 'mlp_out' | 'z' | 'q' | 'k', number[][]>;
}

export const fixtureAtpStar = (name: string): AtpStar => JSON.parse(readFileSync(join(FIXTURES, name, 'atp_star.json'), 'utf8')) as AtpStar;
