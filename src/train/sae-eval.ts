/**
 * Evaluating a trained SAE the way SAELens' evals do (sae_lens/evals.py, get_recons_loss and
 * get_sparsity_and_variance_metrics), with the SAE loaded as src/features loads any SAELens SAE
 * and spliced into the model's runs (`saeEncode` / `saeDecode` below are CPU references):
 *
 *   ce_loss_without_sae   mean next-token cross-entropy over every position of every sequence
 *                         (or, given `targets`, over those predictions only: a task's loss, such
 *                         as the recall targets the induction model was trained on)
 *   ce_loss_with_sae      the same, with the hook's activation replaced by the SAE's
 *                         reconstruction at every position
 *   ce_loss_with_ablation the same, with the activation zeroed
 *   ce_loss_score         (with_ablation - with_sae) / (with_ablation - without_sae)
 *   l0                    mean over tokens of the number of active latents
 *   fvu                   sum_tokens ||x - x_hat||^2 / sum_tokens ||x - mean(x)||^2 (1 - SAELens'
 *                         trainer's explained_variance)
 *   density               per latent, the fraction of tokens it is active on (dead: 0)
 *
 * and the latents' top-activating contexts for the feature figure.
 */
import type { Sae } from '../features/sae.ts';
import { zeroAblate } from '../hooks/interventions.ts';
import type { Model } from '../hooks/model.ts';
import { topIndices, type SaeArchitecture } from '../gpu/kernels/sae-train.cpu.ts';

/** An SAE as SAELens stores it (threshold for JumpReLU; k for TopK). */
export interface SaeWeights {
  architecture: SaeArchitecture;
  W_enc: Float32Array; // [D, S]
  b_enc: Float32Array; // [S]
  W_dec: Float32Array; // [S, D]
  b_dec: Float32Array; // [D]
  threshold?: Float32Array; // [S]
  k?: number;
  dIn: number;
  dSae: number;
}

/** Latent activations [n, S] of rows x [n, D] (SAELens' encode: x - b_dec, then W_enc, b_enc, activation). */
export function saeEncode(sae: SaeWeights, x: Float32Array): Float32Array {
  const { dIn: D, dSae: S } = sae;
  const n = x.length / D;
  const acts = new Float32Array(n * S);
  const pre = new Float64Array(S);
  const xc = new Float64Array(D);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < D; i++) xc[i] = x[r * D + i]! - sae.b_dec[i]!;
    for (let j = 0; j < S; j++) pre[j] = sae.b_enc[j]!;
    for (let i = 0; i < D; i++) {
      const v = xc[i]!;
      if (v === 0) continue;
      for (let j = 0; j < S; j++) pre[j] += v * sae.W_enc[i * S + j]!;
    }
    if (sae.architecture === 'topk') {
      for (const j of topIndices(pre, S, sae.k!)) if (pre[j]! > 0) acts[r * S + j] = pre[j]!;
    } else {
      for (let j = 0; j < S; j++) {
        const on = sae.architecture === 'standard' ? pre[j]! > 0 : pre[j]! > sae.threshold![j]!;
        if (on) acts[r * S + j] = pre[j]!;
      }
    }
  }
  return acts;
}

/** Reconstructions [n, D] of latent activations [n, S]. */
export function saeDecode(sae: SaeWeights, acts: Float32Array): Float32Array {
  const { dIn: D, dSae: S } = sae;
  const n = acts.length / S;
  const out = new Float32Array(n * D);
  const acc = new Float64Array(D);
  for (let r = 0; r < n; r++) {
    acc.set(sae.b_dec);
    for (let j = 0; j < S; j++) {
      const a = acts[r * S + j]!;
      if (a === 0) continue;
      for (let i = 0; i < D; i++) acc[i] += a * sae.W_dec[j * D + i]!;
    }
    out.set(acc, r * D);
  }
  return out;
}

/** One loss term: the logits at (row, pos) should predict `target`. */
export interface LossTarget {
  row: number;
  pos: number;
  target: number;
}

/** Every next-token prediction of every sequence (TransformerLens' loss_per_token positions). */
export function nextTokenTargets(seqs: readonly (readonly number[])[]): LossTarget[] {
  return seqs.flatMap((seq, row) => seq.slice(1).map((target, pos) => ({ row, pos, target })));
}

