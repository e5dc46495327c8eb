/**
 * CPU reference for SAE training (`sae-train.ts`): one step's loss and gradients for SAELens'
 * three training architectures, in float64, written from SAELens' definitions
 * (sae_lens/saes/standard_sae.py, topk_sae.py, jumprelu_sae.py, 6.x):
 *
 *   xc   = x - b_dec                                      (apply_b_dec_to_input)
 *   pre  = xc W_enc + b_enc                               [B, S]
 *   acts = standard: ReLU(pre)
 *          topk:     the k largest pre of each row, ReLU'd; 0 elsewhere (rescale_acts_by_decoder_norm off)
 *          jumprelu: pre [pre > theta], theta = exp(log_threshold)
 *   recon = acts W_dec + b_dec                            [B, D]
 *   mse  = mean_b sum_d (recon - x)^2
 *   aux  = standard: c mean_b sum_j acts_bj ||W_dec_j||                       (L1, decoder-norm weighted)
 *          jumprelu: c mean_b sum_j H(pre_bj - theta_j)                        (L0, "step" mode)
 *          topk:     AuxK on the dead latents (none dead: 0): residual = x - recon (no gradient),
 *                    k_aux = min(D / 2, n_dead), scale = min(n_dead / (D / 2), 1), aux_acts = each
 *                    row's k_aux largest pre among dead latents (raw, not ReLU'd),
 *                    c scale mean_b ||aux_acts W_dec + b_dec - residual||^2
 *   loss = mse + aux
 *
 * JumpReLU's threshold gets SAELens' straight-through estimates (bandwidth eps,
 * rect(z) = [-1/2 < z < 1/2]):  d theta_j = sum_b -(theta_j / eps) rect((pre_bj - theta_j) / eps) d acts_bj
 * from the reconstruction, plus c / B sum_b -(1 / eps) rect(...) from the L0 term; no gradient
 * reaches pre through the L0 term. log_threshold's gradient is theta times that.
 */

export type SaeArchitecture = 'standard' | 'topk' | 'jumprelu';

export interface SaeDims {
  B: number; // rows in the batch
  D: number; // d_in
  S: number; // d_sae
}

export interface SaeStepHyper {
  architecture: SaeArchitecture;
  /** The sparsity coefficient of this step: L1 (standard), L0 (jumprelu), AuxK (topk). */
  coefficient: number;
  /** TopK: active latents per row. */
  k?: number;
  /** JumpReLU: the straight-through estimator's bandwidth. */
  bandwidth?: number;
  /** TopK: latents counted dead this step ([S], 1 = dead). */
  dead?: Uint8Array;
  /**
   * TopK: the AuxK residual to use instead of x - recon ([B, D]). SAELens detaches the residual,
   * so finite differences of the loss must hold it fixed; tests pass the unperturbed one here.
   */
  residual?: Arr;
}

type Arr = Float32Array | Float64Array;

export interface SaeParamsCpu {
  W_enc: Arr; // [D, S]
  b_enc: Arr; // [S]
  W_dec: Arr; // [S, D]
  b_dec: Arr; // [D]
  log_threshold?: Arr; // [S], jumprelu
}

export interface SaeStepCpu {
  loss: number;
  mse: number;
  aux: number;
  pre: Float64Array; // [B, S]
  acts: Float64Array; // [B, S]
  recon: Float64Array; // [B, D]
  grads: { W_enc: Float64Array; b_enc: Float64Array; W_dec: Float64Array; b_dec: Float64Array; log_threshold?: Float64Array };
}

/**
 * The k largest of `v[0, n)` (ties: the lower index first), among those with `allowed[j]` set
 * when given. Returns indices, largest first.
 */
export function topIndices(v: ArrayLike<number>, n: number, k: number, allowed?: Uint8Array): number[] {
  const idx: number[] = [];
  for (let j = 0; j < n; j++) if (!allowed || allowed[j]) idx.push(j);
  idx.sort((a, b) => v[b]! - v[a]! || a - b);
  return idx.slice(0, k);
}

