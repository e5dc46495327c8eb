/**
 * The backward of causal self-attention (`attention.wgsl.ts`), one entry point per gradient so
 * hook_pattern, hook_attn_scores, hook_q/k/v (or hook_rot_q/k) each get theirs as a site:
 *
 *   attn_dpattern   dpattern[b, h, i, j] = sum_d dz[b, i, h, d] v[b, j, g(h), d]      every j (as autograd: above
 *                   the diagonal this is v . dz, which no attribution reads)
 *   attn_dv         dv[b, j, g, d] = sum_{h in g} sum_{i: q0 + i >= j} pattern[b, h, i, j] dz[b, i, h, d]
 *   attn_softmax_backward
 *                   dscores[b, h, i, j] = pattern (dpattern - sum_j' pattern dpattern) for j <= q0 + i, else 0
 *   attn_dq         dq[b, i, h, d] = scale sum_{j <= q0 + i} dscores[b, h, i, j] k[b, j, g(h), d]
 *   attn_dk         dk[b, j, g, d] = scale sum_{h in g} sum_{i: q0 + i >= j} dscores[b, h, i, j] q[b, i, h, d]
 *
 * Layouts as the forward: q, z, dq, dz [B, Tq, H, dh]; k, v, dk, dv [B, Tk, Hkv, dh];
 * pattern, scores and their gradients [B, H, Tq, Tk]. Grouped-query attention: query head h
 * reads key/value head g(h) = h / (H / Hkv), so a key/value head's gradient sums its query
 * heads' shares (in head order, inside one invocation: deterministic, no atomics). Query row i
 * is absolute position q0 + i.
 *
 * Versions (entry points):
 *   v1 `attn_dpattern_v1`, `attn_dv_v1`, `attn_softmax_backward_v1`, `attn_dq_v1`, `attn_dk_v1`:
 *       one invocation per output element (per row for the softmax), serial over the reduced
 *       axis, WG per workgroup, folded into 2-D past 65,535 workgroups. Readable baseline, and
 *       what runs where dh is not a multiple of 4. Slow: two loads per product (lavapipe turns
 *       every storage load into a loop over the lanes).
 *   v2 `attn_dpattern_v2`, `attn_dv_v2`, `attn_dq_v2`, `attn_dk_v2`: register tiles, rows of
 *       q, k, v, z and their gradients read as vec4 along dh (dh a multiple of 4), written out
 *       by `tiled` below. Each invocation computes a tile of one (batch, head) and sums each
 *       output in the reduced axis' order, as v1:
 *         dpattern  4 query rows x 8 keys (DP_TILE); per 4 of dh, 4 dz and 8 v vec4 loads feed 32
 *                   vec4 products (a vec4 of partial dot products per output, added at the end);
 *         dq        8 query rows (ROW_TILE) x 16 of dh (COL_VEC4S vec4s); per key, 8 dscores and
 *                   4 k vec4 loads feed 32 vec4 products;
 *         dv, dk    8 keys x 16 of dh; per query row (and query head of the group), 8 pattern
 *                   (dscores) and 4 dz (q) vec4 loads feed 32 vec4 products.
 *       Rows past the end re-read the last row, columns past dh the last vec4 (never stored). A
 *       tile's keys run to what its last query row sees: the entries past a row's own last key
 *       are zeros of the pattern (dscores), so they add nothing.
 *       Dispatch: (ceil(tiles / 16), 1, batch x heads) workgroups of 16, tiles of one (batch,
 *       head) along x (key / value heads for dv and dk). The softmax backward stays v1 (one
 *       pass over a row; ~1% of the backward).
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const ATTENTION_BACKWARD_VERSIONS = ['attn_dpattern_v1', 'attn_dv_v1', 'attn_softmax_backward_v1', 'attn_dq_v1', 'attn_dk_v1', 'attn_dpattern_v2', 'attn_dv_v2', 'attn_dq_v2', 'attn_dk_v2'] as const;

/** v2 tiles: dpattern's [query rows, keys]; dq / dv / dk's rows and vec4 columns of dh. The host's dispatch must match. */
export const DP_TILE = [4, 8] as const;
export const ROW_TILE = 8;
export const COL_VEC4S = 4;
/** Invocations per v2 workgroup. */
export const V2_GROUP = 16;

