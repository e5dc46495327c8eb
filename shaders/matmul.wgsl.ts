/**
 * Matrix multiply with an optional bias epilogue:  C[m, c_col0 + n] = sum_k A[m, k] * B[k, n] + bias[n]
 *
 * Shapes: A [M, K] row-major, B [K, N] (x @ W, GPT-2's Conv1D layout) or, with TRANS_B,
 * B [N, K] (the unembedding: x @ W_E^T, reading the token-embedding rows directly).
 * C has row stride `ldc` so a column block of a wider output (one chunk of the vocabulary)
 * can be written in place; `a_off` / `c_off` are element offsets into the bound windows.
 *
 * Versions (entry points):
 *   v1 `matmul_v1`: one invocation per output element, serial over K. Readable baseline, slow.
 *       Dispatch: (ceil(N / 16), ceil(M / 16)) workgroups of 16 x 16.
 *   v2 `matmul_v2`: register tile. Each invocation computes a 4 x 4 block of C, reusing each
 *       loaded A value 4 times and each B value 4 times; no workgroup memory (on lavapipe it is
 *       ordinary CPU memory and only adds barriers). Workgroup 8 x 8 -> a 32 x 32 tile of C.
 *       Dispatch: (ceil(N / 32), ceil(M / 32)).
 *   v3 `matmul_v3`: register tile of 4 rows x 8 columns per invocation, B read as two vec4 per k
 *       (variant `vec4B`: N and B's offset multiples of 4, B not transposed, fp32), so each A
 *       value feeds 8 products and each B load 4 columns; no workgroup memory. Workgroup 8 x 8
 *       -> a 32 x 64 tile of C. Dispatch: (ceil(N / 64), ceil(M / 32)). Without `vec4B` it
 *       reads B as scalars (any shape, transposed or f16), still 4 x 8 per invocation.
 *   v4 `matmul_v4`: v3's register tile doubled to 8 rows x 8 columns (64 accumulators per
 *       invocation: each A value feeds 8 products, each B vec4 8 rows), row offsets computed once
 *       before the K loop and no bounds test inside it (rows past M re-read row M-1, columns past
 *       N the last vec4; neither is stored). Workgroup 16 x 1 -> an 8 x 128 tile of C, so a
 *       15-row forward wastes one row in 16 rather than half a 32-row tile. On lavapipe every
 *       storage-buffer load is a per-lane loop, so fewer loads per product is what counts.
 *       Dispatch: (ceil(N / 128), ceil(M / 8)).
 *   v5 `matmul_v5`: v4 widened to 16 rows x 16 columns per invocation (64 vec4 accumulators;
 *       per k step 16 A loads and 4 B vec4 loads feed 256 products, against v4's 8 and 2 for 64),
 *       written out by `unrolledV5` below. Workgroup 16 x 1 -> a 16 x 256 tile of C, so a
 *       15-row forward wastes one row in 16. Dispatch: (ceil(N / 256), ceil(M / 16)).
 *   v6 `matmul_v6`: v5's tile and arithmetic, with the 16 A values of each k step loaded once per
 *       subgroup instead of once per invocation: with G = min(S, 16) for subgroup size S, lane s
 *       loads rows s % G, s % G + G, ... and every invocation takes row i from lane i % G with
 *       `subgroupBroadcast`, so on lavapipe (S = 8) a k step makes 2 A loads instead of 16, and
 *       with S = 16, 32 (NVIDIA, Apple) or 64 (AMD wave64) one. Bit-identical to v5. The
 *       workgroup is max(16, S) invocations wide (`v6WorkgroupWidth`), so every subgroup is full
 *       and lanes past 16 of a 32- or 64-wide subgroup compute further columns of the same rows.
 *       Needs the feature 'subgroups' and a fixed subgroup size, a power of two up to 64
 *       (variant `subgroupSize`); the host runs v5 otherwise.
 *       Dispatch: (ceil(N / (16 v6WorkgroupWidth(S))), ceil(M / 16)).
 * Every version checks bounds on M, N and K, so no dimension needs to be a multiple of a tile.
 * Variant `rows`: row m of A and of C is row `rows[m]` of its buffer (a table of M row indices),
 * so a pass computes only the rows it needs (a sweep's live positions) and leaves the others.
 * Variant `f16B`: B is f16 (weights kept in half precision), widened to f32 as it is read, so
 * every product and sum is fp32.
 * Variants for the backward's input gradient dX = dY W^T computed as dX^T = W dY^T (A = W in
 * its own layout, B = dY^T): `transC` stores element (m, n) at C[n * ldc + m], so dX comes out
 * [rows, in] directly; `accC` adds into C (a second path into the same gradient); `narrow`
 * makes v6's workgroup one subgroup wide (128 columns on lavapipe instead of 256), so a
 * 128-position gradient fills its column tile.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export interface MatmulVariant {
  transB: boolean;
  bias: boolean;
  /** B holds f16 weights (needs the device feature shader-f16); products accumulate in f32. */
  f16B?: boolean;
  /** B is bound as vec4s (fp32, not transposed, N and its offset multiples of 4): v3's fast path. */
  vec4B?: boolean;
  /** A and C rows go through a table of row indices (binding 5). */
  rows?: boolean;
  /** v6 only: the device's fixed subgroup size, a power of two up to 64 (needs the feature 'subgroups'). */
  subgroupSize?: number;
  /** v6 only: a workgroup of one subgroup (S wide, not max(16, S)): half the columns per workgroup where S = 8. */
  narrow?: boolean;
  /** C is stored transposed: element (m, n) at C[n * ldc + m] (no row table). */
  transC?: boolean;
  /** The product is added into C instead of overwriting it. */
  accC?: boolean;
}

