/**
 * The row-wise kernels of the attention-only trainer (`src/train/attn-only.ts`): a GPT-2-style
 * model without MLPs (LayerNorm, learned positions, causal attention, tied or untied
 * unembedding) trained with cross-entropy on chosen (row, position, target) pairs. The matmuls
 * are `narrow-matmul.wgsl.ts`; everything else is here, one invocation per row (a token, a
 * query, a key, a scored target) looping over a row's few dozen elements, which on lavapipe
 * beats a workgroup per row with tree reductions by ~10x and needs no barriers. Sizes are baked
 * into the source when the trainer is built (B sequences of T tokens, D = d_model, H heads of
 * E = d_head, V tokens, CAP scored targets at most; D and E multiples of 4).
 *
 * Layouts: x, nrm, a [B T, D]; qkv [B T, 3 H E] (queries, keys, values; heads in order in
 * each); z [B T, H E]; p, ds [B, H, T, T] (only k <= q written; v3 keeps lse [B, H, T]
 * instead). The last layer works in
 * target space: only the scored rows' queries, attention and outputs matter to the loss, so
 * there q, z and x are [CAP, ...] (slot i is row tRow[i], slots sorted by row, slots past count
 * zero) and keys and values, kv [B T, 2 H E], alone cover every row.
 *
 *   pack_qkv        W_qkv [D, 3HE] and its transpose from the model's W_Q, W_K, W_V (layers
 *                   before the last; their queries, keys and values are one [B T, 3HE] product)
 *   pack_kv         W_kv [D, 2HE], its transpose and b_kv from W_K, W_V, b_K, b_V (the last layer)
 *   transpose       out[c R + r] = in[r C + c] (W_Q^T, W_O^T, W_U^T)
 *   embed           x[r] = W_E[ids[r]] + W_pos[r % T]
 *   gather_rows     out[i] = src[tRow[i]] for the scored slots (zeros past count)
 *   scatter_add     dst[tRow[i]] += src[i] (each row scored once)
 *   ln_forward      nrm = (x - mean) / sqrt(var + eps), a = nrm w + b; rstd kept (LayerNorm's
 *                   biased variance, summed in order)
 *   attn_forward    one workgroup per (sequence, head), one invocation per query: scores
 *                   q.k scale, causal softmax (max-subtracted), z = p v (v1; v3 below)
 *   attn_forward_slots   one invocation per (scored slot, head): the same for its query
 *   loss_rows       per scored slot: lse(z) - z[y] and, in place, dlogits = (softmax - onehot) / count
 *   loss_sum        loss = sum of slots / count, in slot order
 *   ln_backward     dx (+)= rstd (g - mean(g) - nrm mean(g nrm)) with g = da w, per row (or per
 *                   scored slot, written to the slot and to its row)
 *   col_sums_part   dw[d] = sum_r da[r, d] nrm[r, d], db[d] = sum_r da[r, d] (norm gain and
 *   col_sums_total  bias) over row chunks in parallel, then the chunks in order
 *   attn_backward   per (sequence, head): per query dp = dz v, ds = p (dp - sum p dp) scale,
 *                   dq = ds k; then per key dk = sum_q ds q, dv = sum_q p dz (v1; v4 below)
 *   attn_backward_slots  per (sequence, head), one invocation per key, over the sequence's
 *                   scored slots in order: the same sums for the scored queries only
 *   pack_kv_folded, attn_forward_folded, attn_backward_folded   the last layer with its keys and
 *                   values folded into the scored queries (u = W_K q, z = (sum p a) W_V + b_V),
 *                   where few rows are scored: below
 *   pos_grad        dW_pos[t] = sum_b dx[b T + t] (zero for t >= T)
 *   embed_grad      dW_E[v] = sum of dx over the rows holding token v (the host's CSR index of
 *                   the batch: rows in order, so the sum's order is fixed; no float atomics)
 *
 * CPU reference: `src/train/attn-only.cpu.ts`. Versions: v1 of each; where the device has a fixed
 * subgroup size of at least 8 (below), v3 of attn_forward and v4 of attn_backward (one subgroup
 * per sequence and head; the pattern recomputed from lse instead of stored) and v2 of
 * attn_backward_slots.
 */

export const ATTN_ONLY_VERSIONS = [
  'pack_qkv_v1',
  'pack_kv_v1',
  'transpose_v1',
  'embed_v1',
  'gather_rows_v1',
  'scatter_add_v1',
  'ln_forward_v1',
  'attn_forward_v1',
  'attn_forward_v3',
  'attn_forward_slots_v1',
  'loss_rows_v1',
  'loss_sum_v1',
  'ln_backward_v1',
  'col_sums_part_v1',
  'col_sums_total_v1',
  'attn_backward_v1',
  'attn_backward_v4',
  'attn_backward_slots_v1',
  'attn_backward_slots_v2',
  'pack_kv_folded_v1',
  'attn_forward_folded_v1',
  'attn_backward_folded_v1',
  'pos_grad_v1',
  'embed_grad_v1',
] as const;

/** Invocations per workgroup for the row kernels (a query or key per invocation in attention: T <= 64 needs one pass). */
export const ROW_WG = 64;

