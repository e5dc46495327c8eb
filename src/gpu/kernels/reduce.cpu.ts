/** CPU reference for `reduce.ts`: mean over batch rows (and positions when pooled) -> [P', heads, F]. */
import type { SiteLayout } from './intervene.ts';

export function batchMeanCpu(out: Float32Array, x: Float32Array, L: SiteLayout, pooled: boolean): void {
  const P = pooled ? 1 : L.pos;
  for (let p0 = 0; p0 < P; p0++)
    for (let h = 0; h < L.heads; h++)
      for (let f = 0; f < L.F; f++) {
        let acc = 0;
        let n = 0;
        for (let b = 0; b < L.batch; b++)
          for (let p = pooled ? 0 : p0; p < (pooled ? L.pos : p0 + 1); p++) {
            acc += x[b * L.sb + p * L.sp + h * L.sh + f];
            n++;
          }
        out[(p0 * L.heads + h) * L.F + f] = acc / n;
      }
}