export const MATMUL_VERSIONS = ['matmul_v1', 'matmul_v2', 'matmul_v3', 'matmul_v4', 'matmul_v5', 'matmul_v6'] as const;

export function matmulSource({ transB, bias, f16B = false, vec4B = false, rows = false, subgroupSize = 0, narrow = false, transC = false, accC = false }: MatmulVariant): string {
  return wgsl`
#if ${subgroupSize > 0}
enable subgroups;
#endif
#if ${f16B}
enable f16;
#endif
struct Params {
  M: u32, N: u32, K: u32,
  ldc: u32,     // row stride of C in elements (>= c_col0 + N)
  c_col0: u32,  // first column of C written
  a_off: u32,   // element offset of A inside its binding
  c_off: u32,   // element offset of C inside its binding
  b_off: u32,   // element offset of B inside its binding
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
#if ${f16B}
@group(0) @binding(2) var<storage, read> B: array<f16>;
#elif ${vec4B}
@group(0) @binding(2) var<storage, read> B: array<vec4f>;
#else
@group(0) @binding(2) var<storage, read> B: array<f32>;
#endif
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
#if ${bias}
@group(0) @binding(4) var<storage, read> bias: array<f32>;
#endif
#if ${rows}
@group(0) @binding(5) var<storage, read> rowIdx: array<u32>;
#endif

// The buffer row holding logical row m (m < M) of A and C.
fn rowOf(m: u32) -> u32 {
#if ${rows}
  return rowIdx[m];
#else
  return m;
#endif
}

fn loadA(m: u32, k: u32) -> f32 {
  if (m >= p.M || k >= p.K) { return 0.0; }
  return A[p.a_off + rowOf(m) * p.K + k];
}

fn loadB(k: u32, n: u32) -> f32 {
  if (k >= p.K || n >= p.N) { return 0.0; }
#if ${transB}
  return f32(B[p.b_off + n * p.K + k]);
#elif ${vec4B}
  let i = p.b_off + k * p.N + n;
  return B[i >> 2u][i & 3u];
#else
  return f32(B[p.b_off + k * p.N + n]);
#endif
}

// B[k, n .. n+3] (zeros past N or K).
fn loadB4(k: u32, n: u32) -> vec4f {
#if ${vec4B}
  // Callers keep k < K; columns past N read the last vec4 instead (never stored).
  return B[(p.b_off + k * p.N + min(n, p.N - 4u)) >> 2u];
#else
  return vec4f(loadB(k, n), loadB(k, n + 1u), loadB(k, n + 2u), loadB(k, n + 3u));
#endif
}

fn store(m: u32, n: u32, v: f32) {
  if (m >= p.M || n >= p.N) { return; }
#if ${transC}
  let o = p.c_off + (p.c_col0 + n) * p.ldc + rowOf(m);
#else
  let o = p.c_off + rowOf(m) * p.ldc + p.c_col0 + n;
#endif
#if ${bias}
  let x = v + bias[n];
#else
  let x = v;
#endif
#if ${accC}
  C[o] = C[o] + x;
#else
  C[o] = x;
#endif
}

@compute @workgroup_size(16, 16)
fn matmul_v1(@builtin(global_invocation_id) gid: vec3u) {
  let n = gid.x;
  let m = gid.y;
  if (m >= p.M || n >= p.N) { return; }
  var acc = 0.0;
  for (var k = 0u; k < p.K; k++) {
    acc += loadA(m, k) * loadB(k, n);
  }
  store(m, n, acc);
}

// 4 x 4 outputs per invocation: rows m0..m0+3, columns n0..n0+3.
const TM = 4u;
const TN = 4u;

@compute @workgroup_size(8, 8)
fn matmul_v2(@builtin(global_invocation_id) gid: vec3u) {
  let n0 = gid.x * TN;
  let m0 = gid.y * TM;
  if (m0 >= p.M || n0 >= p.N) { return; }
  var acc: array<vec4f, 4>;
  for (var k = 0u; k < p.K; k++) {
    let b = vec4f(loadB(k, n0), loadB(k, n0 + 1u), loadB(k, n0 + 2u), loadB(k, n0 + 3u));
    acc[0] += loadA(m0, k) * b;
    acc[1] += loadA(m0 + 1u, k) * b;
    acc[2] += loadA(m0 + 2u, k) * b;
    acc[3] += loadA(m0 + 3u, k) * b;
  }
  for (var i = 0u; i < TM; i++) {
    for (var j = 0u; j < TN; j++) {
      store(m0 + i, n0 + j, acc[i][j]);
    }
  }
}

@compute @workgroup_size(8, 8)
fn matmul_v3(@builtin(global_invocation_id) gid: vec3u) {
  let n0 = gid.x * 8u;
  let m0 = gid.y * 4u;
  if (m0 >= p.M || n0 >= p.N) { return; }
  var lo: array<vec4f, 4>; // columns n0 .. n0+3
  var hi: array<vec4f, 4>; // columns n0+4 .. n0+7
  // Rows past M repeat row M-1 (a valid read; never stored): no bounds test inside the K loop.
  let r0 = p.a_off + rowOf(min(m0, p.M - 1u)) * p.K;
  let r1 = p.a_off + rowOf(min(m0 + 1u, p.M - 1u)) * p.K;
  let r2 = p.a_off + rowOf(min(m0 + 2u, p.M - 1u)) * p.K;
  let r3 = p.a_off + rowOf(min(m0 + 3u, p.M - 1u)) * p.K;
  for (var k = 0u; k < p.K; k++) {
    let b0 = loadB4(k, n0);
    let b1 = loadB4(k, n0 + 4u);
    let a0 = A[r0 + k];
    let a1 = A[r1 + k];
    let a2 = A[r2 + k];
    let a3 = A[r3 + k];
    lo[0] += a0 * b0; hi[0] += a0 * b1;
    lo[1] += a1 * b0; hi[1] += a1 * b1;
    lo[2] += a2 * b0; hi[2] += a2 * b1;
    lo[3] += a3 * b0; hi[3] += a3 * b1;
  }
  for (var i = 0u; i < 4u; i++) {
    for (var j = 0u; j < 4u; j++) {
      store(m0 + i, n0 + j, lo[i][j]);
      store(m0 + i, n0 + 4u + j, hi[i][j]);
    }
  }
}

@compute @workgroup_size(16, 1)
fn matmul_v4(@builtin(global_invocation_id) gid: vec3u) {
  let n0 = gid.x * 8u;
  let m0 = gid.y * 8u;
  if (m0 >= p.M || n0 >= p.N) { return; }
  var lo: array<vec4f, 8>; // rows m0 .. m0+7, columns n0 .. n0+3
  var hi: array<vec4f, 8>; // columns n0+4 .. n0+7
  // Rows past M repeat row M-1 (a valid read; never stored): no bounds test inside the K loop.
  let r0 = p.a_off + rowOf(min(m0 + 0u, p.M - 1u)) * p.K;
  let r1 = p.a_off + rowOf(min(m0 + 1u, p.M - 1u)) * p.K;
  let r2 = p.a_off + rowOf(min(m0 + 2u, p.M - 1u)) * p.K;
  let r3 = p.a_off + rowOf(min(m0 + 3u, p.M - 1u)) * p.K;
  let r4 = p.a_off + rowOf(min(m0 + 4u, p.M - 1u)) * p.K;
  let r5 = p.a_off + rowOf(min(m0 + 5u, p.M - 1u)) * p.K;
  let r6 = p.a_off + rowOf(min(m0 + 6u, p.M - 1u)) * p.K;
  let r7 = p.a_off + rowOf(min(m0 + 7u, p.M - 1u)) * p.K;
  for (var k = 0u; k < p.K; k++) {
    let b0 = loadB4(k, n0);
    let b1 = loadB4(k, n0 + 4u);
    let a0 = A[r0 + k];
    let a1 = A[r1 + k];
    let a2 = A[r2 + k];
    let a3 = A[r3 + k];
    let a4 = A[r4 + k];
    let a5 = A[r5 + k];
    let a6 = A[r6 + k];
    let a7 = A[r7 + k];
    lo[0] = fma(vec4f(a0), b0, lo[0]); hi[0] = fma(vec4f(a0), b1, hi[0]);
    lo[1] = fma(vec4f(a1), b0, lo[1]); hi[1] = fma(vec4f(a1), b1, hi[1]);
    lo[2] = fma(vec4f(a2), b0, lo[2]); hi[2] = fma(vec4f(a2), b1, hi[2]);
    lo[3] = fma(vec4f(a3), b0, lo[3]); hi[3] = fma(vec4f(a3), b1, hi[3]);
    lo[4] = fma(vec4f(a4), b0, lo[4]); hi[4] = fma(vec4f(a4), b1, hi[4]);
    lo[5] = fma(vec4f(a5), b0, lo[5]); hi[5] = fma(vec4f(a5), b1, hi[5]);
    lo[6] = fma(vec4f(a6), b0, lo[6]); hi[6] = fma(vec4f(a6), b1, hi[6]);
    lo[7] = fma(vec4f(a7), b0, lo[7]); hi[7] = fma(vec4f(a7), b1, hi[7]);
  }
  for (var i = 0u; i < 8u; i++) {
    for (var j = 0u; j < 4u; j++) {
      store(m0 + i, n0 + j, lo[i][j]);
      store(m0 + i, n0 + 4u + j, hi[i][j]);
    }
  }
}


// v5's body, unrolled here in TypeScript: R rows and CV vec4 column groups per invocation.
${unrolledV5()}

#if ${subgroupSize > 0}
${unrolledV6(subgroupSize, narrow)}
#endif
`;
}

