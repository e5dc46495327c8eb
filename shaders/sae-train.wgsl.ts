/**
 * Training sparse autoencoders (SAELens' ReLU + L1 "standard", TopK + AuxK and JumpReLU + L0; the
 * definitions are in `src/gpu/kernels/sae-train.cpu.ts`, the CPU reference). The products
 * pre = xc W_enc + b_enc, recon = acts W_dec + b_dec and d acts = g_recon W_dec^T run on the
 * engine's matmul; these kernels do the rest. Shapes (row-major): store [N, D] (cached
 * activations), x / xc / recon / g_recon [B, D], pre / acts / d_acts / d_pre [B, S],
 * W_enc [D, S], W_dec [S, D], b_enc / log_threshold / norms / since [S], b_dec / mean [D],
 * row_stats [B, 4] (squared error, squared deviation from the batch mean, active latents, the
 * sparsity term), stats [4] (dead latents, k_aux, AuxK scale, -), metrics [8].
 * The step's sparsity coefficient is the clock row's fourth entry (`sched[k].w`).
 * Every sum over the batch runs serially in order b = 0, 1, ...: deterministic.
 *
 * Versions (v1 each; 64 invocations per workgroup, 2-D folded, index = gid.x + gid.y * nwg.x * 64,
 * unless one invocation does it all):
 *   v1 `sae_gather_v1`        per (b, d): x = store[row], row = draw(seed, t, b) mod N; xc = x - b_dec
 *   v1 `sae_activate_v1`      per (b, j): standard ReLU or JumpReLU (arch)
 *   v1 `sae_topk_v1`          per row: the k largest pre (ties: lower index), by repeated maximum;
 *                             mode 0: acts = ReLU of them; mode 1 (AuxK): aux acts = the k_aux
 *                             largest among dead latents, raw, with aux_sel marking them
 *   v1 `sae_norms_v1`         per j: ||W_dec_j||
 *   v1 `sae_mean_v1`          per d: mean over the batch of x
 *   v1 `sae_recon_grad_v1`    per row: g_recon = 2 (recon - x) / B; squared error and deviation
 *   v1 `sae_sparsity_v1`      per row: active latents and the L1 (standard) or L0 (jumprelu) term
 *   v1 `sae_aux_grad_v1`      per row (topk): g_aux = 2 c scale (aux_recon - (x - recon)) / B; its term
 *   v1 `sae_act_backward_v1`  per (b, j): d_pre = [acts != 0] (d_acts + c / B ||W_dec_j|| for
 *                             standard) + [aux_sel] d_aux (topk)
 *   v1 `sae_colsum_v1`        per j: out = (accumulate ? out : 0) + sum_b A[b, j]
 *   v1 `sae_dec_l1_v1`        per (j, d): dW_dec += c / B colsum_j W_dec[j, d] / ||W_dec_j||
 *   v1 `sae_bias_dec_v1`      per d: db_dec = colsum(g_recon (+ g_aux)) - sum_j W_enc[d, j] db_enc[j]
 *   v1 `sae_threshold_grad_v1` per j: JumpReLU's straight-through d log_threshold
 *   v1 `sae_fired_v1`         per j: since = 0 if any row's acts is nonzero, else since + 1
 *   v1 `sae_dead_v1`          one invocation: dead = #(since > window), k_aux, scale
 *   v1 `sae_reduce_v1`        one invocation: loss, mse, aux, L0, FVU, dead, explained variance
 */
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';
import { CLOCK_STRUCT } from './clock.wgsl.ts';
import { RANDOM_WGSL } from './synthetic.wgsl.ts';

export const SAE_TRAIN_VERSIONS = [
  'sae_gather_v1',
  'sae_activate_v1',
  'sae_topk_v1',
  'sae_norms_v1',
  'sae_mean_v1',
  'sae_recon_grad_v1',
  'sae_sparsity_v1',
  'sae_aux_grad_v1',
  'sae_act_backward_v1',
  'sae_colsum_v1',
  'sae_dec_l1_v1',
  'sae_bias_dec_v1',
  'sae_threshold_grad_v1',
  'sae_fired_v1',
  'sae_dead_v1',
  'sae_reduce_v1',
] as const;

