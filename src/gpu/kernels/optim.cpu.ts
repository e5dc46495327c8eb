/**
 * CPU references for `optim.ts` (torch.optim.AdamW and torch.optim.SGD, one tensor at a time),
 * computed in float32 like PyTorch's CPU kernels: every operation is rounded with Math.fround in
 * PyTorch's order, so a trajectory stays within a few ulp of torch's own.
 */

const f = Math.fround;

export interface AdamWHyper {
  beta1: number; // 0.9
  beta2: number; // 0.999
  eps: number; // 1e-8
  weightDecay: number; // 0.01 (decoupled)
}

export interface SgdHyper {
  momentum: number; // 0: no momentum buffer
  dampening: number; // 0
  nesterov: boolean;
  weightDecay: number; // 0 (coupled: added to the gradient)
}

/** The per-step scalars PyTorch computes in Python (float64): step size and sqrt of bias correction 2. */
export function adamScalars(lr: number, beta1: number, beta2: number, t: number): { stepSize: number; bc2Sqrt: number } {
  return { stepSize: lr / (1 - beta1 ** t), bc2Sqrt: (1 - beta2 ** t) ** 0.5 };
}

/**
 * One AdamW update of `param` (and its moments `m`, `v`) for update number t (1-based), with
 * the gradient multiplied by `gradScale` (the clipping factor) first.
 */
export function adamwCpu(param: Float32Array, m: Float32Array, v: Float32Array, grad: Float32Array, n: number, t: number, lr: number, gradScale: number, h: AdamWHyper): void {
  const { stepSize, bc2Sqrt } = adamScalars(lr, h.beta1, h.beta2, t);
  const [lr32, ss, bc2, wd] = [f(lr), f(stepSize), f(bc2Sqrt), f(h.weightDecay)];
  const [b2, omb1, omb2, eps, scale] = [f(h.beta2), f(1 - h.beta1), f(1 - h.beta2), f(h.eps), f(gradScale)];
  for (let i = 0; i < n; i++) {
    const g = f(grad[i]! * scale);
    let p = param[i]!;
    if (wd !== 0) p = f(p * f(1 - f(lr32 * wd)));
    const mi = f(m[i]! + f(omb1 * f(g - m[i]!)));
    const vi = f(f(v[i]! * b2) + f(f(omb2 * g) * g));
    m[i] = mi;
    v[i] = vi;
    const denom = f(f(Math.sqrt(vi) / bc2) + eps);
    param[i] = f(p + f(-ss * f(mi / denom)));
  }
}

/** One SGD update (update number t, 1-based; the momentum buffer `buf` is set to g at t = 1). */
export function sgdCpu(param: Float32Array, buf: Float32Array, grad: Float32Array, n: number, t: number, lr: number, gradScale: number, h: SgdHyper): void {
  const [lr32, wd, mom, omd, scale] = [f(lr), f(h.weightDecay), f(h.momentum), f(1 - h.dampening), f(gradScale)];
  for (let i = 0; i < n; i++) {
    const p = param[i]!;
    let g = f(grad[i]! * scale);
    if (wd !== 0) g = f(g + f(wd * p));
    if (mom !== 0) {
      const b = t === 1 ? g : f(f(mom * buf[i]!) + f(omd * g));
      buf[i] = b;
      g = h.nesterov ? f(g + f(mom * b)) : b;
    }
    param[i] = f(p + f(-lr32 * g));
  }
}
