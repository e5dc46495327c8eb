/**
 * Metrics on the GPU, so a sweep reads back one number per batch row, not its logits.
 *
 *   row_lse          lse[b, i] = log sum_v exp(logits[b, i, v])   (max-subtracted: no overflow)
 *   metric_combine   out[b] = (sum_t coef_t * term_t(b) - shift) * scale, over row b's own terms
 *                    t in [start_b, start_b + count_b) of the table (rows may carry different
 *                    metrics: a batch of prompt pairs, each with its own answer tokens)
 *                    term = logits[b, i_t, tok_t]            (kind 0: a logit)
 *                         | logits[b, i_t, tok_t] - lse[b, i_t]   (kind 1: a log-probability)
 *                         | exp(that)                         (kind 2: a probability)
 *
 * A logit difference is two kind-0 terms (+1, -1); cross-entropy loss over a span is one kind-1
 * term per position with coef -1/n; shift and scale give the normalized form
 * (m - m_corrupt) / (m_clean - m_corrupt). logits: [B, P, V] (P = the positions the metric
 * reads); lse: [B, P]; row_terms: [B] (start, count); out: [B].
 *
 *   metric_terms     out[t] = (coef_t * term_t - shift) * scale, each term on its own, for
 *                    B = 1 (the terms pick any of the P rows): a per-token loss over a
 *                    batch laid out as P = batch * pos rows
 *
 * Versions: v1 of each. `row_lse_v1`: one workgroup of WG per row, strided max and sum with
 * tree reductions. `metric_combine_v1`: one invocation per batch row, WG per workgroup.
 * `metric_terms_v1`: one invocation per term, WG per workgroup, folded into 2-D past 65,535.
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';

export const METRICS_VERSIONS = ['row_lse_v1', 'metric_combine_v1', 'metric_terms_v1'] as const;

/** Words per term in the table (must match `Term`). */
export const TERM_WORDS = 4;
export const TERM_KIND = { logit: 0, logprob: 1, prob: 2 } as const;

export function metricsSource(): string {
  return wgsl`
struct Params {
  B: u32, P: u32, V: u32, n_terms: u32,
  shift: f32, scale: f32,
}

struct Term { i: u32, tok: u32, kind: u32, coef: f32 }

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> lse: array<f32>;
@group(0) @binding(3) var<storage, read> terms: array<Term>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read> row_terms: array<vec2u>;

// Invocations per row; a power of two for the tree reductions. Set through pipeline constants.
override WG: u32 = 64u;
var<workgroup> red: array<f32, 256>; // >= the largest WG the host may choose

@compute @workgroup_size(WG)
fn row_lse_v1(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) lid: u32) {
  let row = wg.x + wg.y * nwg.x;
  // No early return: every invocation must reach the barriers.
  let live = row < prm.B * prm.P;
  let base = row * prm.V;
  var m = -3.0e38;
  if (live) { for (var v = lid; v < prm.V; v += WG) { m = max(m, logits[base + v]); } }
  red[lid] = m;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let mx = red[0];
  workgroupBarrier();
  var acc = 0.0;
  if (live) { for (var v = lid; v < prm.V; v += WG) { acc += exp(logits[base + v] - mx); } }
  red[lid] = acc;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  if (live && lid == 0u) { lse[row] = mx + log(red[0]); }
}

// Term t of batch row b, before its coefficient.
fn term_value(b: u32, term: Term) -> f32 {
  let row = b * prm.P + term.i;
  var x = logits[row * prm.V + term.tok];
  if (term.kind >= 1u) { x = x - lse[row]; }
  if (term.kind == 2u) { x = exp(x); }
  return x;
}

@compute @workgroup_size(WG)
fn metric_combine_v1(@builtin(global_invocation_id) gid: vec3u) {
  let b = gid.x;
  if (b >= prm.B) { return; }
  var acc = 0.0;
  let span = row_terms[b];
  for (var t = span.x; t < span.x + span.y; t++) {
    let term = terms[t];
    acc += term.coef * term_value(b, term);
  }
  out[b] = (acc - prm.shift) * prm.scale;
}

@compute @workgroup_size(WG)
fn metric_terms_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * WG;
  if (t >= prm.n_terms) { return; }
  let term = terms[t];
  out[t] = (term.coef * term_value(0u, term) - prm.shift) * prm.scale;
}
`;
}