/** v5's register tile: rows of C per invocation, and vec4 column groups (4 columns each). */
export const V5_ROWS = 16;
export const V5_COL_VEC4S = 4;

/**
 * v6's workgroup width for subgroup size S: v5's 16 invocations, or one whole subgroup when
 * subgroups are wider (so none is partly empty and every broadcast lane is active).
 */
export function v6WorkgroupWidth(S: number, narrow = false): number {
  return narrow ? S : Math.max(16, S);
}

/**
 * What v5 and v6 write alike: the accumulators, one k step's B loads, row i's products with its
 * A value `a` (a WGSL f32 expression), and the bounds-checked stores.
 */
function v5Tile(): { accumulators: string; loadB: string; row: (i: number, a: string) => string; store: string } {
  const R = V5_ROWS;
  const cols = [...Array(V5_COL_VEC4S).keys()];
  return {
    accumulators: cols.map((j) => `  var c${j}: array<vec4f, ${R}>; // rows m0 .. m0+${R - 1}, columns n0+${4 * j} .. n0+${4 * j + 3}`).join('\n'),
    loadB: cols.map((j) => `    let b${j} = loadB4(k, n0 + ${4 * j}u);`).join('\n'),
    row: (i, a) => `    { let a = vec4f(${a});${cols.map((j) => ` c${j}[${i}] = fma(a, b${j}, c${j}[${i}]);`).join('')} }`,
    store: `  for (var i = 0u; i < ${R}u; i++) {
    for (var j = 0u; j < 4u; j++) {
${cols.map((j) => `      store(m0 + i, n0 + ${4 * j}u + j, c${j}[i][j]);`).join('\n')}
    }
  }`,
  };
}