export function attentionBackwardSource(): string {
  return wgsl`
struct Params {
  B: u32, Tq: u32, Tk: u32, H: u32, Hkv: u32, dh: u32,
  q0: u32,     // absolute position of query row 0
  scale: f32,  // 1 / sqrt(dh)
}

// Invocations per workgroup of the one-invocation-per-item entry points: picked on the host (Gpu.workgroupSize).
override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
// dpattern: dz, v;   dv: pattern, dz;   softmax: pattern, dpattern;   dq: dscores, k;   dk: dscores, q
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn linear(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }
fn group(h: u32) -> u32 { return h / (p.H / p.Hkv); }
fn qIndex(bt: u32, i: u32, h: u32) -> u32 { return ((bt * p.Tq + i) * p.H + h) * p.dh; }
fn kIndex(bt: u32, j: u32, g: u32) -> u32 { return ((bt * p.Tk + j) * p.Hkv + g) * p.dh; }
fn sIndex(bt: u32, h: u32, i: u32, j: u32) -> u32 { return ((bt * p.H + h) * p.Tq + i) * p.Tk + j; }
// The first query row that sees key j.
fn firstQuery(j: u32) -> u32 { return select(0u, j - p.q0, j > p.q0); }

@compute @workgroup_size(WG)
fn attn_dpattern_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = linear(gid, nwg);
  if (idx >= p.B * p.H * p.Tq * p.Tk) { return; }
  let j = idx % p.Tk;
  let i = (idx / p.Tk) % p.Tq;
  let h = (idx / (p.Tk * p.Tq)) % p.H;
  let bt = idx / (p.Tk * p.Tq * p.H);
  let zo = qIndex(bt, i, h);
  let vo = kIndex(bt, j, group(h));
  var acc = 0.0;
  for (var d = 0u; d < p.dh; d++) { acc += a[zo + d] * b[vo + d]; }
  out[idx] = acc;
}

@compute @workgroup_size(WG)
fn attn_dv_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = linear(gid, nwg); // (b, j, g, d)
  if (idx >= p.B * p.Tk * p.Hkv * p.dh) { return; }
  let d = idx % p.dh;
  let g = (idx / p.dh) % p.Hkv;
  let j = (idx / (p.dh * p.Hkv)) % p.Tk;
  let bt = idx / (p.dh * p.Hkv * p.Tk);
  let per = p.H / p.Hkv;
  var acc = 0.0;
  for (var h = g * per; h < (g + 1u) * per; h++) {
    for (var i = firstQuery(j); i < p.Tq; i++) { acc += a[sIndex(bt, h, i, j)] * b[qIndex(bt, i, h) + d]; }
  }
  out[idx] = acc;
}

@compute @workgroup_size(WG)
fn attn_softmax_backward_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = linear(gid, nwg); // (b, h, i)
  if (row >= p.B * p.H * p.Tq) { return; }
  let last = p.q0 + row % p.Tq; // the last key this query sees
  let base = row * p.Tk;
  var dot = 0.0;
  for (var j = 0u; j <= last; j++) { dot += a[base + j] * b[base + j]; }
  for (var j = 0u; j < p.Tk; j++) {
    if (j <= last) { out[base + j] = a[base + j] * (b[base + j] - dot); } else { out[base + j] = 0.0; }
  }
}

@compute @workgroup_size(WG)
fn attn_dq_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = linear(gid, nwg); // (b, i, h, d)
  if (idx >= p.B * p.Tq * p.H * p.dh) { return; }
  let d = idx % p.dh;
  let h = (idx / p.dh) % p.H;
  let i = (idx / (p.dh * p.H)) % p.Tq;
  let bt = idx / (p.dh * p.H * p.Tq);
  let g = group(h);
  var acc = 0.0;
  for (var j = 0u; j <= p.q0 + i; j++) { acc += a[sIndex(bt, h, i, j)] * b[kIndex(bt, j, g) + d]; }
  out[idx] = acc * p.scale;
}

@compute @workgroup_size(WG)
fn attn_dk_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = linear(gid, nwg); // (b, j, g, d)
  if (idx >= p.B * p.Tk * p.Hkv * p.dh) { return; }
  let d = idx % p.dh;
  let g = (idx / p.dh) % p.Hkv;
  let j = (idx / (p.dh * p.Hkv)) % p.Tk;
  let bt = idx / (p.dh * p.Hkv * p.Tk);
  let per = p.H / p.Hkv;
  var acc = 0.0;
  for (var h = g * per; h < (g + 1u) * per; h++) {
    for (var i = firstQuery(j); i < p.Tq; i++) { acc += a[sIndex(bt, h, i, j)] * b[qIndex(bt, i, h) + d]; }
  }
  out[idx] = acc * p.scale;
}

// v2 reads q, k, v, z and their gradients as vec4 (a second view of bindings 1 and 2; no entry
// point uses both views of one binding).
@group(0) @binding(1) var<storage, read> a4: array<vec4f>;
@group(0) @binding(2) var<storage, read> b4: array<vec4f>;

${tiled()}
`;
}