export function saeStepCpu(p: SaeParamsCpu, x: Arr, d: SaeDims, h: SaeStepHyper): SaeStepCpu {
  const { B, D, S } = d;
  const c = h.coefficient;
  const xc = new Float64Array(B * D);
  for (let b = 0; b < B; b++) for (let i = 0; i < D; i++) xc[b * D + i] = x[b * D + i]! - p.b_dec[i]!;
  const pre = new Float64Array(B * S);
  for (let b = 0; b < B; b++)
    for (let j = 0; j < S; j++) {
      let acc = 0;
      for (let i = 0; i < D; i++) acc += xc[b * D + i]! * p.W_enc[i * S + j]!;
      pre[b * S + j] = acc + p.b_enc[j]!;
    }
  const theta = p.log_threshold ? Float64Array.from(p.log_threshold, Math.exp) : null;
  const acts = new Float64Array(B * S);
  const gate = new Uint8Array(B * S); // where d acts / d pre = 1
  for (let b = 0; b < B; b++) {
    const row = pre.subarray(b * S, (b + 1) * S);
    if (h.architecture === 'topk') {
      for (const j of topIndices(row, S, h.k!))
        if (row[j]! > 0) {
          acts[b * S + j] = row[j]!;
          gate[b * S + j] = 1;
        }
    } else {
      for (let j = 0; j < S; j++) {
        const on = h.architecture === 'standard' ? row[j]! > 0 : row[j]! > theta![j]!;
        if (on) {
          acts[b * S + j] = row[j]!;
          gate[b * S + j] = 1;
        }
      }
    }
  }
  const decode = (a: Float64Array): Float64Array => {
    const out = new Float64Array(B * D);
    for (let b = 0; b < B; b++)
      for (let i = 0; i < D; i++) {
        let acc = 0;
        for (let j = 0; j < S; j++) acc += a[b * S + j]! * p.W_dec[j * D + i]!;
        out[b * D + i] = acc + p.b_dec[i]!;
      }
    return out;
  };
  const recon = decode(acts);
  let mse = 0;
  const gRecon = new Float64Array(B * D);
  for (let k = 0; k < B * D; k++) {
    const e = recon[k]! - x[k]!;
    mse += e * e;
    gRecon[k] = (2 * e) / B;
  }
  mse /= B;
  const norms = new Float64Array(S);
  for (let j = 0; j < S; j++) {
    let acc = 0;
    for (let i = 0; i < D; i++) acc += p.W_dec[j * D + i]! ** 2;
    norms[j] = Math.sqrt(acc);
  }

  // d acts = g_recon W_dec^T (+ the L1 term).
  const dActs = new Float64Array(B * S);
  for (let b = 0; b < B; b++)
    for (let j = 0; j < S; j++) {
      let acc = 0;
      for (let i = 0; i < D; i++) acc += gRecon[b * D + i]! * p.W_dec[j * D + i]!;
      dActs[b * S + j] = acc;
    }
  const gW_dec = new Float64Array(S * D);
  const gb_dec = new Float64Array(D);
  for (let b = 0; b < B; b++)
    for (let j = 0; j < S; j++) {
      const a = acts[b * S + j]!;
      if (a !== 0) for (let i = 0; i < D; i++) gW_dec[j * D + i] += a * gRecon[b * D + i]!;
    }
  for (let b = 0; b < B; b++) for (let i = 0; i < D; i++) gb_dec[i] += gRecon[b * D + i]!;
  const dPre = new Float64Array(B * S);
  for (let k = 0; k < B * S; k++) if (gate[k]) dPre[k] = dActs[k]!;

  let aux = 0;
  let gLogTheta: Float64Array | undefined;
  if (h.architecture === 'standard') {
    const colSum = new Float64Array(S);
    for (let b = 0; b < B; b++)
      for (let j = 0; j < S; j++) {
        aux += acts[b * S + j]! * norms[j]!;
        colSum[j] += acts[b * S + j]!;
        if (gate[b * S + j]) dPre[b * S + j] += (c / B) * norms[j]!;
      }
    aux *= c / B;
    for (let j = 0; j < S; j++) if (norms[j]! > 0) for (let i = 0; i < D; i++) gW_dec[j * D + i] += ((c / B) * colSum[j]! * p.W_dec[j * D + i]!) / norms[j]!;
  } else if (h.architecture === 'jumprelu') {
    const eps = h.bandwidth!;
    gLogTheta = new Float64Array(S);
    for (let j = 0; j < S; j++) {
      let dTheta = 0;
      for (let b = 0; b < B; b++) {
        const z = (pre[b * S + j]! - theta![j]!) / eps;
        if (pre[b * S + j]! > theta![j]!) aux += 1;
        if (z > -0.5 && z < 0.5) dTheta += -(theta![j]! / eps) * dActs[b * S + j]! - c / B / eps;
      }
      gLogTheta[j] = dTheta * theta![j]!;
    }
    aux *= c / B;
  } else {
    const dead = h.dead;
    let nDead = 0;
    if (dead) for (let j = 0; j < S; j++) nDead += dead[j]!;
    if (nDead > 0) {
      const half = Math.floor(D / 2);
      const kAux = Math.min(half, nDead);
      const scale = Math.min(nDead / half, 1);
      const auxActs = new Float64Array(B * S);
      const auxSel = new Uint8Array(B * S);
      for (let b = 0; b < B; b++) {
        const row = pre.subarray(b * S, (b + 1) * S);
        for (const j of topIndices(row, S, kAux, dead)) {
          auxActs[b * S + j] = row[j]!;
          auxSel[b * S + j] = 1;
        }
      }
      const ra = decode(auxActs);
      const gRa = new Float64Array(B * D);
      for (let k = 0; k < B * D; k++) {
        const e = ra[k]! - (h.residual ? h.residual[k]! : x[k]! - recon[k]!);
        aux += e * e;
        gRa[k] = (2 * c * scale * e) / B;
      }
      aux *= (c * scale) / B;
      for (let b = 0; b < B; b++)
        for (let j = 0; j < S; j++) {
          const a = auxActs[b * S + j]!;
          // Selected latents pass the gradient straight to pre (no ReLU on aux activations).
          let g = 0;
          for (let i = 0; i < D; i++) g += gRa[b * D + i]! * p.W_dec[j * D + i]!;
          if (auxSel[b * S + j]) dPre[b * S + j] += g;
          if (a !== 0) for (let i = 0; i < D; i++) gW_dec[j * D + i] += a * gRa[b * D + i]!;
        }
      for (let b = 0; b < B; b++) for (let i = 0; i < D; i++) gb_dec[i] += gRa[b * D + i]!;
    }
  }

  const gW_enc = new Float64Array(D * S);
  const gb_enc = new Float64Array(S);
  for (let b = 0; b < B; b++)
    for (let j = 0; j < S; j++) {
      const g = dPre[b * S + j]!;
      if (g === 0) continue;
      gb_enc[j] += g;
      for (let i = 0; i < D; i++) gW_enc[i * S + j] += xc[b * D + i]! * g;
    }
  for (let i = 0; i < D; i++) {
    let acc = 0;
    for (let j = 0; j < S; j++) acc += p.W_enc[i * S + j]! * gb_enc[j]!;
    gb_dec[i] -= acc;
  }
  return {
    loss: mse + aux,
    mse,
    aux,
    pre,
    acts,
    recon,
    grads: { W_enc: gW_enc, b_enc: gb_enc, W_dec: gW_dec, b_dec: gb_dec, ...(gLogTheta ? { log_threshold: gLogTheta } : {}) },
  };
}