export interface AttnOnlyDims {
  B: number;
  T: number;
  D: number;
  H: number;
  E: number;
  V: number;
  CAP: number;
  /** Rows of W_pos (n_ctx >= T). */
  P: number;
  eps: number;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const f = (x: number) => (Number.isInteger(x) ? `${x}.0` : `${x}`);

/** W_qkv [D, 3HE] and its transpose from W_Q, W_K, W_V [D, HE] (the layers before the last). */
export function packQkvSource({ D, H, E }: AttnOnlyDims): string {
  const HE = H * E;
  return `
@group(0) @binding(0) var<storage, read> WQ: array<f32>;            // [D, HE]
@group(0) @binding(1) var<storage, read> WK: array<f32>;            // [D, HE]
@group(0) @binding(2) var<storage, read> WV: array<f32>;            // [D, HE]
@group(0) @binding(3) var<storage, read_write> Wqkv: array<f32>;    // [D, 3HE]
@group(0) @binding(4) var<storage, read_write> WqkvT: array<f32>;   // [3HE, D]

@compute @workgroup_size(${ROW_WG})
fn pack_qkv_v1(@builtin(global_invocation_id) gid: vec3u) {
  let e = gid.x;
  if (e >= ${D * 3 * HE}u) { return; }
  let k = e / ${3 * HE}u;
  let j = e % ${3 * HE}u;
  var v: f32;
  if (j < ${HE}u) { v = WQ[k * ${HE}u + j]; } else if (j < ${2 * HE}u) { v = WK[k * ${HE}u + j - ${HE}u]; } else { v = WV[k * ${HE}u + j - ${2 * HE}u]; }
  Wqkv[e] = v;
  WqkvT[j * ${D}u + k] = v;
}
`;
}

/** W_kv [D, 2HE], its transpose and b_kv from W_K, W_V, b_K, b_V (the last layer). */
export function packKvSource({ D, H, E }: AttnOnlyDims): string {
  const HE = H * E;
  return `
@group(0) @binding(0) var<storage, read> WK: array<f32>;            // [D, HE]
@group(0) @binding(1) var<storage, read> WV: array<f32>;            // [D, HE]
@group(0) @binding(2) var<storage, read> bK: array<f32>;            // [HE]
@group(0) @binding(3) var<storage, read> bV: array<f32>;            // [HE]
@group(0) @binding(4) var<storage, read_write> Wkv: array<f32>;     // [D, 2HE]
@group(0) @binding(5) var<storage, read_write> WkvT: array<f32>;    // [2HE, D]
@group(0) @binding(6) var<storage, read_write> bkv: array<f32>;     // [2HE]

@compute @workgroup_size(${ROW_WG})
fn pack_kv_v1(@builtin(global_invocation_id) gid: vec3u) {
  let e = gid.x;
  if (e >= ${D * 2 * HE}u) { return; }
  let k = e / ${2 * HE}u;
  let j = e % ${2 * HE}u;
  var v: f32;
  if (j < ${HE}u) { v = WK[k * ${HE}u + j]; } else { v = WV[k * ${HE}u + j - ${HE}u]; }
  Wkv[e] = v;
  WkvT[j * ${D}u + k] = v;
  if (e < ${HE}u) {
    bkv[e] = bK[e];
    bkv[e + ${HE}u] = bV[e];
  }
}
`;
}

export function transposeSource(R: number, C: number): string {
  return `
@group(0) @binding(0) var<storage, read> src: array<f32>;         // [R, C]
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;   // [C, R]

@compute @workgroup_size(${ROW_WG})
fn transpose_v1(@builtin(global_invocation_id) gid: vec3u) {
  let e = gid.x;
  if (e >= ${R * C}u) { return; }
  dst[(e % ${C}u) * ${R}u + e / ${C}u] = src[e];
}
`;
}

export function embedSource({ B, T, D }: AttnOnlyDims): string {
  const D4 = D / 4;
  return `
@group(0) @binding(0) var<storage, read> ids: array<u32>;         // [B T]
@group(0) @binding(1) var<storage, read> WE: array<vec4f>;        // [V, D / 4]
@group(0) @binding(2) var<storage, read> Wpos: array<vec4f>;      // [P, D / 4]
@group(0) @binding(3) var<storage, read_write> x: array<vec4f>;   // [B T, D / 4]

@compute @workgroup_size(${ROW_WG})
fn embed_v1(@builtin(global_invocation_id) gid: vec3u) {
  let e = gid.x;
  if (e >= ${B * T * D4}u) { return; }
  let r = e / ${D4}u;
  let d = e % ${D4}u;
  x[e] = WE[ids[r] * ${D4}u + d] + Wpos[(r % ${T}u) * ${D4}u + d];
}
`;
}

/**
 * Rows between the batch and the scored slots: gather_rows out[i] = src[tRow[i]] (zeros past
 * count), or scatter_add dst[tRow[i]] += src[i] (each row is scored once, so no two invocations
 * add to one element).
 */
export function slotRowsSource({ CAP }: AttnOnlyDims, width: number, op: 'gather' | 'scatter'): string {
  const W4 = width / 4;
  const gather = op === 'gather';
  const at = `${W4}u + e % ${W4}u`;
  const body = gather
    ? `  if (i >= count[0]) { dst[e] = vec4f(); return; }
  dst[e] = src[tRow[i] * ${at}];`
    : `  if (i >= count[0]) { return; }
  let o = tRow[i] * ${at};
  dst[o] = dst[o] + src[e];`;
  return `
@group(0) @binding(0) var<storage, read> src: array<vec4f>;       // ${gather ? '[rows' : '[CAP'}, W / 4]
@group(0) @binding(1) var<storage, read> tRow: array<u32>;        // [CAP]
@group(0) @binding(2) var<storage, read> count: array<u32>;       // [1]
@group(0) @binding(3) var<storage, read_write> dst: array<vec4f>; // ${gather ? '[CAP' : '[rows'}, W / 4]

@compute @workgroup_size(${ROW_WG})
fn ${gather ? 'gather_rows_v1' : 'scatter_add_v1'}(@builtin(global_invocation_id) gid: vec3u) {
  let e = gid.x;
  if (e >= ${CAP * W4}u) { return; }
  let i = e / ${W4}u;
${body}
}
`;
}

/**
 * LayerNorm forward over `rows` rows; with `targets`, over the scored slots (row tRow[i] of x,
 * written to slot i; slots past count get zeros). Unrolled over the row, which is loaded once
 * and kept in registers; only the stores are guarded, so the gain and bias loads (the same
 * address in every invocation) stay outside control flow, where lavapipe makes them one load.
 */
export function lnForwardSource({ B, T, D, eps, CAP }: AttnOnlyDims, rows: number, targets: boolean): string {
  const D4 = D / 4;
  const ds = range(D4);
  const n = targets ? CAP : rows;
  return `
@group(0) @binding(0) var<storage, read> x: array<vec4f>;          // [rows, D / 4]
@group(0) @binding(1) var<storage, read> w: array<vec4f>;          // [D / 4]
@group(0) @binding(2) var<storage, read> b: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> nrm: array<vec4f>;  // [n, D / 4]
@group(0) @binding(4) var<storage, read_write> rstd: array<f32>;   // [n]
@group(0) @binding(5) var<storage, read_write> a: array<vec4f>;    // [n, D / 4]
${targets ? '@group(0) @binding(6) var<storage, read> tRow: array<u32>;   // [CAP]\n@group(0) @binding(7) var<storage, read> count: array<u32>;  // [1]' : ''}

@compute @workgroup_size(${ROW_WG})
fn ln_forward_v1(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  let ic = min(i, ${n - 1}u);
  let o = ic * ${D4}u;
  let s = ${targets ? `min(tRow[ic], ${B * T - 1}u) * ${D4}u` : 'o'};
${ds.map((d) => `  let x${d} = x[s + ${d}u];`).join('\n')}
  let mean = (${ds.map((d) => `dot(x${d}, vec4f(1.0))`).join(' + ')}) / ${f(D)};
${ds.map((d) => `  let c${d} = x${d} - mean;`).join('\n')}
  let r = inverseSqrt((${ds.map((d) => `dot(c${d}, c${d})`).join(' + ')}) / ${f(D)} + ${f(eps)});
${ds.map((d) => `  let n${d} = c${d} * r;\n  let a${d} = n${d} * w[${d}u] + b[${d}u];`).join('\n')}
  if (i < ${n}u) {
${
  targets
    ? `    if (i >= count[0]) {
${ds.map((d) => `      nrm[o + ${d}u] = vec4f();\n      a[o + ${d}u] = vec4f();`).join('\n')}
      rstd[i] = 0.0;
    } else {
${ds.map((d) => `      nrm[o + ${d}u] = n${d};\n      a[o + ${d}u] = a${d};`).join('\n')}
      rstd[i] = r;
    }`
    : `${ds.map((d) => `    nrm[o + ${d}u] = n${d};\n    a[o + ${d}u] = a${d};`).join('\n')}
    rstd[i] = r;`
}
  }
}
`;
}

/** Attention forward for one layer (`scale` multiplies q.k). */
export function attnForwardSource({ B, T, H, E }: AttnOnlyDims, scale: number): string {
  const HE = H * E;
  const E4 = E / 4;
  const S4 = (3 * HE) / 4; // qkv's row in vec4: queries, keys, values
  const es = range(E4);
  return `
@group(0) @binding(0) var<storage, read> qkv: array<vec4f>;       // [B T, 3HE / 4]
@group(0) @binding(1) var<storage, read_write> p: array<f32>;     // [B, H, T, T]
@group(0) @binding(2) var<storage, read_write> z: array<vec4f>;   // [B T, HE / 4]

@compute @workgroup_size(${ROW_WG})
fn attn_forward_v1(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let bh = wg.x;
  if (bh >= ${B * H}u) { return; }
  let b = bh / ${H}u;
  let h = bh % ${H}u;
  let base = b * ${T}u;
  let pb = bh * ${T * T}u;
  for (var q = li; q < ${T}u; q += ${ROW_WG}u) {
    let qo = (base + q) * ${S4}u + h * ${E4}u;
${es.map((e) => `    let q${e} = qkv[qo + ${e}u];`).join('\n')}
    var m = -3.0e38;
    for (var k = 0u; k <= q; k++) {
      let ko = (base + k) * ${S4}u + ${HE / 4}u + h * ${E4}u;
      let s = (${es.map((e) => `dot(q${e}, qkv[ko + ${e}u])`).join(' + ')}) * ${f(scale)};
      p[pb + q * ${T}u + k] = s;
      m = max(m, s);
    }
    var sum = 0.0;
    for (var k = 0u; k <= q; k++) {
      let e = exp(p[pb + q * ${T}u + k] - m);
      p[pb + q * ${T}u + k] = e;
      sum += e;
    }
    let inv = 1.0 / sum;
${es.map((e) => `    var z${e} = vec4f();`).join('\n')}
    for (var k = 0u; k <= q; k++) {
      let pk = p[pb + q * ${T}u + k] * inv;
      p[pb + q * ${T}u + k] = pk;
      let vo = (base + k) * ${S4}u + ${HE / 2}u + h * ${E4}u;
${es.map((e) => `      z${e} += pk * qkv[vo + ${e}u];`).join('\n')}
    }
    let zo = (base + q) * ${HE / 4}u + h * ${E4}u;
${es.map((e) => `    z[zo + ${e}u] = z${e};`).join('\n')}
  }
}
`;
}

/**
 * The last layer's attention for the scored slots only: one invocation per (slot, head), its
 * query's row of p ([CAP, H, T], k <= q) and z ([CAP, HE]); slots past count get zeros.
 */
export function attnForwardSlotsSource({ T, H, E, CAP }: AttnOnlyDims, scale: number): string {
  const HE = H * E;
  const E4 = E / 4;
  const es = range(E4);
  return `
@group(0) @binding(0) var<storage, read> qs: array<vec4f>;        // [CAP, HE / 4]
@group(0) @binding(1) var<storage, read_write> p: array<f32>;     // [CAP, H, T]
@group(0) @binding(2) var<storage, read_write> z: array<vec4f>;   // [CAP, HE / 4]
@group(0) @binding(3) var<storage, read> kv: array<vec4f>;        // [B T, 2HE / 4]
@group(0) @binding(4) var<storage, read> tRow: array<u32>;        // [CAP]
@group(0) @binding(5) var<storage, read> count: array<u32>;       // [1]

@compute @workgroup_size(${ROW_WG})
fn attn_forward_slots_v1(@builtin(global_invocation_id) gid: vec3u) {
  let e = gid.x;
  if (e >= ${CAP * H}u) { return; }
  let i = e / ${H}u;
  let h = e % ${H}u;
  let pb = e * ${T}u;
  let zo = i * ${HE / 4}u + h * ${E4}u;
  if (i >= count[0]) {
${es.map((e) => `    z[zo + ${e}u] = vec4f();`).join('\n')}
    return;
  }
  let r = tRow[i];
  let q = r % ${T}u;
  let base = r - q;
${es.map((e) => `  let q${e} = qs[zo + ${e}u];`).join('\n')}
  var m = -3.0e38;
  for (var k = 0u; k <= q; k++) {
    let ko = (base + k) * ${HE / 2}u + h * ${E4}u;
    let s = (${es.map((e) => `dot(q${e}, kv[ko + ${e}u])`).join(' + ')}) * ${f(scale)};
    p[pb + k] = s;
    m = max(m, s);
  }
  var sum = 0.0;
  for (var k = 0u; k <= q; k++) {
    let e = exp(p[pb + k] - m);
    p[pb + k] = e;
    sum += e;
  }
  let inv = 1.0 / sum;
${es.map((e) => `  var z${e} = vec4f();`).join('\n')}
  for (var k = 0u; k <= q; k++) {
    let pk = p[pb + k] * inv;
    p[pb + k] = pk;
    let vo = (base + k) * ${HE / 2}u + ${HE / 4}u + h * ${E4}u;
${es.map((e) => `    z${e} += pk * kv[vo + ${e}u];`).join('\n')}
  }
${es.map((e) => `  z[zo + ${e}u] = z${e};`).join('\n')}
}
`;
}

export function lossRowsSource({ V, CAP }: AttnOnlyDims): string {
  return `
@group(0) @binding(0) var<storage, read_write> logits: array<f32>;   // [CAP, V], becomes dlogits
@group(0) @binding(1) var<storage, read> tTok: array<u32>;           // [CAP]
@group(0) @binding(2) var<storage, read> count: array<u32>;          // [1]
@group(0) @binding(3) var<storage, read_write> part: array<f32>;     // [CAP]

@compute @workgroup_size(${ROW_WG})
fn loss_rows_v1(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= ${CAP}u) { return; }
  let o = i * ${V}u;
  let n = count[0];
  if (i >= n) {
    for (var v = 0u; v < ${V}u; v++) { logits[o + v] = 0.0; }
    part[i] = 0.0;
    return;
  }
  var m = -3.0e38;
  for (var v = 0u; v < ${V}u; v++) { m = max(m, logits[o + v]); }
  var s = 0.0;
  for (var v = 0u; v < ${V}u; v++) { s += exp(logits[o + v] - m); }
  let y = tTok[i];
  part[i] = m + log(s) - logits[o + y];
  let scale = 1.0 / (s * f32(n));
  let inv_n = 1.0 / f32(n);
  for (var v = 0u; v < ${V}u; v++) { logits[o + v] = exp(logits[o + v] - m) * scale; }
  logits[o + y] -= inv_n;
}

@compute @workgroup_size(1)
fn loss_sum_v1() {
  let n = count[0];
  var s = 0.0;
  for (var i = 0u; i < n; i++) { s += part[i]; }
  part[${CAP}u] = s / f32(max(n, 1u));
}
`;
}

/**
 * LayerNorm backward: per row, dx += rstd (g - mean(g) - nrm mean(g nrm)), g = da w; or per
 * scored slot (`targets`, rows = CAP), written to the slot of dxs (zeros past count) and to its
 * row of dx (which is zero before). Unrolled, the row's da and nrm loaded once (as ln_forward).
 */
export function lnBackwardSource({ D }: AttnOnlyDims, rows: number, targets: boolean): string {
  const D4 = D / 4;
  const ds = range(D4);
  return `
@group(0) @binding(0) var<storage, read> da: array<vec4f>;        // [n, D / 4]
@group(0) @binding(1) var<storage, read> nrm: array<vec4f>;       // [n, D / 4]
@group(0) @binding(2) var<storage, read> rstd: array<f32>;        // [n]
@group(0) @binding(3) var<storage, read> w: array<vec4f>;         // [D / 4]
@group(0) @binding(4) var<storage, read_write> dx: array<vec4f>;  // [rows, D / 4]
${targets ? '@group(0) @binding(5) var<storage, read> tRow: array<u32>;\n@group(0) @binding(6) var<storage, read> count: array<u32>;\n@group(0) @binding(7) var<storage, read_write> dxs: array<vec4f>;  // [CAP, D / 4]' : ''}

@compute @workgroup_size(${ROW_WG})
fn ln_backward_v1(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  let ic = min(i, ${rows - 1}u);
  let o = ic * ${D4}u;
  let r = rstd[ic];
${ds.map((d) => `  let g${d} = da[o + ${d}u] * w[${d}u];\n  let n${d} = nrm[o + ${d}u];`).join('\n')}
  let m1 = (${ds.map((d) => `dot(g${d}, vec4f(1.0))`).join(' + ')}) / ${f(D)};
  let m2 = (${ds.map((d) => `dot(g${d}, n${d})`).join(' + ')}) / ${f(D)};
${ds.map((d) => `  let v${d} = r * (g${d} - m1 - n${d} * m2);`).join('\n')}
  if (i < ${rows}u) {
${
  targets
    ? `    if (i >= count[0]) {
${ds.map((d) => `      dxs[o + ${d}u] = vec4f();`).join('\n')}
    } else {
      let t = tRow[i] * ${D4}u;
${ds.map((d) => `      dx[t + ${d}u] = v${d};\n      dxs[o + ${d}u] = v${d};`).join('\n')}
    }`
    : ds.map((d) => `    dx[o + ${d}u] = dx[o + ${d}u] + v${d};`).join('\n')
}
  }
}
`;
}

/**
 * dw[d] = sum_r da[r, d] nrm[r, d], db[d] = sum_r da[r, d] over `rows` rows (norm gain and
 * bias): col_sums_part sums `chunks` row ranges in parallel (one workgroup each, one invocation
 * per column, rows in order) into part [chunks, 2, D]; col_sums_total adds the chunks in order.
 */
export function colSumsSource({ D }: AttnOnlyDims, rows: number, chunks: number): string {
  const per = Math.ceil(rows / chunks);
  return `
@group(0) @binding(0) var<storage, read> da: array<f32>;          // [rows, D]
@group(0) @binding(1) var<storage, read> nrm: array<f32>;         // [rows, D]
@group(0) @binding(2) var<storage, read_write> dw: array<f32>;    // [D]
@group(0) @binding(3) var<storage, read_write> db: array<f32>;    // [D]
@group(0) @binding(4) var<storage, read_write> part: array<f32>;  // [chunks, 2, D]

@compute @workgroup_size(${ROW_WG})
fn col_sums_part_v1(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let c = wg.y;
  for (var d = li; d < ${D}u; d += ${ROW_WG}u) {
    var sw = 0.0;
    var sb = 0.0;
    for (var r = c * ${per}u; r < min(${rows}u, (c + 1u) * ${per}u); r++) {
      let g = da[r * ${D}u + d];
      sw += g * nrm[r * ${D}u + d];
      sb += g;
    }
    part[c * ${2 * D}u + d] = sw;
    part[c * ${2 * D}u + ${D}u + d] = sb;
  }
}

@compute @workgroup_size(${ROW_WG})
fn col_sums_total_v1(@builtin(global_invocation_id) gid: vec3u) {
  let d = gid.x;
  if (d >= ${D}u) { return; }
  var sw = 0.0;
  var sb = 0.0;
  for (var c = 0u; c < ${chunks}u; c++) {
    sw += part[c * ${2 * D}u + d];
    sb += part[c * ${2 * D}u + ${D}u + d];
  }
  dw[d] = sw;
  db[d] = sb;
}
`;
}

export function attnBackwardSource({ T, H, E }: AttnOnlyDims, scale: number): string {
  const HE = H * E;
  const E4 = E / 4;
  const N4 = (3 * HE) / 4;
  const es = range(E4);
  return `
@group(0) @binding(0) var<storage, read> qkv: array<vec4f>;        // [B T, 3HE / 4]
@group(0) @binding(1) var<storage, read> p: array<f32>;            // [B, H, T, T]
@group(0) @binding(2) var<storage, read> dz: array<vec4f>;         // [B T, HE / 4]
@group(0) @binding(3) var<storage, read_write> ds: array<f32>;     // [B, H, T, T]
@group(0) @binding(4) var<storage, read_write> dqkv: array<vec4f>; // [B T, 3HE / 4]

@compute @workgroup_size(${ROW_WG})
fn attn_backward_v1(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let bh = wg.x;
  let b = bh / ${H}u;
  let h = bh % ${H}u;
  let base = b * ${T}u;
  let pb = bh * ${T * T}u;
  for (var q = li; q < ${T}u; q += ${ROW_WG}u) {
    let zo = (base + q) * ${HE / 4}u + h * ${E4}u;
${es.map((e) => `    let g${e} = dz[zo + ${e}u];`).join('\n')}
    var sdp = 0.0;
    for (var k = 0u; k <= q; k++) {
      let vo = (base + k) * ${N4}u + ${(2 * HE) / 4}u + h * ${E4}u;
      let dp = ${es.map((e) => `dot(g${e}, qkv[vo + ${e}u])`).join(' + ')};
      ds[pb + q * ${T}u + k] = dp;
      sdp += p[pb + q * ${T}u + k] * dp;
    }
${es.map((e) => `    var dq${e} = vec4f();`).join('\n')}
    for (var k = 0u; k <= q; k++) {
      let o = pb + q * ${T}u + k;
      let d = p[o] * (ds[o] - sdp) * ${f(scale)};
      ds[o] = d;
      let ko = (base + k) * ${N4}u + ${HE / 4}u + h * ${E4}u;
${es.map((e) => `      dq${e} += d * qkv[ko + ${e}u];`).join('\n')}
    }
    let qo = (base + q) * ${N4}u + h * ${E4}u;
${es.map((e) => `    dqkv[qo + ${e}u] = dq${e};`).join('\n')}
  }
  storageBarrier();
  for (var k = li; k < ${T}u; k += ${ROW_WG}u) {
${es.map((e) => `    var dk${e} = vec4f();\n    var dv${e} = vec4f();`).join('\n')}
    for (var q = k; q < ${T}u; q++) {
      let o = pb + q * ${T}u + k;
      let d = ds[o];
      let pk = p[o];
      let qo = (base + q) * ${N4}u + h * ${E4}u;
      let zo = (base + q) * ${HE / 4}u + h * ${E4}u;
${es.map((e) => `      dk${e} += d * qkv[qo + ${e}u];\n      dv${e} += pk * dz[zo + ${e}u];`).join('\n')}
    }
    let ko = (base + k) * ${N4}u + ${HE / 4}u + h * ${E4}u;
${es.map((e) => `    dqkv[ko + ${e}u] = dk${e};\n    dqkv[ko + ${HE / 4 + e}u] = dv${e};`).join('\n')}
  }
}
`;
}

/**
 * The last layer's attention backward for the scored slots: one workgroup per (sequence, head),
 * one invocation per key, over the sequence's slots in order (slots sorted by row; seqOff[b] ..
 * seqOff[b + 1]). Per slot: dp_k = dz.v_k, sdp = sum_k p_k dp_k (in key order), ds_k =
 * p_k (dp_k - sdp) scale, dk_k += ds_k q, dv_k += p_k dz, and dq = sum_k ds_k k_k (E / 4
 * invocations, in key order). Keys of rows that no slot attends to get zero gradients.
 */
export function attnBackwardSlotsSource({ T, H, E }: AttnOnlyDims, scale: number): string {
  const HE = H * E;
  const E4 = E / 4;
  const es = range(E4);
  return `
@group(0) @binding(0) var<storage, read> qs: array<vec4f>;         // [CAP, HE / 4]
@group(0) @binding(1) var<storage, read> p: array<f32>;            // [CAP, H, T]
@group(0) @binding(2) var<storage, read> dz: array<vec4f>;         // [CAP, HE / 4]
@group(0) @binding(3) var<storage, read> seqOff: array<u32>;       // [B + 1]
@group(0) @binding(4) var<storage, read_write> dq: array<vec4f>;   // [CAP, HE / 4]
@group(0) @binding(5) var<storage, read> kv: array<vec4f>;         // [B T, 2HE / 4]
@group(0) @binding(6) var<storage, read_write> dkv: array<vec4f>;  // [B T, 2HE / 4]
@group(0) @binding(7) var<storage, read> tRow: array<u32>;         // [CAP]

var<workgroup> red: array<f32, ${ROW_WG}>;
var<workgroup> span: array<u32, 2>;

@compute @workgroup_size(${ROW_WG})
fn attn_backward_slots_v1(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let bh = wg.x;
  let b = bh / ${H}u;
  let h = bh % ${H}u;
  let base = b * ${T}u;
  let k = min(li, ${T - 1}u);
  if (li == 0u) { span[0] = seqOff[b]; span[1] = seqOff[b + 1u]; }
  let i0 = workgroupUniformLoad(&span[0]);
  let i1 = workgroupUniformLoad(&span[1]);
  let ko = (base + k) * ${HE / 2}u + h * ${E4}u;
${es.map((e) => `  let kk${e} = kv[ko + ${e}u];\n  let vv${e} = kv[ko + ${HE / 4 + e}u];`).join('\n')}
${es.map((e) => `  var dk${e} = vec4f();\n  var dv${e} = vec4f();`).join('\n')}
  for (var i = i0; i < i1; i++) {
    let q = tRow[i] % ${T}u;
    let zo = i * ${HE / 4}u + h * ${E4}u;
${es.map((e) => `    let g${e} = dz[zo + ${e}u];\n    let qq${e} = qs[zo + ${e}u];`).join('\n')}
    let pk = select(0.0, p[(i * ${H}u + h) * ${T}u + k], li <= q);
    let dp = ${es.map((e) => `dot(g${e}, vv${e})`).join(' + ')};
    red[li] = pk * dp;
    workgroupBarrier();
    var sdp = 0.0;
    for (var j = 0u; j < ${T}u; j++) { sdp += red[j]; }
    workgroupBarrier();
    let d = pk * (dp - sdp) * ${f(scale)};
${es.map((e) => `    dk${e} += d * qq${e};\n    dv${e} += pk * g${e};`).join('\n')}
    red[li] = d;
    workgroupBarrier();
    if (li < ${E4}u) {
      var acc = vec4f();
      for (var j = 0u; j < ${T}u; j++) { acc += red[j] * kv[(base + j) * ${HE / 2}u + h * ${E4}u + li]; }
      dq[zo + li] = acc;
    }
    workgroupBarrier();
  }
  if (li < ${T}u) {
${es.map((e) => `    dkv[ko + ${e}u] = dk${e};\n    dkv[ko + ${HE / 4 + e}u] = dv${e};`).join('\n')}
  }
}
`;
}

export function posGradSource({ B, T, D, P }: AttnOnlyDims): string {
  const D4 = D / 4;
  return `
@group(0) @binding(0) var<storage, read> dx: array<vec4f>;         // [B T, D / 4]
@group(0) @binding(1) var<storage, read_write> dpos: array<vec4f>; // [P, D / 4]

@compute @workgroup_size(${ROW_WG})
fn pos_grad_v1(@builtin(global_invocation_id) gid: vec3u) {
  let e = gid.x;
  if (e >= ${P * D4}u) { return; }
  let t = e / ${D4}u;
  let d = e % ${D4}u;
  var s = vec4f();
  if (t < ${T}u) {
    for (var b = 0u; b < ${B}u; b++) { s += dx[(b * ${T}u + t) * ${D4}u + d]; }
  }
  dpos[e] = s;
}
`;
}

export function embedGradSource({ D, V }: AttnOnlyDims): string {
  const D4 = D / 4;
  return `
@group(0) @binding(0) var<storage, read> dx: array<vec4f>;         // [B T, D / 4]
@group(0) @binding(1) var<storage, read> offsets: array<u32>;      // [V + 1]
@group(0) @binding(2) var<storage, read> order: array<u32>;        // [B T] rows by token
@group(0) @binding(3) var<storage, read_write> dWE: array<vec4f>;  // [V, D / 4]

@compute @workgroup_size(${ROW_WG})
fn embed_grad_v1(@builtin(global_invocation_id) gid: vec3u) {
  let e = gid.x;
  if (e >= ${V * D4}u) { return; }
  let v = e / ${D4}u;
  let d = e % ${D4}u;
  var s = vec4f();
  for (var j = offsets[v]; j < offsets[v + 1u]; j++) { s += dx[order[j] * ${D4}u + d]; }
  dWE[e] = s;
}
`;
}

/**
 * Where v3's lane `l` keeps its rows: positions l + S i for i < ceil(T / S), so a workgroup of
 * one subgroup holds a whole (sequence, head).
 */
function v3Layout({ T, H, E }: AttnOnlyDims, S: number) {
  const HE = H * E;
  const E4 = E / 4;
  const NB = Math.ceil(T / S);
  return {
    HE,
    E4,
    S4: (3 * HE) / 4, // qkv's row in vec4: queries, keys, values
    es: range(E4),
    groups: range(NB),
    /** Each position k < T (a key, or a query), with its group j and the lane r holding it. */
    keys: range(T).map((k) => ({ k, j: Math.floor(k / S), r: k % S })),
    /** The keys a query group i sees: every key of groups j <= i. */
    keysOf: (i: number) => range(Math.min(T, S * (i + 1))),
    /** The groups i >= j that see key group j. */
    from: (j: number) => range(NB - j).map((d) => j + d),
  };
}

/**
 * attn_forward_v3: attn_forward_v1 for a fixed subgroup size S (lavapipe's 8, a GPU's 32), one
 * subgroup per (sequence, head). Lane l loads the rows of positions l + S i once, and every
 * other row reaches it by `subgroupBroadcast`: on lavapipe a load costs about one scalar load
 * per lane and float, a broadcast one shuffle per vector, so this loads each row once per
 * (sequence, head) where v1 loaded it once per query. Scores, p and z stay in registers (T <= 64,
 * unrolled; query group i scores the key groups j <= i, the diagonal group masked k > q). The
 * pattern is not stored: the softmax's log-normaliser lse = m + log(sum) per query is, and the
 * backward recomputes p = exp(s - lse) from q and k (cheaper here than storing and loading T^2/2
 * floats per head).
 */
export function attnForwardV3Source(dims: AttnOnlyDims, scale: number, S: number): string {
  const { T, H } = dims;
  const { HE, E4, S4, es, groups, keys, keysOf, from } = v3Layout(dims, S);
  const dot = (a: string, b: string) => `(${es.map((e) => `dot(${a}_${e}, ${b}${e})`).join(' + ')})`;
  const scores = keys.flatMap(({ k, j, r }) => [
    ...es.map((e) => `  let kb${k}_${e} = subgroupBroadcast(k${j}_${e}, ${r}u);`),
    ...from(j).map((i) => (i === j ? `  let s${i}_${k} = select(-3.0e38, ${dot(`q${i}`, `kb${k}_`)} * ${f(scale)}, l >= ${r}u);` : `  let s${i}_${k} = ${dot(`q${i}`, `kb${k}_`)} * ${f(scale)};`)),
  ]);
  const softmax = groups.flatMap((i) => [
    `  let m${i} = ${keysOf(i)
      .map((k) => `s${i}_${k}`)
      .reduce((a, b) => `max(${a}, ${b})`)};`,
    ...keysOf(i).map((k) => `  let e${i}_${k} = select(0.0, exp(s${i}_${k} - m${i}), s${i}_${k} > -1.0e38);`),
    `  let sum${i} = ${keysOf(i)
      .map((k) => `e${i}_${k}`)
      .join(' + ')};`,
    ...es.map((e) => `  var z${i}_${e} = vec4f();`),
  ]);
  const pv = keys.flatMap(({ k, j, r }) => [
    `  {`,
    ...es.map((e) => `    let vb${e} = subgroupBroadcast(v${j}_${e}, ${r}u);`),
    ...from(j).flatMap((i) => es.map((e) => `    z${i}_${e} += e${i}_${k} * vb${e};`)),
    `  }`,
  ]);
  return `enable subgroups;
diagnostic(off, subgroup_uniformity);
@group(0) @binding(0) var<storage, read> qkv: array<vec4f>;       // [B T, 3HE / 4]
@group(0) @binding(1) var<storage, read_write> lse: array<f32>;   // [B, H, T]
@group(0) @binding(2) var<storage, read_write> z: array<vec4f>;   // [B T, HE / 4]

@compute @workgroup_size(${S})
fn attn_forward_v3(@builtin(workgroup_id) wg: vec3u, @builtin(subgroup_invocation_id) l: u32) {
  let bh = wg.x;
  let base = (bh / ${H}u) * ${T}u;
  let h = bh % ${H}u;
${groups
  .map((i) =>
    [
      `  let ro${i} = (base + min(l + ${S * i}u, ${T - 1}u)) * ${S4}u + h * ${E4}u;`,
      ...es.map((e) => `  let q${i}_${e} = qkv[ro${i} + ${e}u];\n  let k${i}_${e} = qkv[ro${i} + ${HE / 4 + e}u];\n  let v${i}_${e} = qkv[ro${i} + ${HE / 2 + e}u];`),
    ].join('\n'),
  )
  .join('\n')}
${scores.join('\n')}
${softmax.join('\n')}
${pv.join('\n')}
${groups
  .map((i) =>
    [
      `  if (l + ${S * i}u < ${T}u) {`,
      `    let zo = (base + l + ${S * i}u) * ${HE / 4}u + h * ${E4}u;`,
      `    let inv = 1.0 / sum${i};`,
      ...es.map((e) => `    z[zo + ${e}u] = z${i}_${e} * inv;`),
      `    lse[bh * ${T}u + l + ${S * i}u] = m${i} + log(sum${i});`,
      `  }`,
    ].join('\n'),
  )
  .join('\n')}
}
`;
}

/**
 * attn_backward_v4: attn_backward_v1 in attn_forward_v3's layout (one subgroup per (sequence,
 * head), lane l holding positions l + S i). The row sums sum_k p dp (for ds) come first, as
 * dz . z (z = sum_k p v, the forward's output). Then a loop over key groups j: iteration j loads
 * key group j (lane l: key S j + l) and, for each query group i >= j (unrolled, a uniform branch)
 * with every key of the group broadcast, recomputes p = exp(q.k scale - lse) and
 * ds = p (dz.v - sum p dp) scale and adds ds k to dq_i; then it transposes the S x S blocks of p
 * and ds across the subgroup in log2(S) butterfly steps (`subgroupShuffleXor` and a select per
 * register) and, with every query of group i broadcast, adds ds q and p dz to key group j's dk
 * and dv, stored at the end of the iteration. Nothing goes through memory but the rows in and
 * dq, dk, dv out. (Its v3 had the key groups unrolled too: the same speed, and lavapipe took
 * ~20 s to compile it at T 48 where v4 takes ~12.)
 */
export function attnBackwardV4Source(dims: AttnOnlyDims, scale: number, S: number): string {
  const { T, H } = dims;
  const { HE, E4, S4, es, groups } = v3Layout(dims, S);
  const NB = groups.length;
  const dot = (a: string, b: string) => `(${es.map((e) => `dot(${a}_${e}, ${b}_${e})`).join(' + ')})`;
  const rows = range(S);
  const load = groups.map((i) =>
    [
      `  let ro${i} = (base + min(l + ${S * i}u, ${T - 1}u)) * ${S4}u + h * ${E4}u;`,
      `  let zo${i} = (base + min(l + ${S * i}u, ${T - 1}u)) * ${HE / 4}u + h * ${E4}u;`,
      ...es.map((e) => `  let q${i}_${e} = qkv[ro${i} + ${e}u];\n  let g${i}_${e} = dz[zo${i} + ${e}u];\n  let z${i}_${e} = z[zo${i} + ${e}u];\n  var dq${i}_${e} = vec4f();`),
      `  let lse${i} = lse[bh * ${T}u + min(l + ${S * i}u, ${T - 1}u)];`,
      `  let D${i} = ${dot(`g${i}`, `z${i}`)};`,
    ].join('\n'),
  );
  // One query group i against key group j: lane l is query S i + l, register r key S j + r.
  const block = (i: number) => {
    const lines: string[] = [`    if (j <= ${i}u) {`];
    for (const r of rows) {
      lines.push(...es.map((e) => `      let kb${r}_${e} = subgroupBroadcast(k_${e}, ${r}u);\n      let vb${r}_${e} = subgroupBroadcast(v_${e}, ${r}u);`));
      // Keys past T (the last group's spare lanes), and on the diagonal keys after the query, score nothing.
      lines.push(`      let p${r} = select(0.0, exp(${dot(`q${i}`, `kb${r}`)} * ${f(scale)} - lse${i}), kj + ${r}u < ${T}u && (j < ${i}u || l >= ${r}u));`);
      lines.push(`      let ds${r} = p${r} * (${dot(`g${i}`, `vb${r}`)} - D${i}) * ${f(scale)};`);
      lines.push(...es.map((e) => `      dq${i}_${e} += ds${r} * kb${r}_${e};`));
    }
    // Transpose p and ds: afterwards lane l holds (query S i + r, key S j + l) as register r.
    for (const name of ['p', 'ds']) {
      let cur = rows.map((m) => `${name}${m}`);
      for (let d = S / 2, step = 0; d >= 1; d /= 2, step++) {
        const next = rows.map((m) => `t${name}${step}_${m}`);
        lines.push(...rows.map((m) => `      let ${next[m]} = select(subgroupShuffleXor(${cur[m ^ d]}, ${d}u), ${cur[m]}, ((l & ${d}u) != 0u) == ${(m & d) !== 0});`));
        cur = next;
      }
      lines.push(...rows.map((m) => `      let T${name}${m} = ${cur[m]};`));
    }
    // Every query of group i (those past T score nothing: their p and ds are 0 for every key).
    for (const r of rows) {
      if (S * i + r >= T) continue;
      lines.push(...es.map((e) => `      dk_${e} += Tds${r} * subgroupBroadcast(q${i}_${e}, ${r}u);\n      dv_${e} += Tp${r} * subgroupBroadcast(g${i}_${e}, ${r}u);`));
    }
    lines.push('    }');
    return lines.join('\n');
  };
  return `enable subgroups;
diagnostic(off, subgroup_uniformity);
@group(0) @binding(0) var<storage, read> qkv: array<vec4f>;        // [B T, 3HE / 4]
@group(0) @binding(1) var<storage, read> lse: array<f32>;          // [B, H, T]
@group(0) @binding(2) var<storage, read> dz: array<vec4f>;         // [B T, HE / 4]
@group(0) @binding(3) var<storage, read_write> dqkv: array<vec4f>; // [B T, 3HE / 4]
@group(0) @binding(4) var<storage, read> z: array<vec4f>;          // [B T, HE / 4] the forward's output

@compute @workgroup_size(${S})
fn attn_backward_v4(@builtin(workgroup_id) wg: vec3u, @builtin(subgroup_invocation_id) l: u32) {
  let bh = wg.x;
  let base = (bh / ${H}u) * ${T}u;
  let h = bh % ${H}u;
${load.join('\n')}
  for (var j = 0u; j < ${NB}u; j++) {
    let kj = j * ${S}u;
    let ko = (base + min(kj + l, ${T - 1}u)) * ${S4}u + h * ${E4}u;
${es.map((e) => `    let k_${e} = qkv[ko + ${HE / 4 + e}u];\n    let v_${e} = qkv[ko + ${HE / 2 + e}u];\n    var dk_${e} = vec4f();\n    var dv_${e} = vec4f();`).join('\n')}
${groups.map(block).join('\n')}
    if (kj + l < ${T}u) {
${es.map((e) => `      dqkv[ko + ${HE / 4 + e}u] = dk_${e};\n      dqkv[ko + ${HE / 2 + e}u] = dv_${e};`).join('\n')}
    }
  }
${groups
  .map((i) => [`  if (l + ${S * i}u < ${T}u) {`, `    let o = (base + l + ${S * i}u) * ${S4}u + h * ${E4}u;`, ...es.map((e) => `    dqkv[o + ${e}u] = dq${i}_${e};`), `  }`].join('\n'))
  .join('\n')}
}
`;
}

/**
 * attn_backward_slots_v2: attn_backward_slots_v1 for a fixed subgroup size S, with a workgroup
 * of one subgroup: lane s holds keys s, s + S, ... (T / S of them, in registers), and the two
 * reductions over keys (sum p dp, and dq = sum ds k) are a lane's partial sums in key order
 * then `subgroupAdd`. No workgroup barriers, which on lavapipe cost more than the arithmetic.
 */
export function attnBackwardSlotsV2Source({ T, H, E }: AttnOnlyDims, scale: number, subgroupSize: number): string {
  const HE = H * E;
  const E4 = E / 4;
  const es = range(E4);
  const S = subgroupSize;
  const js = range(Math.ceil(T / S));
  const perKey = (j: number) =>
    [
      `  let k${j} = li + ${j * S}u;`,
      `  let ko${j} = (base + min(k${j}, ${T - 1}u)) * ${HE / 2}u + h * ${E4}u;`,
      ...es.map((e) => `  let kk${j}_${e} = kv[ko${j} + ${e}u];\n  let vv${j}_${e} = kv[ko${j} + ${HE / 4 + e}u];\n  var dk${j}_${e} = vec4f();\n  var dv${j}_${e} = vec4f();`),
    ].join('\n');
  const scores = (j: number) => `    let p${j} = select(0.0, p[po + min(k${j}, ${T - 1}u)], k${j} <= q);\n    let dp${j} = ${es.map((e) => `dot(g${e}, vv${j}_${e})`).join(' + ')};`;
  const grads = (j: number) => [`    let d${j} = p${j} * (dp${j} - sdp) * ${f(scale)};`, ...es.map((e) => `    dk${j}_${e} += d${j} * qq${e};\n    dv${j}_${e} += p${j} * g${e};`)].join('\n');
  const store = (j: number) => [`  if (k${j} < ${T}u) {`, ...es.map((e) => `    dkv[ko${j} + ${e}u] = dk${j}_${e};\n    dkv[ko${j} + ${HE / 4 + e}u] = dv${j}_${e};`), '  }'].join('\n');
  return `enable subgroups;
@group(0) @binding(0) var<storage, read> qs: array<vec4f>;         // [CAP, HE / 4]
@group(0) @binding(1) var<storage, read> p: array<f32>;            // [CAP, H, T]
@group(0) @binding(2) var<storage, read> dz: array<vec4f>;         // [CAP, HE / 4]
@group(0) @binding(3) var<storage, read> seqOff: array<u32>;       // [B + 1]
@group(0) @binding(4) var<storage, read_write> dq: array<vec4f>;   // [CAP, HE / 4]
@group(0) @binding(5) var<storage, read> kv: array<vec4f>;         // [B T, 2HE / 4]
@group(0) @binding(6) var<storage, read_write> dkv: array<vec4f>;  // [B T, 2HE / 4]
@group(0) @binding(7) var<storage, read> tRow: array<u32>;         // [CAP]

var<workgroup> span: array<u32, 2>;

@compute @workgroup_size(${S})
fn attn_backward_slots_v2(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let bh = wg.x;
  let b = bh / ${H}u;
  let h = bh % ${H}u;
  let base = b * ${T}u;
  if (li == 0u) { span[0] = seqOff[b]; span[1] = seqOff[b + 1u]; }
  let i0 = workgroupUniformLoad(&span[0]);
  let i1 = workgroupUniformLoad(&span[1]);
${js.map(perKey).join('\n')}
  for (var i = i0; i < i1; i++) {
    let q = tRow[i] % ${T}u;
    let zo = i * ${HE / 4}u + h * ${E4}u;
    let po = (i * ${H}u + h) * ${T}u;
${es.map((e) => `    let g${e} = dz[zo + ${e}u];\n    let qq${e} = qs[zo + ${e}u];`).join('\n')}
${js.map(scores).join('\n')}
    let sdp = subgroupAdd(${js.map((j) => `p${j} * dp${j}`).join(' + ')});
${js.map(grads).join('\n')}
${es.map((e) => `    let sq${e} = subgroupAdd(${js.map((j) => `d${j} * kk${j}_${e}`).join(' + ')});`).join('\n')}
    if (li == 0u) {
${es.map((e) => `      dq[zo + ${e}u] = sq${e};`).join('\n')}
    }
  }
${js.map(store).join('\n')}
}
`;
}

/**
 * pack_kv_folded: the last layer's key and value weights as block-diagonal matrices, for the
 * folded last layer (below): ZK and ZV [H D, HE] hold W_K and W_V's head h columns, transposed,
 * in rows h D .. h D + D - 1; ZKt and ZVt [HE, H D] are their transposes. Entries off the blocks
 * stay zero (buffers start zeroed and nothing else writes them).
 */
export function packKvFoldedSource({ D, H, E }: AttnOnlyDims): string {
  const HE = H * E;
  return `
@group(0) @binding(0) var<storage, read> WK: array<f32>;            // [D, HE]
@group(0) @binding(1) var<storage, read> WV: array<f32>;            // [D, HE]
@group(0) @binding(2) var<storage, read_write> ZK: array<f32>;      // [H D, HE]
@group(0) @binding(3) var<storage, read_write> ZKt: array<f32>;     // [HE, H D]
@group(0) @binding(4) var<storage, read_write> ZV: array<f32>;      // [H D, HE]
@group(0) @binding(5) var<storage, read_write> ZVt: array<f32>;     // [HE, H D]

@compute @workgroup_size(${ROW_WG})
fn pack_kv_folded_v1(@builtin(global_invocation_id) gid: vec3u) {
  let e = gid.x;
  if (e >= ${D * HE}u) { return; }
  let d = e / ${HE}u;
  let j = e % ${HE}u;
  let r = (j / ${E}u) * ${D}u + d; // row h D + d of the block-diagonal [H D, HE]
  ZK[r * ${HE}u + j] = WK[e];
  ZKt[j * ${H * D}u + r] = WK[e];
  ZV[r * ${HE}u + j] = WV[e];
  ZVt[j * ${H * D}u + r] = WV[e];
}
`;
}

/**
 * Lines loading a [D / 4] vec4 vector at \`off\` the v3 way: lane l loads elements l, l + S, ...
 * and every lane takes each by \`subgroupBroadcast\` (one load per lane instead of D / 4).
 */
function broadcastVector(name: string, buffer: string, off: string, D4: number, S: number, indent: string): string[] {
  const parts = range(Math.ceil(D4 / S));
  return [
    ...parts.map((m) => `${indent}let ${name}L${m} = ${buffer}[${off} + min(l + ${S * m}u, ${D4 - 1}u)];`),
    ...range(D4).map((c) => `${indent}let ${name}${c} = subgroupBroadcast(${name}L${Math.floor(c / S)}, ${c % S}u);`),
  ];
}

/**
 * attn_forward_folded: the last layer's attention with its keys and values folded into the
 * scored queries, for when few rows are scored (CAP T < B T E). A key is k = a W_K + b_K, so a
 * score is q.k = u.a + q.b_K with u = W_K q per head ([H, D]; the matmul before this kernel),
 * and q.b_K is the same for every key: the softmax drops it. A value is v = a W_V + b_V, so
 * z = sum_j p_j v_j = y W_V + b_V with y = sum_j p_j a_j (the matmul after). This kernel scores
 * the ln outputs a directly: one subgroup per sequence, lane l holding rows l + S i, and for
 * each of the sequence's scored slots and each head p = softmax(u.a scale) over rows j <= q and
 * y = sum_j p_j a_j (the lanes' partial sums, then `subgroupAdd`); the log-normaliser lse is kept
 * for the backward. y is [CAP, H, D], lse [CAP, H]; slots past count are not written (their
 * output gradient is zero). The heads are a loop, not unrolled: unrolled, lavapipe took 3x as
 * long to compile this kernel and its backward (21 s and 42 s with a cold shader cache).
 */
export function attnForwardFoldedSource({ T, H, D }: AttnOnlyDims, scale: number, S: number): string {
  const D4 = D / 4;
  const cs = range(D4);
  const groups = range(Math.ceil(T / S));
  return `enable subgroups;
diagnostic(off, subgroup_uniformity);
@group(0) @binding(0) var<storage, read> a: array<vec4f>;          // [B T, D / 4]
@group(0) @binding(1) var<storage, read> u: array<vec4f>;          // [CAP, H, D / 4]
@group(0) @binding(2) var<storage, read_write> y: array<vec4f>;    // [CAP, H, D / 4]
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;    // [CAP, H]
@group(0) @binding(4) var<storage, read> tRow: array<u32>;         // [CAP]
@group(0) @binding(5) var<storage, read> seqOff: array<u32>;       // [B + 1]

@compute @workgroup_size(${S})
fn attn_forward_folded_v1(@builtin(workgroup_id) wg: vec3u, @builtin(subgroup_invocation_id) l: u32) {
  let b = wg.x;
  let base = b * ${T}u;
${groups.map((i) => `  let ar${i} = (base + min(l + ${S * i}u, ${T - 1}u)) * ${D4}u;\n${cs.map((c) => `  let a${i}_${c} = a[ar${i} + ${c}u];`).join('\n')}`).join('\n')}
  for (var t = seqOff[b]; t < seqOff[b + 1u]; t++) {
    let q = tRow[t] % ${T}u;
    for (var h = 0u; h < ${H}u; h++) {
${[
  `    {`,
  `      let uo = (t * ${H}u + h) * ${D4}u;`,
  ...broadcastVector('u', 'u', 'uo', D4, S, '      '),
  ...groups.map((i) => `      let s${i} = select(-3.0e38, (${cs.map((c) => `dot(u${c}, a${i}_${c})`).join(' + ')}) * ${f(scale)}, l + ${S * i}u <= q);`),
  `      let m = subgroupMax(${groups.map((i) => `s${i}`).reduce((x, z) => `max(${x}, ${z})`)});`,
  ...groups.map((i) => `      let e${i} = select(0.0, exp(s${i} - m), l + ${S * i}u <= q);`),
  `      let sum = subgroupAdd(${groups.map((i) => `e${i}`).join(' + ')});`,
  ...cs.map((c) => `      let y${c} = subgroupAdd(${groups.map((i) => `e${i} * a${i}_${c}`).join(' + ')});`),
  `      if (l == 0u) {`,
  `        let inv = 1.0 / sum;`,
  ...cs.map((c) => `        y[uo + ${c}u] = y${c} * inv;`),
  `        lse[t * ${H}u + h] = m + log(sum);`,
  `      }`,
  `    }`,
].join('\n')}
    }
  }
}
`;
}

/**
 * attn_backward_folded: attn_forward_folded's backward. Per scored slot and head, with
 * dy = W_V dz (the matmul before): p = exp(u.a scale - lse) recomputed, dp_j = dy.a_j,
 * ds_j = p_j (dp_j - sum p dp) scale, du = sum_j ds_j a_j (stored; dq = W_K^T du and the key
 * weights' gradient follow as matmuls), and every row's da_j = sum over its sequence's slots and
 * heads of p_j dy + ds_j u, kept in the lanes' registers and written once for every row (zero
 * where a sequence has no scored slot).
 */
export function attnBackwardFoldedSource({ T, H, D }: AttnOnlyDims, scale: number, S: number): string {
  const D4 = D / 4;
  const cs = range(D4);
  const groups = range(Math.ceil(T / S));
  return `enable subgroups;
diagnostic(off, subgroup_uniformity);
@group(0) @binding(0) var<storage, read> a: array<vec4f>;          // [B T, D / 4]
@group(0) @binding(1) var<storage, read> u: array<vec4f>;          // [CAP, H, D / 4]
@group(0) @binding(2) var<storage, read> dy: array<vec4f>;         // [CAP, H, D / 4]
@group(0) @binding(3) var<storage, read> lse: array<f32>;          // [CAP, H]
@group(0) @binding(4) var<storage, read> tRow: array<u32>;         // [CAP]
@group(0) @binding(5) var<storage, read> seqOff: array<u32>;       // [B + 1]
@group(0) @binding(6) var<storage, read_write> du: array<vec4f>;   // [CAP, H, D / 4]
@group(0) @binding(7) var<storage, read_write> da: array<vec4f>;   // [B T, D / 4]

@compute @workgroup_size(${S})
fn attn_backward_folded_v1(@builtin(workgroup_id) wg: vec3u, @builtin(subgroup_invocation_id) l: u32) {
  let b = wg.x;
  let base = b * ${T}u;
${groups.map((i) => `  let ar${i} = (base + min(l + ${S * i}u, ${T - 1}u)) * ${D4}u;\n${cs.map((c) => `  let a${i}_${c} = a[ar${i} + ${c}u];\n  var g${i}_${c} = vec4f();`).join('\n')}`).join('\n')}
  for (var t = seqOff[b]; t < seqOff[b + 1u]; t++) {
    let q = tRow[t] % ${T}u;
    for (var h = 0u; h < ${H}u; h++) {
${[
  `    {`,
  `      let uo = (t * ${H}u + h) * ${D4}u;`,
  ...broadcastVector('u', 'u', 'uo', D4, S, '      '),
  ...broadcastVector('dy', 'dy', 'uo', D4, S, '      '),
  `      let ls = lse[t * ${H}u + h];`,
  ...groups.map((i) => `      let p${i} = select(0.0, exp((${cs.map((c) => `dot(u${c}, a${i}_${c})`).join(' + ')}) * ${f(scale)} - ls), l + ${S * i}u <= q);`),
  ...groups.map((i) => `      let dp${i} = ${cs.map((c) => `dot(dy${c}, a${i}_${c})`).join(' + ')};`),
  `      let sdp = subgroupAdd(${groups.map((i) => `p${i} * dp${i}`).join(' + ')});`,
  ...groups.map((i) => `      let ds${i} = p${i} * (dp${i} - sdp) * ${f(scale)};`),
  ...cs.map((c) => `      let du${c} = subgroupAdd(${groups.map((i) => `ds${i} * a${i}_${c}`).join(' + ')});`),
  `      if (l == 0u) {`,
  ...cs.map((c) => `        du[uo + ${c}u] = du${c};`),
  `      }`,
  ...groups.flatMap((i) => cs.map((c) => `      g${i}_${c} += p${i} * dy${c} + ds${i} * u${c};`)),
  `    }`,
].join('\n')}
    }
  }
${groups.map((i) => `  if (l + ${S * i}u < ${T}u) {\n${cs.map((c) => `    da[(base + l + ${S * i}u) * ${D4}u + ${c}u] = g${i}_${c};`).join('\n')}\n  }`).join('\n')}
}
`;
}