/** Mean cross-entropy of `targets` under logits [B, T, V]. */
export function meanLoss(logits: Float32Array, T: number, V: number, targets: readonly LossTarget[]): number {
  let sum = 0;
  for (const { row: b, pos: t, target } of targets) {
    const row = logits.subarray((b * T + t) * V, (b * T + t + 1) * V);
    let mx = -Infinity;
    for (const v of row) mx = Math.max(mx, v);
    let z = 0;
    for (const v of row) z += Math.exp(v - mx);
    sum += mx + Math.log(z) - row[target]!;
  }
  return sum / targets.length;
}

export interface SaeEvaluation {
  ce_loss_without_sae: number;
  ce_loss_with_sae: number;
  ce_loss_with_ablation: number;
  ce_loss_score: number;
  l0: number;
  fvu: number;
  /** [S]: fraction of tokens each latent is active on. */
  density: Float32Array;
  /** [tokens, S], tokens in (sequence, position) order. */
  acts: Float32Array;
}

/**
 * SAELens' reconstruction and sparsity metrics of `sae` (a loaded `Sae`, src/features) at its hook
 * on `sequences`: the spliced loss from `model.run(tokens, { saes: [sae] })` (SAELens'
 * run_with_saes: the reconstruction replaces the activation at every position), the activations
 * from the same run's `hook_sae_acts_post`, the variance from a clean run's activation.
 */
export async function evaluateSae(model: Model, sae: Sae, sequences: readonly (readonly number[])[], targets: readonly LossTarget[] = nextTokenTargets(sequences)): Promise<SaeEvaluation> {
  const V = model.config.d_vocab;
  const T = sequences[0]!.length;
  const hook = sae.hookName;
  const clean = await model.run(sequences, { cache: [hook] });
  let x: Float32Array;
  let without: number;
  try {
    x = await clean.cache.read(hook);
    without = meanLoss(await clean.logits.read(), T, V, targets);
  } finally {
    clean.release();
  }
  const spliced = await model.run(sequences, { saes: [sae], cache: [`${hook}.hook_sae_acts_post`, `${hook}.hook_sae_recons`] });
  let acts: Float32Array;
  let recon: Float32Array;
  let withSae: number;
  try {
    acts = await spliced.cache.read(`${hook}.hook_sae_acts_post`);
    recon = await spliced.cache.read(`${hook}.hook_sae_recons`);
    withSae = meanLoss(await spliced.logits.read(), T, V, targets);
  } finally {
    spliced.release();
  }
  const ablated = await model.runWithHooks(sequences, [zeroAblate(hook)]);
  let ablation: number;
  try {
    ablation = meanLoss(await ablated.logits.read(), T, V, targets);
  } finally {
    ablated.release();
  }
  const { d_in: D, d_sae: S } = sae.config;
  const n = x.length / D;
  let l0 = 0;
  const density = new Float32Array(S);
  for (let r = 0; r < n; r++)
    for (let j = 0; j < S; j++)
      if (acts[r * S + j] !== 0) {
        l0++;
        density[j]! += 1 / n;
      }
  const mean = new Float64Array(D);
  for (let r = 0; r < n; r++) for (let i = 0; i < D; i++) mean[i] += x[r * D + i]! / n;
  let err = 0;
  let dev = 0;
  for (let r = 0; r < n; r++)
    for (let i = 0; i < D; i++) {
      err += (x[r * D + i]! - recon[r * D + i]!) ** 2;
      dev += (x[r * D + i]! - mean[i]!) ** 2;
    }
  return {
    ce_loss_without_sae: without,
    ce_loss_with_sae: withSae,
    ce_loss_with_ablation: ablation,
    ce_loss_score: (ablation - withSae) / (ablation - without),
    l0: l0 / n,
    fvu: err / dev,
    density,
    acts,
  };
}

export interface FeatureContext {
  seq: number;
  pos: number;
  value: number;
}

/**
 * For each latent, the `top` tokens it is most active on ([tokens, S] activations over sequences
 * of `T` tokens), largest first; latents never active get none.
 */
export function topContexts(acts: Float32Array, S: number, T: number, top: number): FeatureContext[][] {
  const n = acts.length / S;
  const out: FeatureContext[][] = Array.from({ length: S }, () => []);
  for (let r = 0; r < n; r++)
    for (let j = 0; j < S; j++) {
      const v = acts[r * S + j]!;
      if (v <= 0) continue;
      const list = out[j]!;
      if (list.length === top && v <= list[list.length - 1]!.value) continue;
      list.push({ seq: Math.floor(r / T), pos: r % T, value: v });
      list.sort((a, b) => b.value - a.value);
      if (list.length > top) list.pop();
    }
  return out;
}