const R = [...Array(ROW_TILE).keys()];
const CV = [...Array(COL_VEC4S).keys()];

/** The accumulators c0 .. c{COL_VEC4S-1}, each ROW_TILE vec4 (rows of the tile, 4 columns each). */
const accumulators = CV.map((c) => `  var c${c}: array<vec4f, ${ROW_TILE}>;`).join('\n');

/** Vec4 column offsets of the tile's columns of dh, clamped to the last vec4 (never stored). */
const columns = CV.map((c) => `  let o${c} = min(d0 + ${4 * c}u, p.dh - 4u) / 4u;`).join('\n');

/** One step of a rows x columns tile: row r's scalar x{r} times column group c's vec4 y{c}. */
const step = (x: (r: number) => string, y: (c: number) => string) =>
  [...CV.map((c) => `      let y${c} = ${y(c)};`), ...R.map((r) => `      { let x = vec4f(${x(r)});${CV.map((c) => ` c${c}[${r}] = fma(x, y${c}, c${c}[${r}]);`).join('')} }`)].join('\n');

/** Stores row r, columns d0 + 4c + e of the tile at out[base(r) + column], times `factor`. */
const storeTile = (rows: string, base: (r: string) => string, factor: string) => `  for (var r = 0u; r < ${ROW_TILE}u; r++) {
    if (${rows}) { break; }
    for (var e = 0u; e < 4u; e++) {
${CV.map((c) => `      if (d0 + ${4 * c}u + e < p.dh) { out[${base('r')} + d0 + ${4 * c}u + e] = c${c}[r][e] * ${factor}; }`).join('\n')}
    }
  }`;

/**
 * The v2 entry points, written out in TypeScript so every tile loop is unrolled in the source
 * and every row offset is a named constant outside the reduction loop.
 */
