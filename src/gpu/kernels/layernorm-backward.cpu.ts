/**
 * CPU reference for `layernorm-backward.ts`, float64, the GPU op's pieces with its argument order,
 * plus the float64 forward the finite-difference tests differentiate.
 */
type Out = Float32Array | Float64Array;

/** Forward in float64: n = xc / scale, scale = sqrt(mean(xc^2) + eps); xc = x - mean (LN) or x (RMS). */
export function normForward64(x: ArrayLike<number>, rows: number, C: number, eps: number, rms: boolean): { n: Float64Array; scale: Float64Array } {
  const n = new Float64Array(rows * C);
  const scale = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    if (!rms) {
      for (let c = 0; c < C; c++) mean += x[r * C + c];
      mean /= C;
    }
    let sq = 0;
    for (let c = 0; c < C; c++) sq += (x[r * C + c] - mean) ** 2;
    const s = Math.sqrt(sq / C + eps);
    for (let c = 0; c < C; c++) n[r * C + c] = (x[r * C + c] - mean) / s;
    scale[r] = s;
  }
  return { n, scale };
}

/** dn = dy * w. */
export function normGainBackwardCpu(dn: Out, dy: ArrayLike<number>, w: ArrayLike<number>, rows: number, C: number): void {
  for (let i = 0; i < rows * C; i++) dn[i] = dy[i] * w[i % C];
}

/** dw (+)= sum_r dy n; db (+)= sum_r dy. */
export function normParamGradCpu(dw: Out, db: Out | null, dy: ArrayLike<number>, n: ArrayLike<number>, rows: number, C: number, accumulate = false): void {
  for (let c = 0; c < C; c++) {
    let sw = 0;
    let sb = 0;
    for (let r = 0; r < rows; r++) {
      sw += dy[r * C + c] * n[r * C + c];
      sb += dy[r * C + c];
    }
    dw[c] = (accumulate ? dw[c] : 0) + sw;
    if (db) db[c] = (accumulate ? db[c] : 0) + sb;
  }
}

/** dscale = -sum_c dn n / scale. */
export function normScaleGradCpu(dscale: Out, dn: ArrayLike<number>, n: ArrayLike<number>, scale: ArrayLike<number>, rows: number, C: number): void {
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < C; c++) s += dn[r * C + c] * n[r * C + c];
    dscale[r] = -s / scale[r];
  }
}

/** dx (+)= dn/scale - mean(dn/scale) [LN] + dscale n / C [unless detached: dscale null]. */
export function normInputGradCpu(
  dx: Out,
  dn: ArrayLike<number>,
  n: ArrayLike<number>,
  scale: ArrayLike<number>,
  dscale: ArrayLike<number> | null,
  rows: number,
  C: number,
  rms: boolean,
  accumulate = false,
): void {
  for (let r = 0; r < rows; r++) {
    const inv = 1 / scale[r];
    let mean = 0;
    if (!rms) {
      for (let c = 0; c < C; c++) mean += dn[r * C + c];
      mean = (mean * inv) / C;
    }
    const ds = dscale ? dscale[r] / C : 0;
    for (let c = 0; c < C; c++) {
      const i = r * C + c;
      dx[i] = (accumulate ? dx[i] : 0) + dn[i] * inv - mean + ds * n[i];
    }
  }
}
