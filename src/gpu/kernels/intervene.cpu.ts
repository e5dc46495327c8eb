/** CPU reference for `intervene.ts`, with the same entry table (see the shader header). */
import { ENTRY_WORDS } from '../../../shaders/intervene.wgsl.ts';
import type { SiteLayout } from './intervene.ts';

export function interveneCpu(x: Float32Array, layout: SiteLayout, table: Uint32Array, nEntries: number, src: Float32Array, srcHeadStride: number): void {
  const f32 = new Float32Array(table.buffer, table.byteOffset, table.length);
  for (let e = 0; e < nEntries; e++) {
    const w = e * ENTRY_WORDS;
    const [op, b, p, h0, h1, base] = table.subarray(w, w + 6);
    const value = f32[w + 6];
    const [f0, f1] = table.subarray(w + 7, w + 9);
    for (let h = h0; h < h1; h++) {
      for (let f = f0; f < f1; f++) {
        const i = b * layout.sb + p * layout.sp + h * layout.sh + f;
        const s = src[base + h * srcHeadStride + f];
        if (op === 0) x[i] = 0;
        else if (op === 1) x[i] = Math.fround(x[i] * value);
        else if (op === 2) x[i] = Math.fround(x[i] + Math.fround(value * s));
        else if (op === 4) x[i] = value;
        else x[i] = s;
      }
    }
  }
}
