/**
 * The backward of the metric kernels (`metrics.wgsl.ts`): the gradient of the sum over batch
 * rows of out[b] = (sum_t coef_t term_t(b) - shift) * scale with respect to the logits.
 * For a logits row (b, i) with softmax s and the terms at position i:
 *
 *   logit   (kind 0):  coef at tok
 *   logprob (kind 1):  coef (onehot(tok) - s)                      (cross-entropy is -logprob)
 *   prob    (kind 2):  coef p_tok (onehot(tok) - s)
 *
 * so dlogits[row, v] = scale (sum_{t: tok_t = v} coef_t w_t - A s_v), with w_t = 1, or p_tok for a
 * probability, and A = sum over log-probability and probability terms of coef_t w_t.
 * logits: [rows, V] (rows = B x P, P the positions the metric reads) from `l_off`; dlogits:
 * [rows, ldo] from `o_off`, ldo >= V, columns V .. ldo-1 written 0 (a padded gradient whose rows
 * the matmul backward reads as vec4). Each term applies to one batch row or (row = ALL_ROWS) to
 * every row, so rows may carry metrics of their own (each prompt's own next tokens for a loss).
 * The kernel also writes the metric's value per logits row, value[row] = sum_t coef_t term_t
 * (before the affine), which the host sums over a batch row's positions. Variant `inPlace`: the
 * gradient overwrites the logits (a backward needs no second [rows, V] buffer; rows are read in
 * full before they are written).
 *
 * Versions: v1 `metric_backward_v1`, one workgroup of WG per logits row: invocation 0 collects
 * the row's terms (at most MAX_TERMS per position) while all take the strided max and sum of exp
 * with tree reductions (skipped when the row has only logit terms), then each writes a strided
 * slice of the row. Dispatch: one workgroup per row (2-D folded).
 *
 * Variant `softcap` (Gemma's final logit soft-cap, y = cap tanh(l / cap), where the logits read
 * are the capped y): the gradient reaching the uncapped logits l is the above times
 * dy/dl = 1 - (y / cap)^2, taken from y as each element is written.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const METRICS_BACKWARD_VERSIONS = ['metric_backward_v1'] as const;

/** Most metric terms at one (batch row, position) (a logit difference has 2; every kind here at most 2). */
export const MAX_TERMS_PER_POSITION = 16;

/** Words per term (must match `Term`), and the row value meaning "every batch row". */
export const BACKWARD_TERM_WORDS = 8;
export const ALL_ROWS = 0xffffffff;

export function metricsBackwardSource({ inPlace, softcap = false }: { inPlace: boolean; softcap?: boolean } = { inPlace: false }): string {
  return wgsl`
struct Params {
  rows: u32, P: u32, V: u32, n_terms: u32,
  scale: f32,
  ldo: u32, l_off: u32, o_off: u32,
  row0: u32,  // first row of this dispatch (a block of rows that fits one binding)
  cap: f32,   // variant softcap: the soft-cap (else unused)
}

struct Term { row: u32, i: u32, tok: u32, kind: u32, coef: f32, pad0: u32, pad1: u32, pad2: u32 }

@group(0) @binding(0) var<uniform> prm: Params;
#if ${inPlace}
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;
#else
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
#endif
@group(0) @binding(2) var<storage, read> terms: array<Term>;

// The gradient's element i: into dlogits, or (in place) over the logits.
fn put(i: u32, v: f32) {
#if ${inPlace}
  logits[i] = v;
#else
  dlogits[i] = v;
#endif
}
@group(0) @binding(4) var<storage, read_write> values: array<f32>; // [rows]

const MAX_TERMS = ${MAX_TERMS_PER_POSITION}u;
override WG: u32 = 64u;
var<workgroup> red: array<f32, 256>; // >= the largest WG the host may choose
var<workgroup> tok: array<u32, ${MAX_TERMS_PER_POSITION}>;
var<workgroup> info: vec2u; // (terms at this row kept, any log-probability or probability term)

fn applies(term: Term, b: u32, i: u32) -> bool { return term.i == i && (term.row == ${ALL_ROWS}u || term.row == b); }

fn reduce(lid: u32, v: f32, is_max: bool) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] = select(red[lid] + red[lid + s], max(red[lid], red[lid + s]), is_max); }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}

@compute @workgroup_size(WG)
fn metric_backward_v1(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                      @builtin(local_invocation_index) lid: u32) {
  let local = wg.x + wg.y * nwg.x;
  let row = prm.row0 + local;
  let live = row < prm.rows; // no early return: every invocation reaches the barriers
  let i = row % prm.P;
  let b = row / prm.P;
  let base = prm.l_off + local * prm.V;
  if (lid == 0u) {
    var n = 0u;
    var soft = 0u;
    for (var t = 0u; t < prm.n_terms; t++) {
      let term = terms[t];
      if (!applies(term, b, i) || n >= MAX_TERMS) { continue; }
      tok[n] = term.tok;
      if (term.kind >= 1u) { soft = 1u; }
      n++;
    }
    info = vec2u(n, soft);
  }
  // A uniform load (with its barrier), so the reductions below sit in uniform control flow.
  let counts = workgroupUniformLoad(&info);
  let n = counts.x;
  let soft = counts.y == 1u;
  var mx = 0.0;
  var lse = 0.0;
  if (soft) {
    var m = -3.0e38;
    if (live) { for (var v = lid; v < prm.V; v += WG) { m = max(m, logits[base + v]); } }
    mx = reduce(lid, m, true);
    var acc = 0.0;
    if (live) { for (var v = lid; v < prm.V; v += WG) { acc += exp(logits[base + v] - mx); } }
    lse = mx + log(reduce(lid, acc, false));
  }
  // w_t and A: a probability term's weight is coef p_tok. And the row's value.
  var A = 0.0;
  var val = 0.0;
  var w: array<f32, ${MAX_TERMS_PER_POSITION}>;
  var t = 0u;
  for (var tt = 0u; live && tt < prm.n_terms; tt++) {
    let term = terms[tt];
    if (!applies(term, b, i)) { continue; }
    if (t >= n) { break; }
    var wt = term.coef;
    var x = logits[base + term.tok];
    if (term.kind >= 1u) { x = x - lse; }
    if (term.kind == 2u) { x = exp(x); wt = wt * x; }
    val += term.coef * x;
    if (term.kind >= 1u) { A += wt; }
    w[t] = wt;
    t++;
  }
  // Every read of the row is done before any write (the in-place variant overwrites it).
  workgroupBarrier();
  if (!live) { return; }
  if (lid == 0u) { values[row] = val; }
  let ob = prm.o_off + local * prm.ldo;
  for (var v = lid; v < prm.ldo; v += WG) {
    if (v >= prm.V) { put(ob + v, 0.0); continue; }
    var g = 0.0;
    if (soft) { g = -A * exp(logits[base + v] - lse); }
    for (var k = 0u; k < n; k++) { if (tok[k] == v) { g += w[k]; } }
#if ${softcap}
    let yc = logits[base + v] / prm.cap; // read before the in-place write below
    g = g * (1.0 - yc * yc);
#endif
    put(ob + v, g * prm.scale);
  }
}
`;
}
