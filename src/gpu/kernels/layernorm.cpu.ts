/**
 * CPU references for `layernorm.ts`, float64 arithmetic on fp32 inputs.
 *   layernormCpu:  y = (x - mean) / sqrt(var + eps) * w + b per row; scale = sqrt(var + eps).
 *   rmsnormCpu:    y = x / sqrt(mean(x^2) + eps) * w; scale = sqrt(mean(x^2) + eps).
 *   normalizeCpu:  normalized = (x - mean) / scale (rms: x / scale), the scale as given.
 *   affineCpu:     y = normalized * w + b (no b: normalized * w).
 */
export function layernormCpu(out: Float32Array, scale: Float32Array, x: Float32Array, w: Float32Array, b: Float32Array, rows: number, C: number, eps: number): void {
  for (let r = 0; r < rows; r++) {
    const base = r * C;
    let sum = 0;
    for (let c = 0; c < C; c++) sum += x[base + c];
    const mean = sum / C;
    let sq = 0;
    for (let c = 0; c < C; c++) sq += (x[base + c] - mean) ** 2;
    const s = Math.sqrt(sq / C + eps);
    for (let c = 0; c < C; c++) out[base + c] = ((x[base + c] - mean) / s) * w[c] + b[c];
    scale[r] = s;
  }
}

export function rmsnormCpu(out: Float32Array, scale: Float32Array, x: Float32Array, w: Float32Array, rows: number, C: number, eps: number): void {
  for (let r = 0; r < rows; r++) {
    let sq = 0;
    for (let c = 0; c < C; c++) sq += x[r * C + c] ** 2;
    const s = Math.sqrt(sq / C + eps);
    for (let c = 0; c < C; c++) out[r * C + c] = (x[r * C + c] / s) * w[c];
    scale[r] = s;
  }
}

export function normalizeCpu(normalized: Float32Array, x: Float32Array, scale: Float32Array, rows: number, C: number, rms: boolean): void {
  for (let r = 0; r < rows; r++) {
    const base = r * C;
    let mean = 0;
    if (!rms) {
      for (let c = 0; c < C; c++) mean += x[base + c];
      mean /= C;
    }
    for (let c = 0; c < C; c++) normalized[base + c] = (x[base + c] - mean) / scale[r];
  }
}

export function affineCpu(out: Float32Array, normalized: Float32Array, w: Float32Array, b: Float32Array | null, rows: number, C: number): void {
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < C; c++) out[r * C + c] = normalized[r * C + c] * w[c] + (b ? b[c] : 0);
  }
}