export function saeTrainSource(): string {
  return wgsl`
${CLOCK_STRUCT}
${RANDOM_WGSL}

struct Params {
  B: u32, D: u32, S: u32, N: u32,   // batch rows, d_in, d_sae, rows in the store
  seed: u32,
  k: u32,          // TopK's k
  arch: u32,       // 0 standard, 1 topk, 2 jumprelu
  window: u32,     // dead_feature_window (steps)
  bandwidth: f32,  // JumpReLU
  accumulate: u32, // colsum: add to the output
  mode: u32,       // topk: 0 main, 1 AuxK
  I: u32,          // colsum: columns
}

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> clk: Clock;
@group(0) @binding(2) var<storage, read> store: array<f32>;
@group(0) @binding(3) var<storage, read> b_dec: array<f32>;
@group(0) @binding(4) var<storage, read_write> x: array<f32>;
@group(0) @binding(5) var<storage, read_write> xc: array<f32>;
@group(0) @binding(6) var<storage, read> pre: array<f32>;
@group(0) @binding(7) var<storage, read> log_threshold: array<f32>;
@group(0) @binding(8) var<storage, read_write> acts: array<f32>;
@group(0) @binding(9) var<storage, read_write> aux_sel: array<f32>;
@group(0) @binding(10) var<storage, read_write> since: array<u32>;
@group(0) @binding(11) var<storage, read_write> stats: array<f32>;
@group(0) @binding(12) var<storage, read> W_dec: array<f32>;
@group(0) @binding(13) var<storage, read_write> norms: array<f32>;
@group(0) @binding(14) var<storage, read_write> mean: array<f32>;
@group(0) @binding(15) var<storage, read> recon: array<f32>;
@group(0) @binding(16) var<storage, read_write> g_out: array<f32>;     // g_recon / g_aux / d_pre / dW_dec / db_dec / d log_threshold
@group(0) @binding(17) var<storage, read_write> row_stats: array<f32>;
@group(0) @binding(18) var<storage, read> d_in_a: array<f32>;         // d_acts (act_backward, threshold), A (colsum), recon (aux_grad), db_enc (bias_dec)
@group(0) @binding(19) var<storage, read> d_in_b: array<f32>;         // d_aux (act_backward), column sums (dec_l1, bias_dec)
@group(0) @binding(20) var<storage, read> W_enc: array<f32>;
@group(0) @binding(21) var<storage, read_write> metrics: array<f32>;

fn index(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * 64u; }
fn coefficient() -> f32 { return clk.sched[clk.step - clk.base].w; }

@compute @workgroup_size(64)
fn sae_gather_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = index(gid, nwg);
  if (e >= prm.B * prm.D) { return; }
  let b = e / prm.D;
  let d = e % prm.D;
  let row = draw(prm.seed, clk.step + 1u, b) % prm.N;
  let v = store[row * prm.D + d];
  x[e] = v;
  xc[e] = v - b_dec[d];
}

@compute @workgroup_size(64)
fn sae_activate_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = index(gid, nwg);
  if (e >= prm.B * prm.S) { return; }
  let p = pre[e];
  var on = p > 0.0;
  if (prm.arch == 2u) { on = p > exp(log_threshold[e % prm.S]); }
  acts[e] = select(0.0, p, on);
}

@compute @workgroup_size(64)
fn sae_topk_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let b = index(gid, nwg);
  if (b >= prm.B) { return; }
  let o = b * prm.S;
  let aux = prm.mode == 1u;
  var k = prm.k;
  if (aux) { k = u32(stats[1]); }
  // acts (and aux_sel) start at 0; a selected latent is marked by aux_sel = 1 while selecting.
  for (var j = 0u; j < prm.S; j++) { acts[o + j] = 0.0; aux_sel[o + j] = 0.0; }
  for (var r = 0u; r < k; r++) {
    var best = prm.S;
    var bv = 0.0;
    for (var j = 0u; j < prm.S; j++) {
      if (aux_sel[o + j] != 0.0) { continue; }
      if (aux && since[j] <= prm.window) { continue; }  // AuxK: dead latents only
      let v = pre[o + j];
      if (best == prm.S || v > bv) { best = j; bv = v; }
    }
    if (best == prm.S) { break; }
    aux_sel[o + best] = 1.0;
    acts[o + best] = select(max(bv, 0.0), bv, aux);
  }
  if (!aux) { for (var j = 0u; j < prm.S; j++) { aux_sel[o + j] = 0.0; } }
}

@compute @workgroup_size(64)
fn sae_norms_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = index(gid, nwg);
  if (j >= prm.S) { return; }
  var acc = 0.0;
  for (var d = 0u; d < prm.D; d++) { let w = W_dec[j * prm.D + d]; acc = acc + w * w; }
  norms[j] = sqrt(acc);
}

@compute @workgroup_size(64)
fn sae_mean_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let d = index(gid, nwg);
  if (d >= prm.D) { return; }
  var acc = 0.0;
  for (var b = 0u; b < prm.B; b++) { acc = acc + x[b * prm.D + d]; }
  mean[d] = acc / f32(prm.B);
}

@compute @workgroup_size(64)
fn sae_recon_grad_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let b = index(gid, nwg);
  if (b >= prm.B) { return; }
  var err = 0.0;
  var dev = 0.0;
  for (var d = 0u; d < prm.D; d++) {
    let e = recon[b * prm.D + d] - x[b * prm.D + d];
    let m = x[b * prm.D + d] - mean[d];
    err = err + e * e;
    dev = dev + m * m;
    g_out[b * prm.D + d] = 2.0 * e / f32(prm.B);
  }
  row_stats[b * 4u] = err;
  row_stats[b * 4u + 1u] = dev;
}

@compute @workgroup_size(64)
fn sae_sparsity_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let b = index(gid, nwg);
  if (b >= prm.B) { return; }
  var l0 = 0.0;
  var term = 0.0;
  for (var j = 0u; j < prm.S; j++) {
    let a = acts[b * prm.S + j];
    if (a != 0.0) { l0 = l0 + 1.0; }
    if (prm.arch == 0u) { term = term + a * norms[j]; }
    if (prm.arch == 2u && pre[b * prm.S + j] > exp(log_threshold[j])) { term = term + 1.0; }
  }
  row_stats[b * 4u + 2u] = l0;
  if (prm.arch != 1u) { row_stats[b * 4u + 3u] = term; }
}

// topk: recon here is the AuxK reconstruction (aux acts W_dec + b_dec); d_in_a the main recon.
@compute @workgroup_size(64)
fn sae_aux_grad_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let b = index(gid, nwg);
  if (b >= prm.B) { return; }
  let c = 2.0 * coefficient() * stats[2] / f32(prm.B);
  var acc = 0.0;
  for (var d = 0u; d < prm.D; d++) {
    let i = b * prm.D + d;
    let e = recon[i] - (x[i] - d_in_a[i]);
    acc = acc + e * e;
    g_out[i] = select(0.0, c * e, stats[0] > 0.0);
  }
  row_stats[b * 4u + 3u] = select(0.0, acc, stats[0] > 0.0);
}

@compute @workgroup_size(64)
fn sae_act_backward_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = index(gid, nwg);
  if (e >= prm.B * prm.S) { return; }
  let j = e % prm.S;
  var g = 0.0;
  if (acts[e] != 0.0) {
    g = d_in_a[e];
    if (prm.arch == 0u) { g = g + coefficient() / f32(prm.B) * norms[j]; }
  }
  if (prm.arch == 1u && aux_sel[e] != 0.0) { g = g + d_in_b[e]; }
  g_out[e] = g;
}

@compute @workgroup_size(64)
fn sae_colsum_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = index(gid, nwg);
  if (j >= prm.I) { return; }
  var acc = 0.0;
  for (var b = 0u; b < prm.B; b++) { acc = acc + d_in_a[b * prm.I + j]; }
  if (prm.accumulate == 1u) { acc = g_out[j] + acc; }
  g_out[j] = acc;
}

@compute @workgroup_size(64)
fn sae_dec_l1_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = index(gid, nwg);
  if (e >= prm.S * prm.D) { return; }
  let j = e / prm.D;
  if (norms[j] > 0.0) { g_out[e] = g_out[e] + coefficient() / f32(prm.B) * d_in_b[j] * W_dec[e] / norms[j]; }
}

@compute @workgroup_size(64)
fn sae_bias_dec_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let d = index(gid, nwg);
  if (d >= prm.D) { return; }
  var acc = 0.0;
  for (var j = 0u; j < prm.S; j++) { acc = acc + W_enc[d * prm.S + j] * d_in_a[j]; }
  g_out[d] = d_in_b[d] - acc;
}

@compute @workgroup_size(64)
fn sae_threshold_grad_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = index(gid, nwg);
  if (j >= prm.S) { return; }
  let theta = exp(log_threshold[j]);
  let eps = prm.bandwidth;
  let l0 = coefficient() / f32(prm.B) / eps;
  var acc = 0.0;
  for (var b = 0u; b < prm.B; b++) {
    let z = (pre[b * prm.S + j] - theta) / eps;
    if (z > -0.5 && z < 0.5) { acc = acc - theta / eps * d_in_a[b * prm.S + j] - l0; }
  }
  g_out[j] = acc * theta;
}

@compute @workgroup_size(64)
fn sae_fired_v1(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = index(gid, nwg);
  if (j >= prm.S) { return; }
  var fired = false;
  for (var b = 0u; b < prm.B; b++) { if (acts[b * prm.S + j] != 0.0) { fired = true; break; } }
  since[j] = select(since[j] + 1u, 0u, fired);
}

@compute @workgroup_size(1)
fn sae_dead_v1() {
  var dead = 0u;
  for (var j = 0u; j < prm.S; j++) { if (since[j] > prm.window) { dead = dead + 1u; } }
  let half = prm.D / 2u;
  stats[0] = f32(dead);
  stats[1] = f32(min(half, dead));
  stats[2] = min(f32(dead) / f32(half), 1.0);
}

@compute @workgroup_size(1)
fn sae_reduce_v1() {
  var err = 0.0;
  var dev = 0.0;
  var l0 = 0.0;
  var term = 0.0;
  for (var b = 0u; b < prm.B; b++) {
    err = err + row_stats[b * 4u];
    dev = dev + row_stats[b * 4u + 1u];
    l0 = l0 + row_stats[b * 4u + 2u];
    term = term + row_stats[b * 4u + 3u];
  }
  let n = f32(prm.B);
  var aux = coefficient() * term / n;
  if (prm.arch == 1u) { aux = aux * stats[2]; }
  let mse = err / n;
  metrics[0] = mse + aux;
  metrics[1] = mse;
  metrics[2] = aux;
  metrics[3] = l0 / n;
  metrics[4] = err / dev;        // fraction of variance unexplained
  metrics[5] = stats[0];          // dead latents
  metrics[6] = 1.0 - err / dev;   // explained variance (SAELens' trainer log)
  metrics[7] = coefficient();
}
`;
}