function tiled(): string {
  const [PI, PJ] = DP_TILE;
  const pi = [...Array(PI).keys()];
  const pj = [...Array(PJ).keys()];
  // dq / dv / dk: which tile of (rows, dh columns) this invocation computes.
  const tile = (rows: string) => `  let nD = (p.dh + ${4 * COL_VEC4S - 1}u) / ${4 * COL_VEC4S}u;
  let r0 = (gid.x / nD) * ${ROW_TILE}u;
  let d0 = (gid.x % nD) * ${4 * COL_VEC4S}u;
  if (r0 >= ${rows}) { return; }`;
  return `@compute @workgroup_size(${V2_GROUP})
fn attn_dpattern_v2(@builtin(global_invocation_id) gid: vec3u) {
  let nJ = (p.Tk + ${PJ - 1}u) / ${PJ}u;
  let i0 = (gid.x / nJ) * ${PI}u;
  let j0 = (gid.x % nJ) * ${PJ}u;
  if (i0 >= p.Tq) { return; }
  let h = gid.z % p.H;
  let bt = gid.z / p.H;
  // Row offsets in vec4s; rows past the end re-read the last one (never stored).
${pi.map((i) => `  let z${i} = qIndex(bt, min(i0 + ${i}u, p.Tq - 1u), h) / 4u;`).join('\n')}
${pj.map((j) => `  let v${j} = kIndex(bt, min(j0 + ${j}u, p.Tk - 1u), group(h)) / 4u;`).join('\n')}
${pi.map((i) => `  var s${i}: array<vec4f, ${PJ}>; // dz row i0+${i} . v rows j0 .., four partial sums each`).join('\n')}
  for (var d = 0u; d < p.dh / 4u; d++) {
${pi.map((i) => `    let x${i} = a4[z${i} + d];`).join('\n')}
${pj.map((j) => `    let y${j} = b4[v${j} + d];`).join('\n')}
${pi.map((i) => `   ${pj.map((j) => ` s${i}[${j}] = fma(x${i}, y${j}, s${i}[${j}]);`).join('')}`).join('\n')}
  }
${pi.map((i) => `  if (i0 + ${i}u < p.Tq) {
    for (var j = 0u; j < ${PJ}u; j++) {
      if (j0 + j < p.Tk) { let t = s${i}[j]; out[sIndex(bt, h, i0 + ${i}u, j0 + j)] = (t.x + t.y) + (t.z + t.w); }
    }
  }`).join('\n')}
}

// dq[b, i, h, d] = scale sum_j dscores[b, h, i, j] k[b, j, g(h), d]: rows i0 .., columns d0 ...
@compute @workgroup_size(${V2_GROUP})
fn attn_dq_v2(@builtin(global_invocation_id) gid: vec3u) {
${tile('p.Tq')}
  let h = gid.z % p.H;
  let bt = gid.z / p.H;
  let g = group(h);
${accumulators}
${columns}
${R.map((r) => `  let s${r} = sIndex(bt, h, min(r0 + ${r}u, p.Tq - 1u), 0u);`).join('\n')}
  // The keys the tile's last row sees (zeros of dscores past each row's own).
  let jEnd = min(p.q0 + min(r0 + ${ROW_TILE - 1}u, p.Tq - 1u) + 1u, p.Tk);
  for (var j = 0u; j < jEnd; j++) {
    let kb = kIndex(bt, j, g) / 4u;
${step((r) => `a[s${r} + j]`, (c) => `b4[kb + o${c}]`)}
  }
${storeTile('r0 + r >= p.Tq', (r) => `qIndex(bt, r0 + ${r}, h)`, 'p.scale')}
}

${['dv', 'dk']
  .map(
    (which) => `// ${which}[b, j, g, d] = ${which === 'dk' ? 'scale ' : ''}sum_{h in g} sum_i ${which === 'dk' ? 'dscores' : 'pattern'}[b, h, i, j] ${which === 'dk' ? 'q' : 'dz'}[b, i, h, d]: keys j0 .., columns d0 ...
@compute @workgroup_size(${V2_GROUP})
fn attn_${which}_v2(@builtin(global_invocation_id) gid: vec3u) {
${tile('p.Tk')}
  let g = gid.z % p.Hkv;
  let bt = gid.z / p.Hkv;
${accumulators}
${columns}
  // Keys past the end re-read the last (never stored).
${R.map((r) => `  let j${r} = min(r0 + ${r}u, p.Tk - 1u);`).join('\n')}
  let per = p.H / p.Hkv;
  for (var h = g * per; h < (g + 1u) * per; h++) {
    // Query rows from the first that sees key r0 (earlier rows' entries are zeros).
    for (var i = firstQuery(r0); i < p.Tq; i++) {
      let sb = sIndex(bt, h, i, 0u);
      let qb = qIndex(bt, i, h) / 4u;
${step((r) => `a[sb + j${r}]`, (c) => `b4[qb + o${c}]`)}
    }
  }
${storeTile('r0 + r >= p.Tk', (r) => `kIndex(bt, r0 + ${r}, g)`, which === 'dk' ? 'p.scale' : '1.0')}
}`,
  )
  .join('\n\n')}`;
}
