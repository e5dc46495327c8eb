/**
 * The backward of the forward's matmul  Y[m, n] = sum_k X[m, k] W[k, n] + b[n]  (or, with
 * `transW`, W stored [N, K] as the unembedding's token rows: Y = X W^T):
 *
 *   matmul_dx    dX[m, k] (+)= sum_n G[m, n] W[k, n]              (transW: W[n, k])
 *   matmul_dw    dW[k, n] (+)= sum_m X'[m, k] G[m, n]              stored [K, N], or [N, K] with transOut
 *                X' = X * gain[k] + bias[k] with `affine` (the norm's output rebuilt from hook_normalized)
 *   bias_grad    db[n]    (+)= sum_m G[m, n]                        (column sums)
 *
 * G = dL/dY. Row m of X, G and dX is buffer row `rows[m]` with variant `rows` (the forward's row
 * table: only the rows a ragged pass computed). G and X have row strides (ldg, ldx) and element
 * offsets, so a column block of a wider gradient (one vocabulary chunk of dlogits) can be read in
 * place. `acc` adds into the output instead of overwriting it (a tied embedding's second share,
 * the q/k/v projections summing into one input gradient). WGSL has no float atomics: every output
 * element is summed by one invocation in a fixed order, so two runs give the same bits.
 *
 * Versions (entry points):
 *   v1 `matmul_dx_v1`, `matmul_dw_v1`: one invocation per output element, serial over the
 *       reduced axis. Any shape, f16 W (variant `f16W`, widened to f32 as read). Readable baseline.
 *       Dispatch: (ceil(cols / 16), ceil(rows / 16)) workgroups of 16 x 16.
 *   v2 `matmul_dx_v2`, `matmul_dw_v2`: register tiles, operands read as vec4 (fp32, every
 *       contracted or stored row a multiple of 4 floats and every offset 4-aligned; the host
 *       runs v1 otherwise, and for f16 weights). Variant `scalarG` reads G as scalars instead,
 *       for the transposed-weight dX and dW, so a gradient of any row stride works in place (the
 *       logits' gradient, V = 50257 columns, overwriting the logits), no workgroup memory (on lavapipe it is ordinary CPU memory).
 *       matmul_dx_v2: each invocation 8 rows x 4 columns of dX; n advances 4 at a time, so per
 *       step 8 G vec4 and 4 W vec4 loads feed 32 vec4 products (transW: 8 rows x 8 columns, G
 *       scalars and two W vec4 per step, as the forward's v3). matmul_dw_v2: each invocation
 *       8 k x 8 n of dW, one m per step: 2 X vec4 and 2 G vec4 loads feed 16 vec4 products.
 *       Dispatch: workgroups of 16 x 1; (ceil(cols / (16 * tile cols)), ceil(rows / tile rows)).
 *   v1 `bias_grad_v1`: one invocation per column, serial over rows. Dispatch: ceil(N / WG) of WG.
 *   v1 `transpose_v1`: XT[k, m] = X'[m, k] (with the `affine` gain and bias, through the row table):
 *       a layer's weight gradient is then the forward's own matmul, XT G, whose tuned tiles
 *       (`matmul.wgsl.ts` v5 / v6) run ~1.7x faster than matmul_dw_v2 on lavapipe; the input
 *       gradient likewise is the forward's matmul with W read transposed (~2.7x faster than
 *       matmul_dx_v2). v1 and v2 here remain for the vocabulary-chunked unembedding, whose
 *       gradient is a column block of wider rows. One invocation per element of XT, WG per
 *       workgroup, 2-D folded.
 *   v1 `copy_block_v1`: XB[m, k] = X[m, k] for a column block of wider rows (row stride ldx), made
 *       contiguous: the unembedding's input gradient is then the forward's matmul too, a block of
 *       vocabulary rows at a time. One invocation per element, WG per workgroup, 2-D folded.
 *       Tried and dropped: v2's loops unrolled in TypeScript (as the
 *       forward's v5): no faster on lavapipe, and 16 x 16 tiles took 1-2 minutes to compile.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const MATMUL_BACKWARD_VERSIONS = ['matmul_dx_v1', 'matmul_dx_v2', 'matmul_dw_v1', 'matmul_dw_v2', 'bias_grad_v1', 'transpose_v1', 'copy_block_v1'] as const;

/** Outputs per invocation of the v2 tiles: [rows, columns]; the host's dispatch must match. */
export const DX_TILE = { plain: [8, 4], transW: [8, 8] } as const;
export const DW_TILE = [8, 8] as const;