/**
 * matmul_v5, written out: V5_ROWS x 4*V5_COL_VEC4S (16 x 16) outputs per invocation (64 vec4 accumulators), so each k step
 * makes 16 A loads and 4 B vec4 loads for 256 products. Loops over rows and column groups are
 * unrolled in the source and each row's offset is a named constant hoisted out of the K
 * loop, so nothing rests on the compiler's unrolling.
 */
function unrolledV5(): string {
  const R = V5_ROWS;
  const CV = V5_COL_VEC4S;
  const rows = [...Array(R).keys()];
  const tile = v5Tile();
  return `@compute @workgroup_size(16, 1)
fn matmul_v5(@builtin(global_invocation_id) gid: vec3u) {
  let n0 = gid.x * ${4 * CV}u;
  let m0 = gid.y * ${R}u;
  if (m0 >= p.M || n0 >= p.N) { return; }
${tile.accumulators}
  // Rows past M repeat row M-1 (a valid read; never stored): no bounds test inside the K loop.
${rows.map((i) => `  let r${i} = p.a_off + rowOf(min(m0 + ${i}u, p.M - 1u)) * p.K;`).join('\n')}
  for (var k = 0u; k < p.K; k++) {
${tile.loadB}
${rows.map((i) => tile.row(i, `A[r${i} + k]`)).join('\n')}
  }
${tile.store}
}`;
}

