/**
 * Matmuls for small models, whose inner dimensions are a few dozen to a few hundred wide (the
 * attention-only trainer, `src/train/attn-only.ts`). Register-tiled and unrolled by code
 * generation for the shape, since every size is known when the trainer is built:
 *
 *   rows_times_t   Y[M, N] = A[M, K] Z[N, K]^T (+ bias[N]) (+ res[M, N]).
 *                  Both operands are read along K as vec4 (K % 4 == 0). One workgroup: WG
 *                  invocations x C columns each (j = j0 + c WG) over ROWS rows, in blocks of RB
 *                  rows (8 or 16). Per k4 step an invocation loads C vec4 of Z and, with
 *                  subgroups, one vec4 of A per 8 rows: lane s loads row r0 + s % 8 and the
 *                  block's rows come from `subgroupBroadcast` (lane r) instead of every invocation
 *                  loading every row. On lavapipe this is what makes it fast: a load whose address
 *                  is the same in every lane still costs one load per lane, a broadcast is a
 *                  shuffle. Without a fixed subgroup size of at least 8, each invocation loads
 *                  the rows itself (same numbers, same order of sums).
 *   weight_grad    out[Kin, N] (=|+=) sum_i A[i, k] G[i, j] over i < M, and with `bias` the
 *                  column sums sum_i G[i, j] (workgroups of the first k block write them). One
 *                  workgroup: KR k rows (8 per broadcast group) x WG C columns over all M rows,
 *                  4 rows per step (vec4 over i, zero past M). The output's columns may be split into blocks of S
 *                  (`split`): column j goes to block j / S at (j / S) Kin S + k S + j % S, so the
 *                  query, key and value gradients of one [D, 3 HD] product land in three
 *                  [D, HD] tensors. With `diagonal` only the diagonal blocks are kept, packed
 *                  as one [rows, N] (the gradient of a block-diagonal product's weight).
 *
 *   rows_times_t_v2  the same product for 8-lane subgroups (lavapipe), N % 4 == 0: a workgroup
 *                  is one subgroup; lane s owns 4 adjacent columns (4 q .. 4 q + 3, q = 8 wg.x +
 *                  s) of RB rows, so its output, bias and residual move as vec4 (lavapipe
 *                  loads and stores lane by lane, so a vec4 costs what a scalar does) and each
 *                  broadcast row meets 4 columns. At RB 32 (the accumulators spill, and it is
 *                  still the fastest) this runs the trainer's shapes 1.4-1.9x faster than v1.
 *
 * The sums run over k (or i) in increasing order in vec4 dot products; the CPU references are
 * `narrow-matmul.cpu.ts`. Versions: v1 (`rows_times_t_v1`, `weight_grad_v1`), v2
 * (`rows_times_t_v2`, `weight_grad_v2`: the same layout for the weight gradient, below).
 */

export const NARROW_MATMUL_VERSIONS = ['rows_times_t_v1', 'weight_grad_v1', 'rows_times_t_v2', 'weight_grad_v2'] as const;

/** Invocations per workgroup: 8 subgroups of lavapipe's 8 lanes, 2 of a GPU's 32. */
export const NARROW_WG = 64;