export interface MatmulBackwardVariant {
  /** W is stored [N, K] (the forward read it transposed). */
  transW?: boolean;
  /** W holds f16 weights (v1 only). */
  f16W?: boolean;
  /** Rows go through a table (binding 5). */
  rows?: boolean;
  /** Add into the output. */
  acc?: boolean;
  /** matmul_dw: X' = X * gain + bias per column k (bindings 6, 7). */
  affine?: boolean;
  /** matmul_dw: store dW as [N, K]. */
  transOut?: boolean;
  /** v2 of matmul_dx with transW, and matmul_dw: G read as scalars (any row stride or offset). */
  scalarG?: boolean;
}

export function matmulBackwardSource(v: MatmulBackwardVariant = {}): string {
  const { transW = false, f16W = false, rows = false, acc = false, affine = false, transOut = false, scalarG = false } = v;
  return wgsl`
#if ${f16W}
enable f16;
#endif
struct Params {
  M: u32,      // rows of X, G (the forward's M)
  N: u32,      // the forward's output width
  K: u32,      // the forward's input width
  ldx: u32,    // row stride of X (and of dX), in floats
  ldg: u32,    // row stride of G
  x_off: u32,  // element offsets inside the bound windows
  g_off: u32,
  w_off: u32,  // W (matmul_dx) or dW (matmul_dw)
}

// Invocations per workgroup of the one-invocation-per-item entry points: picked on the host (Gpu.workgroupSize).
override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
// v1 reads scalars, v2 the same bindings as vec4 (WGSL allows two variables on one binding when
// no entry point uses both).
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(1) var<storage, read> G4: array<vec4f>;
#if ${f16W}
@group(0) @binding(2) var<storage, read> W: array<f16>;
#else
@group(0) @binding(2) var<storage, read> W: array<f32>;
#endif
@group(0) @binding(2) var<storage, read> W4: array<vec4f>;
// matmul_dx: dX (written); matmul_dw: X (read). bias_grad: db (written).
@group(0) @binding(3) var<storage, read_write> X: array<f32>;
@group(0) @binding(3) var<storage, read_write> X4: array<vec4f>;
// matmul_dw: dW (written); unused elsewhere.
@group(0) @binding(4) var<storage, read_write> D: array<f32>;
#if ${rows}
@group(0) @binding(5) var<storage, read> rowIdx: array<u32>;
#endif
#if ${affine}
@group(0) @binding(6) var<storage, read> gain: array<f32>;
@group(0) @binding(7) var<storage, read> shift: array<f32>;
#endif

fn rowOf(m: u32) -> u32 {
#if ${rows}
  return rowIdx[m];
#else
  return m;
#endif
}

fn loadW(k: u32, n: u32) -> f32 {
#if ${transW}
  return f32(W[p.w_off + n * p.K + k]);
#else
  return f32(W[p.w_off + k * p.N + n]);
#endif
}

fn loadX(r: u32, k: u32) -> f32 {
#if ${affine}
  return X[p.x_off + r * p.ldx + k] * gain[k] + shift[k];
#else
  return X[p.x_off + r * p.ldx + k];
#endif
}

@compute @workgroup_size(16, 16)
fn matmul_dx_v1(@builtin(global_invocation_id) gid: vec3u) {
  let k = gid.x;
  let m = gid.y;
  if (m >= p.M || k >= p.K) { return; }
  let r = rowOf(m);
  var s = 0.0;
  for (var n = 0u; n < p.N; n++) { s += G[p.g_off + r * p.ldg + n] * loadW(k, n); }
  let o = p.x_off + r * p.ldx + k;
#if ${acc}
  X[o] = X[o] + s;
#else
  X[o] = s;
#endif
}

@compute @workgroup_size(16, 16)
fn matmul_dw_v1(@builtin(global_invocation_id) gid: vec3u) {
  let n = gid.x;
  let k = gid.y;
  if (k >= p.K || n >= p.N) { return; }
  var s = 0.0;
  for (var m = 0u; m < p.M; m++) {
    let r = rowOf(m);
    s += loadX(r, k) * G[p.g_off + r * p.ldg + n];
  }
#if ${transOut}
  let o = p.w_off + n * p.K + k;
#else
  let o = p.w_off + k * p.N + n;
#endif
#if ${acc}
  D[o] = D[o] + s;
#else
  D[o] = s;
#endif
}

@compute @workgroup_size(WG)
fn bias_grad_v1(@builtin(global_invocation_id) gid: vec3u) {
  let n = gid.x;
  if (n >= p.N) { return; }
  var s = 0.0;
  for (var m = 0u; m < p.M; m++) { s += G[p.g_off + rowOf(m) * p.ldg + n]; }
#if ${acc}
  X[p.x_off + n] = X[p.x_off + n] + s;
#else
  X[p.x_off + n] = s;
#endif
}

// Every stride and offset read as vec4 is a multiple of 4 floats (the host checks), so i >> 2 is
// exact. With scalarG, G's four values are separate loads (zero past N: a row's end).
fn g4(r: u32, n: u32) -> vec4f {
#if ${scalarG}
  let o = p.g_off + r * p.ldg + n;
  return vec4f(gs(o, n), gs(o + 1u, n + 1u), gs(o + 2u, n + 2u), gs(o + 3u, n + 3u));
#else
  return G4[(p.g_off + r * p.ldg + n) >> 2u];
#endif
}
fn gs(i: u32, n: u32) -> f32 { return select(0.0, G[i], n < p.N); }

#if ${transW}
// dX[m, k0 .. k0+7] for 8 rows: per n, 8 G scalars (one lane of a vec4 each) and W[n, k0 .. k0+7].
@compute @workgroup_size(16, 1)
fn matmul_dx_v2(@builtin(global_invocation_id) gid: vec3u) {
  let k0 = gid.x * 8u;
  let m0 = gid.y * 8u;
  if (m0 >= p.M || k0 >= p.K) { return; }
  var r: array<u32, 8>;
  for (var i = 0u; i < 8u; i++) { r[i] = rowOf(min(m0 + i, p.M - 1u)); }
  // Columns past K read the last vec4 instead (never stored).
  let ka = min(k0, p.K - 4u);
  let kb = min(k0 + 4u, p.K - 4u);
  var lo: array<vec4f, 8>;
  var hi: array<vec4f, 8>;
  for (var n0 = 0u; n0 < p.N; n0 += 4u) {
#if ${!scalarG}
    var g: array<vec4f, 8>;
    for (var i = 0u; i < 8u; i++) { g[i] = g4(r[i], n0); }
#endif
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + j;
      if (n >= p.N) { break; }
      let wa = W4[(p.w_off + n * p.K + ka) >> 2u];
      let wb = W4[(p.w_off + n * p.K + kb) >> 2u];
      for (var i = 0u; i < 8u; i++) {
#if ${scalarG}
        let gv = G[p.g_off + r[i] * p.ldg + n];
#else
        let gv = g[i][j];
#endif
        lo[i] += gv * wa;
        hi[i] += gv * wb;
      }
    }
  }
  for (var i = 0u; i < 8u; i++) {
    if (m0 + i >= p.M) { break; }
    for (var j = 0u; j < 4u; j++) {
      if (k0 + j < p.K) { storeX(r[i], k0 + j, lo[i][j]); }
      if (k0 + 4u + j < p.K) { storeX(r[i], k0 + 4u + j, hi[i][j]); }
    }
  }
}
#else
// dX[m, k0 .. k0+3] for 8 rows: per step, G[m, n .. n+3] and W[k, n .. n+3] as vec4, a dot each.
@compute @workgroup_size(16, 1)
fn matmul_dx_v2(@builtin(global_invocation_id) gid: vec3u) {
  let k0 = gid.x * 4u;
  let m0 = gid.y * 8u;
  if (m0 >= p.M || k0 >= p.K) { return; }
  var r: array<u32, 8>;
  for (var i = 0u; i < 8u; i++) { r[i] = rowOf(min(m0 + i, p.M - 1u)); }
  var wrow: array<u32, 4>;
  for (var j = 0u; j < 4u; j++) { wrow[j] = p.w_off + min(k0 + j, p.K - 1u) * p.N; }
  var acc: array<array<vec4f, 4>, 8>;
  for (var n = 0u; n < p.N; n += 4u) {
    let w0 = W4[(wrow[0] + n) >> 2u];
    let w1 = W4[(wrow[1] + n) >> 2u];
    let w2 = W4[(wrow[2] + n) >> 2u];
    let w3 = W4[(wrow[3] + n) >> 2u];
    for (var i = 0u; i < 8u; i++) {
      let g = g4(r[i], n);
      acc[i][0] += g * w0;
      acc[i][1] += g * w1;
      acc[i][2] += g * w2;
      acc[i][3] += g * w3;
    }
  }
  for (var i = 0u; i < 8u; i++) {
    if (m0 + i >= p.M) { break; }
    for (var j = 0u; j < 4u; j++) {
      let a = acc[i][j];
      if (k0 + j < p.K) { storeX(r[i], k0 + j, (a.x + a.y) + (a.z + a.w)); }
    }
  }
}
#endif

fn storeX(r: u32, k: u32, v: f32) {
  let i = p.x_off + r * p.ldx + k;
#if ${acc}
  X4[i >> 2u][i & 3u] = X4[i >> 2u][i & 3u] + v;
#else
  X4[i >> 2u][i & 3u] = v;
#endif
}

// dW[k0 .. k0+7, n0 .. n0+7]: per m, X'[m, k0 .. k0+7] and G[m, n0 .. n0+7] as two vec4 each.
@compute @workgroup_size(16, 1)
fn matmul_dw_v2(@builtin(global_invocation_id) gid: vec3u) {
  let n0 = gid.x * 8u;
  let k0 = gid.y * 8u;
  if (k0 >= p.K || n0 >= p.N) { return; }
  // Past the edge, read the last vec4 instead (never stored). G's rows are readable up to N
  // rounded up to 4 (a padded gradient), so its last vec4 may straddle N.
  let ka = min(k0, p.K - 4u);
  let kb = min(k0 + 4u, p.K - 4u);
  let n4 = (p.N + 3u) / 4u * 4u;
  let na = min(n0, n4 - 4u);
  let nb = min(n0 + 4u, n4 - 4u);
#if ${affine}
  let ga = vec4f(gain[ka], gain[ka + 1u], gain[ka + 2u], gain[ka + 3u]);
  let gb = vec4f(gain[kb], gain[kb + 1u], gain[kb + 2u], gain[kb + 3u]);
  let sa = vec4f(shift[ka], shift[ka + 1u], shift[ka + 2u], shift[ka + 3u]);
  let sb = vec4f(shift[kb], shift[kb + 1u], shift[kb + 2u], shift[kb + 3u]);
#endif
  var lo: array<vec4f, 8>; // dW[k0 + i, na .. na+3]
  var hi: array<vec4f, 8>; // dW[k0 + i, nb .. nb+3]
  for (var m = 0u; m < p.M; m++) {
    let r = rowOf(m);
    let xo = p.x_off + r * p.ldx;
    var xa = X4[(xo + ka) >> 2u];
    var xb = X4[(xo + kb) >> 2u];
#if ${affine}
    xa = xa * ga + sa;
    xb = xb * gb + sb;
#endif
    let ga4 = g4(r, na);
    let gb4 = g4(r, nb);
    for (var i = 0u; i < 4u; i++) {
      lo[i] += xa[i] * ga4; hi[i] += xa[i] * gb4;
      lo[i + 4u] += xb[i] * ga4; hi[i + 4u] += xb[i] * gb4;
    }
  }
  for (var i = 0u; i < 8u; i++) {
    // Row i of the tile is k = ka + i (i < 4) or kb + i - 4: k0 + i only where no clamp moved it.
    let k = select(kb + i - 4u, ka + i, i < 4u);
    if (k0 + i >= p.K || k != k0 + i) { continue; }
    for (var j = 0u; j < 4u; j++) {
      if (na + j == n0 + j && n0 + j < p.N) { storeW(k, n0 + j, lo[i][j]); }
      if (nb + j == n0 + 4u + j && n0 + 4u + j < p.N) { storeW(k, n0 + 4u + j, hi[i][j]); }
    }
  }
}

fn storeW(k: u32, n: u32, v: f32) {
#if ${transOut}
  let o = p.w_off + n * p.K + k;
#else
  let o = p.w_off + k * p.N + n;
#endif
#if ${acc}
  D[o] = D[o] + v;
#else
  D[o] = v;
#endif
}

@compute @workgroup_size(WG)
fn transpose_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.M * p.K) { return; }
  let k = i / p.M;
  let m = i % p.M;
#if ${affine}
  D[p.w_off + i] = X[p.x_off + rowOf(m) * p.ldx + k] * gain[k] + shift[k];
#else
  D[p.w_off + i] = X[p.x_off + rowOf(m) * p.ldx + k];
#endif
}

@compute @workgroup_size(WG)
fn copy_block_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.M * p.K) { return; }
  D[p.w_off + i] = X[p.x_off + rowOf(i / p.K) * p.ldx + i % p.K];
}
`;
}