/**
 * matmul_v6: v5's tile, with each k step's 16 A values loaded once per subgroup rather than once
 * per invocation: with G = min(S, 16), lane s loads rows s % G, s % G + G, ... (16 / G loads)
 * and every invocation takes row i from lane i % G with `subgroupBroadcast`. On lavapipe (S = 8)
 * that is 2 loads per k step instead of 16; for S >= 16, one. The workgroup is
 * v6WorkgroupWidth(S) wide, so all lanes of a subgroup share the workgroup's 16 rows. Control
 * flow stays uniform up to the broadcasts: the early return tests only the workgroup's rows
 * (workgroup_id), and an invocation whose columns lie past N still runs the loop (its loads stay
 * in bounds, its stores are skipped).
 */
function unrolledV6(S: number, narrow: boolean): string {
  if (!S) return ''; // no subgroups: the variant has no v6 entry point
  const R = V5_ROWS;
  const CV = V5_COL_VEC4S;
  const G = Math.min(S, R);
  const W = v6WorkgroupWidth(S, narrow);
  const Q = R / G;
  const rows = [...Array(R).keys()];
  const qs = [...Array(Q).keys()];
  const tile = v5Tile();
  return `@compute @workgroup_size(${W}, 1)
fn matmul_v6(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(subgroup_invocation_id) lane: u32) {
  let n0 = gid.x * ${4 * CV}u;
  let m0 = wid.y * ${R}u;
  if (m0 >= p.M) { return; }
${tile.accumulators}
  // This lane loads rows m0 + lane % ${G} + ${G} q of A (rows past M repeat row M-1, never stored).
${qs.map((q) => `  let r${q} = p.a_off + rowOf(min(m0 + lane % ${G}u + ${G * q}u, p.M - 1u)) * p.K;`).join('\n')}
  for (var k = 0u; k < p.K; k++) {
${tile.loadB}
${qs.map((q) => `    let s${q} = A[r${q} + k]; // row m0 + lane % ${G} + ${G * q}`).join('\n')}
${rows.map((i) => tile.row(i, `subgroupBroadcast(s${Math.floor(i / G)}, ${i % G}u)`)).join('\n')}
  }
${tile.store}
}`;
}
