/**
 * CPU reference for `superposition.ts` (Toy Models of Superposition), in float64. Shapes as in
 * `shaders/superposition.wgsl.ts`: W [I, F, H], b [I, F], importance [I, F], x [I, B, F].
 * Inputs may be Float64Array, so a finite-difference check can perturb them without rounding.
 */

type Arr = Float32Array | Float64Array;

export interface TmsDims {
  B: number; // batch rows
  I: number; // instances
  F: number; // features (n)
  H: number; // hidden dimensions (m)
}

/** h [I, B, H], y [I, B, F], loss [I] (mean over b and f of importance (x - y)^2). */
export function tmsForwardCpu(h: Arr, y: Arr, loss: Arr, W: Arr, b: Arr, importance: Arr, x: Arr, d: TmsDims): void {
  const { B, I, F, H } = d;
  loss.fill(0);
  const lossAcc = new Float64Array(I);
  for (let r = 0; r < B * I; r++) {
    const i = Math.floor(r / B);
    const hv = new Float64Array(H);
    for (let k = 0; k < H; k++) {
      let acc = 0;
      for (let f = 0; f < F; f++) acc += x[r * F + f]! * W[(i * F + f) * H + k]!;
      hv[k] = acc;
      h[r * H + k] = acc;
    }
    for (let f = 0; f < F; f++) {
      let acc = 0;
      for (let k = 0; k < H; k++) acc += hv[k]! * W[(i * F + f) * H + k]!;
      const yv = Math.max(acc + b[i * F + f]!, 0);
      y[r * F + f] = yv;
      const e = x[r * F + f]! - yv;
      lossAcc[i] += importance[i * F + f]! * e * e;
    }
  }
  for (let i = 0; i < I; i++) loss[i] = lossAcc[i]! / (B * F);
}

/** dW [I, F, H] and db [I, F]: gradients of sum_i loss[i] given the forward's h and y. */
export function tmsBackwardCpu(dW: Arr, db: Arr, W: Arr, importance: Arr, x: Arr, h: Arr, y: Arr, d: TmsDims): void {
  const { B, I, F, H } = d;
  const c = 2 / (B * F);
  const gW = new Float64Array(I * F * H);
  const gb = new Float64Array(I * F);
  const dpre = new Float64Array(F);
  const dh = new Float64Array(H);
  for (let r = 0; r < B * I; r++) {
    const i = Math.floor(r / B);
    for (let f = 0; f < F; f++) {
      const yv = y[r * F + f]!;
      dpre[f] = yv > 0 ? c * importance[i * F + f]! * (yv - x[r * F + f]!) : 0;
    }
    for (let k = 0; k < H; k++) {
      let acc = 0;
      for (let f = 0; f < F; f++) acc += dpre[f]! * W[(i * F + f) * H + k]!;
      dh[k] = acc;
    }
    for (let f = 0; f < F; f++) {
      gb[i * F + f] += dpre[f]!;
      for (let k = 0; k < H; k++) gW[(i * F + f) * H + k] += dpre[f]! * h[r * H + k]! + x[r * F + f]! * dh[k]!;
    }
  }
  dW.set(gW);
  db.set(gb);
}