export interface RowsTimesTShape {
  M: number;
  K: number;
  N: number;
  /** Columns per invocation (1-4): more reuse of each broadcast row, more registers. */
  C: number;
  /** Rows per register block: 8, or 16 (two loads per lane) when C is 1. */
  RB: 8 | 16 | 24 | 32;
  /** Rows per workgroup, a multiple of RB. */
  ROWS: number;
  bias: boolean;
  residual: boolean;
  /** Broadcast rows across a subgroup (needs a fixed subgroup size >= 8). */
  subgroups: boolean;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

export function rowsTimesTSource(s: RowsTimesTShape): string {
  const { M, K, N, C, RB, ROWS, bias, residual, subgroups } = s;
  if (K % 4) throw new Error(`rows_times_t: K (${K}) must be a multiple of 4`);
  if (ROWS % RB) throw new Error(`rows_times_t: ROWS (${ROWS}) must be a multiple of RB (${RB})`);
  const K4 = K / 4;
  const WG = NARROW_WG;
  const rows = range(RB);
  const cols = range(C);
  const groups = range(RB / 8);
  const loadRows = subgroups
    ? [...groups.map((g) => `        let xa${g} = A[ar${g} + k4];`), ...rows.map((r) => `        let x${r} = subgroupBroadcast(xa${Math.floor(r / 8)}, ${r % 8}u);`)]
    : rows.map((r) => `        let x${r} = A[min(r0 + ${r}u, ${M - 1}u) * ${K4}u + k4];`);
  return `${subgroups ? 'enable subgroups;\n' : ''}
@group(0) @binding(0) var<storage, read> A: array<vec4f>;      // [M, K / 4]
@group(0) @binding(1) var<storage, read> Z: array<vec4f>;      // [N, K / 4]
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;  // [M, N]
${bias ? '@group(0) @binding(3) var<storage, read> bias: array<f32>;  // [N]' : ''}
${residual ? '@group(0) @binding(4) var<storage, read> res: array<f32>;   // [M, N]' : ''}

@compute @workgroup_size(${WG})
fn rows_times_t_v1(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32${subgroups ? ', @builtin(subgroup_invocation_id) lane: u32' : ''}) {
  let j0 = wg.x * ${WG * C}u + li;
${cols.map((c) => `  let zc${c} = min(j0 + ${c * WG}u, ${N - 1}u) * ${K4}u;`).join('\n')}
  for (var blk = 0u; blk < ${ROWS / RB}u; blk++) {
    let r0 = wg.y * ${ROWS}u + blk * ${RB}u;
    if (r0 >= ${M}u) { break; }
${subgroups ? groups.map((g) => `    let ar${g} = min(r0 + ${g * 8}u + lane % 8u, ${M - 1}u) * ${K4}u;`).join('\n') : ''}
${rows.flatMap((r) => cols.map((c) => `    var a${r}_${c} = 0.0;`)).join('\n')}
    for (var k4 = 0u; k4 < ${K4}u; k4++) {
${cols.map((c) => `      let w${c} = Z[zc${c} + k4];`).join('\n')}
${loadRows.join('\n')}
${rows.flatMap((r) => cols.map((c) => `      a${r}_${c} += dot(x${r}, w${c});`)).join('\n')}
    }
${cols
  .map(
    (c) => `    let col${c} = j0 + ${c * WG}u;
    if (col${c} < ${N}u) {
${rows.map((r) => `      if (r0 + ${r}u < ${M}u) { let o = (r0 + ${r}u) * ${N}u + col${c}; Y[o] = a${r}_${c}${bias ? ` + bias[col${c}]` : ''}${residual ? ' + res[o]' : ''}; }`).join('\n')}
    }`,
  )
  .join('\n')}
  }
}
`;
}

export interface RowsTimesTV2Shape {
  M: number;
  K: number;
  /** A multiple of 4. */
  N: number;
  /** Rows per workgroup (a multiple of 8): each broadcast row meets 4 columns per lane. */
  RB: number;
  bias: boolean;
  residual: boolean;
}

/** Workgroups of `rows_times_t_v2` for `s`: 8 lanes x 4 columns across, RB rows down. */
export function rowsTimesTV2Grid(s: RowsTimesTV2Shape): [number, number, number] {
  return [Math.ceil(s.N / 32), Math.ceil(s.M / s.RB), 1];
}

export function rowsTimesTV2Source(s: RowsTimesTV2Shape): string {
  const { M, K, N, RB, bias, residual } = s;
  if (K % 4) throw new Error(`rows_times_t_v2: K (${K}) must be a multiple of 4`);
  if (N % 4) throw new Error(`rows_times_t_v2: N (${N}) must be a multiple of 4`);
  if (RB % 8) throw new Error(`rows_times_t_v2: RB (${RB}) must be a multiple of 8`);
  const K4 = K / 4;
  const N4 = N / 4;
  const rows = range(RB);
  const cols = range(4);
  const groups = range(RB / 8);
  return `enable subgroups;
@group(0) @binding(0) var<storage, read> A: array<vec4f>;       // [M, K / 4]
@group(0) @binding(1) var<storage, read> Z: array<vec4f>;       // [N, K / 4]
@group(0) @binding(2) var<storage, read_write> Y: array<vec4f>; // [M, N / 4]
${bias ? '@group(0) @binding(3) var<storage, read> bias: array<vec4f>;  // [N / 4]' : ''}
${residual ? '@group(0) @binding(4) var<storage, read> res: array<vec4f>;   // [M, N / 4]' : ''}

// One subgroup of 8 lanes: the row broadcasts stay within it.
@compute @workgroup_size(8)
fn rows_times_t_v2(@builtin(workgroup_id) wg: vec3u, @builtin(subgroup_invocation_id) lane: u32) {
  let q = wg.x * 8u + lane;
  let qc = min(q, ${N4 - 1}u);
  let r0 = wg.y * ${RB}u;
${cols.map((c) => `  let zc${c} = (qc * 4u + ${c}u) * ${K4}u;`).join('\n')}
${groups.map((g) => `  let ar${g} = min(r0 + ${g * 8}u + lane, ${M - 1}u) * ${K4}u;`).join('\n')}
${rows.flatMap((r) => cols.map((c) => `  var a${r}_${c} = 0.0;`)).join('\n')}
  for (var k4 = 0u; k4 < ${K4}u; k4++) {
${cols.map((c) => `    let w${c} = Z[zc${c} + k4];`).join('\n')}
${groups.map((g) => `    let xa${g} = A[ar${g} + k4];`).join('\n')}
${rows.map((r) => `    let x${r} = subgroupBroadcast(xa${Math.floor(r / 8)}, ${r % 8}u);`).join('\n')}
${rows.flatMap((r) => cols.map((c) => `    a${r}_${c} += dot(x${r}, w${c});`)).join('\n')}
  }
  if (q < ${N4}u) {
${bias ? '    let bq = bias[q];' : ''}
${rows.map((r) => `    ${M % RB ? `if (r0 + ${r}u < ${M}u) ` : ''}{ let o = (r0 + ${r}u) * ${N4}u + q; Y[o] = vec4f(${cols.map((c) => `a${r}_${c}`).join(', ')})${bias ? ' + bq' : ''}${residual ? ' + res[o]' : ''}; }`).join('\n')}
  }
}
`;
}

export interface WeightGradShape {
  /** Rows summed over. */
  M: number;
  /** A's width: the output's rows. */
  Kin: number;
  /** G's width: the output's columns. */
  N: number;
  C: number;
  /** Output column blocks of S (S = N: one [Kin, N] tensor). */
  split: number;
  accumulate: boolean;
  bias: boolean;
  subgroups: boolean;
  /** Output rows per workgroup (a multiple of 8; default 8): more reuse of each G load. */
  KR?: number;
  /** Keep only the diagonal blocks of `rows` x `cols` (output row k, column j with k / rows == j / cols), stored as [rows, N] at base + (k % rows) N + j (a block-diagonal weight's gradient). */
  diagonal?: { rows: number; cols: number };
  /** Elements before the output's first (and the column sums' first) in their bindings. */
  base?: number;
  biasBase?: number;
}

export function weightGradSource(s: WeightGradShape): string {
  const { M, Kin, N, C, split: S, accumulate, bias, subgroups } = s;
  const KR = s.KR ?? 8;
  if (KR % 8) throw new Error(`weight_grad: KR (${KR}) must be a multiple of 8`);
  const groups = range(KR / 8);
  if (N % S) throw new Error(`weight_grad: N (${N}) must be a multiple of the split (${S})`);
  const WG = NARROW_WG;
  const cols = range(C);
  const rows = range(KR);
  const full = Math.floor(M / 4);
  const tail = M % 4;
  // One step over rows i..i+3 (masked past M in the tail).
  const step = (masked: boolean) => {
    const g = (u: number, c: number) => (masked && u >= tail ? '0.0' : `G[(i + ${u}u) * ${N}u + gc${c}]`);
    const a = (u: number, g: number) => (masked && u >= tail ? '0.0' : `A[(i + ${u}u) * ${Kin}u + ak${g}]`);
    const lines = cols.map(
      (c) =>
        `      let g${c} = vec4f(${range(4)
          .map((u) => g(u, c))
          .join(', ')});`,
    );
    if (subgroups) {
      for (const g of groups)
        lines.push(
          `      let xa${g} = vec4f(${range(4)
            .map((u) => a(u, g))
            .join(', ')});`,
        );
      lines.push(...rows.map((r) => `      let x${r} = subgroupBroadcast(xa${Math.floor(r / 8)}, ${r % 8}u);`));
    } else {
      const ar = (u: number, r: number) => (masked && u >= tail ? '0.0' : `A[(i + ${u}u) * ${Kin}u + min(k0 + ${r}u, ${Kin - 1}u)]`);
      lines.push(
        ...rows.map(
          (r) =>
            `      let x${r} = vec4f(${range(4)
              .map((u) => ar(u, r))
              .join(', ')});`,
        ),
      );
    }
    lines.push(...rows.flatMap((r) => cols.map((c) => `      a${r}_${c} += dot(x${r}, g${c});`)));
    if (bias) lines.push(...cols.map((c) => `      s${c} += dot(g${c}, vec4f(1.0));`));
    return lines.join('\n');
  };
  const out = (r: number, c: number) => {
    if (s.diagonal) {
      const { rows: BR, cols: BC } = s.diagonal;
      return `      if (k0 + ${r}u < ${Kin}u && (k0 + ${r}u) / ${BR}u == col${c} / ${BC}u) { let o = ${s.base ?? 0}u + ((k0 + ${r}u) % ${BR}u) * ${N}u + col${c}; out[o] = ${accumulate ? 'out[o] + ' : ''}a${r}_${c}; }`;
    }
    const idx = `${s.base ?? 0}u + (col${c} / ${S}u) * ${Kin * S}u + (k0 + ${r}u) * ${S}u + col${c} % ${S}u`;
    return `      if (k0 + ${r}u < ${Kin}u) { let o = ${idx}; out[o] = ${accumulate ? 'out[o] + ' : ''}a${r}_${c}; }`;
  };
  return `${subgroups ? 'enable subgroups;\n' : ''}
@group(0) @binding(0) var<storage, read> A: array<f32>;          // [M, Kin]
@group(0) @binding(1) var<storage, read> G: array<f32>;          // [M, N]
@group(0) @binding(2) var<storage, read_write> out: array<f32>;  // N / S blocks of [Kin, S]
${bias ? '@group(0) @binding(3) var<storage, read_write> bsum: array<f32>;  // [N]' : ''}

@compute @workgroup_size(${WG})
fn weight_grad_v1(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32${subgroups ? ', @builtin(subgroup_invocation_id) lane: u32' : ''}) {
  let j0 = wg.x * ${WG * C}u + li;
  let k0 = wg.y * ${KR}u;
${subgroups ? groups.map((g) => `  let ak${g} = min(k0 + ${g * 8}u + lane % 8u, ${Kin - 1}u);`).join('\n') : ''}
${cols.map((c) => `  let gc${c} = min(j0 + ${c * WG}u, ${N - 1}u);`).join('\n')}
${rows.flatMap((r) => cols.map((c) => `  var a${r}_${c} = 0.0;`)).join('\n')}
${bias ? cols.map((c) => `  var s${c} = 0.0;`).join('\n') : ''}
  for (var i4 = 0u; i4 < ${full}u; i4++) {
    let i = i4 * 4u;
${step(false)}
  }
${tail ? `  {\n    let i = ${full * 4}u;\n${step(true)}\n  }` : ''}
${cols
  .map(
    (c) => `  let col${c} = j0 + ${c * WG}u;
  if (col${c} < ${N}u) {
${rows.map((r) => out(r, c)).join('\n')}
${bias ? `    if (wg.y == 0u) { bsum[${s.biasBase ?? 0}u + col${c}] = s${c}; }` : ''}
  }`,
  )
  .join('\n')}
}
`;
}

/** Workgroups of `weight_grad_v2` for `s`: 8 lanes x 4 columns across, KR output rows down. */
export function weightGradV2Grid(s: WeightGradShape): [number, number, number] {
  return [Math.ceil(s.N / 32), Math.ceil(s.Kin / (s.KR ?? 32)), 1];
}

/**
 * weight_grad_v2: `weight_grad` for 8-lane subgroups, N % 4 == 0. A workgroup is one subgroup;
 * lane s owns 4 adjacent columns (4 q .. 4 q + 3, q = 8 wg.x + s) of KR output rows. Per row i it
 * loads G[i, 4q .. 4q + 3] as one vec4 and A[i, k0 + s + 8 g] for each group g of 8 output rows,
 * 4 rows i at a time; each broadcast A value meets the lane's 4 columns. The sums over i run in
 * increasing order in vec4 dot products, as v1's. With `diagonal`, workgroups whose rows and columns share
 * no diagonal block return at once (except the first row block's, which write the column sums).
 */
export function weightGradV2Source(s: WeightGradShape): string {
  const { M, Kin, N, split: S, accumulate, bias } = s;
  const KR = s.KR ?? 32;
  if (KR % 8) throw new Error(`weight_grad_v2: KR (${KR}) must be a multiple of 8`);
  if (N % 4) throw new Error(`weight_grad_v2: N (${N}) must be a multiple of 4`);
  if (N % S) throw new Error(`weight_grad_v2: N (${N}) must be a multiple of the split (${S})`);
  const N4 = N / 4;
  const rows = range(KR);
  const groups = range(KR / 8);
  const cols = range(4);
  const d = s.diagonal;
  const full = Math.floor(M / 4);
  const tail = M % 4;
  // Rows i .. i + 3 (zeros past M in the tail): G's 4 rows of this lane's 4 columns, and for each
  // group of 8 output rows A's 4 rows; column c of the G rows is a vec4 over i, so every
  // accumulator takes a 4-term dot product (one update per 4 multiply-adds: they spill).
  const step = (masked: boolean) => {
    const live = (u: number) => !masked || u < tail;
    return [
      ...range(4).map((u) => `    let g${u} = ${live(u) ? `G[(i + ${u}u) * ${N4}u + qc]` : 'vec4f(0.0)'};`),
      ...cols.map(
        (c) =>
          `    let gc${c} = vec4f(${range(4)
            .map((u) => `g${u}.${'xyzw'[c]}`)
            .join(', ')});`,
      ),
      ...groups.map(
        (g) =>
          `    let xa${g} = vec4f(${range(4)
            .map((u) => (live(u) ? `A[(i + ${u}u) * ${Kin}u + ak${g}]` : '0.0'))
            .join(', ')});`,
      ),
      ...rows.map((r) => `    let x${r} = subgroupBroadcast(xa${Math.floor(r / 8)}, ${r % 8}u);`),
      ...rows.flatMap((r) => cols.map((c) => `    a${r}_${c} += dot(x${r}, gc${c});`)),
      ...(bias ? [`    sum += g0 + g1 + g2 + g3;`] : []),
    ].join('\n');
  };
  const out = (r: number, c: number) => {
    const j = `(q * 4u + ${c}u)`;
    const k = `(k0 + ${r}u)`;
    const v = `a${r}_${c}`;
    if (d) {
      return `    if (${k} < ${Kin}u && ${k} / ${d.rows}u == ${j} / ${d.cols}u) { let o = ${s.base ?? 0}u + (${k} % ${d.rows}u) * ${N}u + ${j}; out[o] = ${accumulate ? 'out[o] + ' : ''}${v}; }`;
    }
    return `    if (${k} < ${Kin}u) { let o = ${s.base ?? 0}u + (${j} / ${S}u) * ${Kin * S}u + ${k} * ${S}u + ${j} % ${S}u; out[o] = ${accumulate ? 'out[o] + ' : ''}${v}; }`;
  };
  // With a diagonal, the rows k0 .. k0 + KR - 1 meet column blocks k0 / rows .. (k0 + KR - 1) / rows
  // (times cols, in columns); this workgroup's columns are 32 wg.x .. 32 wg.x + 31.
  const skip = d
    ? `  let first = (k0 / ${d.rows}u) * ${d.cols}u;
  let last = (min(k0 + ${KR - 1}u, ${Kin - 1}u) / ${d.rows}u + 1u) * ${d.cols}u;
  if (${bias ? 'wg.y != 0u && ' : ''}(wg.x * 32u >= last || wg.x * 32u + 32u <= first)) { return; }`
    : '';
  return `enable subgroups;
@group(0) @binding(0) var<storage, read> A: array<f32>;          // [M, Kin]
@group(0) @binding(1) var<storage, read> G: array<vec4f>;        // [M, N / 4]
@group(0) @binding(2) var<storage, read_write> out: array<f32>;  // N / S blocks of [Kin, S]
${bias ? '@group(0) @binding(3) var<storage, read_write> bsum: array<f32>;  // [N]' : ''}

// One subgroup of 8 lanes: the broadcasts of A stay within it.
@compute @workgroup_size(8)
fn weight_grad_v2(@builtin(workgroup_id) wg: vec3u, @builtin(subgroup_invocation_id) lane: u32) {
  let q = wg.x * 8u + lane;
  let qc = min(q, ${N4 - 1}u);
  let k0 = wg.y * ${KR}u;
${skip}
${groups.map((g) => `  let ak${g} = min(k0 + ${g * 8}u + lane, ${Kin - 1}u);`).join('\n')}
${rows.flatMap((r) => cols.map((c) => `  var a${r}_${c} = 0.0;`)).join('\n')}
${bias ? '  var sum = vec4f(0.0);' : ''}
  for (var i4 = 0u; i4 < ${full}u; i4++) {
    let i = i4 * 4u;
${step(false)}
  }
${tail ? `  {\n    let i = ${full * 4}u;\n${step(true)}\n  }` : ''}
  if (q < ${N4}u) {
${rows.flatMap((r) => cols.map((c) => out(r, c))).join('\n')}
${bias ? `    if (wg.y == 0u) {\n${cols.map((c) => `      bsum[${s.biasBase ?? 0}u + q * 4u + ${c}u] = sum.${'xyzw'[c]};`).join('\n')}\n    }` : ''}
  }
}
`;
}
