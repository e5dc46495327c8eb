/**
 * The induction recipe's training batches drawn on the GPU (the attention-only trainer's
 * `generate` option), in the layout its kernels read (`src/train/attn-only.ts`): token ids [B T],
 * the scored (row, target) slots sorted by row with each sequence's first slot, and the rows
 * sorted by token (the embedding gradient's index). Update t = clk.step + 1 reads the clock, so a
 * recorded update replays unchanged. The draws are `draw(seed, t, b * COUNTERS + c)`; the CPU
 * twin, bit for bit, is `src/train/induction-data-gpu.cpu.ts` (which also documents the two
 * distributions, recall and repeated). Sizes are baked in (B sequences of T tokens, V tokens,
 * NT targets per sequence at most).
 *
 *   gen_sequence    one invocation per sequence: its ids, its scored (position, target) pairs in
 *                   order of position, and their count (private arrays: the recall pool of V - 1)
 *   compact         one invocation per sequence: its pairs to slots seqOff[b].. (the counts of
 *                   the sequences before it, summed in order), and the total
 *   token_count     one invocation per row: counts[ids[r]] += 1 (u32 atomics: exact in any order)
 *   token_offsets   one invocation: offsets = exclusive prefix sum of the counts; counts and
 *                   cursors zeroed for the next update
 *   token_fill      one invocation per row: order[offsets[id] + atomicAdd(cursor[id])] = r
 *   token_sort      one invocation per token: its rows sorted ascending (insertion sort), so the
 *                   index, and the gradient summed over it, does not depend on the atomics' order
 *
 * Versions: v1 of each.
 */
import { CLOCK_STRUCT } from './clock.wgsl.ts';
import { RANDOM_WGSL } from './synthetic.wgsl.ts';

export const INDUCTION_DATA_VERSIONS = ['gen_sequence_v1', 'compact_v1', 'token_count_v1', 'token_offsets_v1', 'token_fill_v1', 'token_sort_v1'] as const;

/** Invocations per workgroup. */
const WG = 64;

export interface InductionDataShape {
  task: 'recall' | 'repeated';
  B: number;
  T: number;
  V: number;
  /** Recall pairs per sequence. */
  K: number;
  /** Hash counters per sequence (the CPU twin's COUNTERS). */
  counters: number;
}

export function inductionDataSource(s: InductionDataShape): string {
  const { task, B, T, V, K, counters } = s;
  const NT = task === 'recall' ? K : T - 1;
  const gen =
    task === 'recall'
      ? `
  var pool: array<u32, ${V - 1}>;
  for (var k = 0u; k < ${V - 1}u; k++) { pool[k] = k + 1u; }
  ids[o] = 0u;
  for (var k = 0u; k < ${T - 1}u; k++) {
    let r = k + rand(t, b, &c, ${V - 1}u - k);
    let x = pool[r];
    pool[r] = pool[k];
    pool[k] = x;
    ids[o + k + 1u] = x;
  }
  var used: array<u32, ${T}>;
  var n = 0u;
  var pi: array<u32, ${K}>;
  var pj: array<u32, ${K}>;
  for (var p = 0u; p < ${K}u; p++) {
    for (var attempt = 0u; attempt < 20u; attempt++) {
      let i = 1u + rand(t, b, &c, ${T - 5}u);
      let j = i + 3u + rand(t, b, &c, ${T - 3}u - i);
      if (used[i] + used[i + 1u] + used[j] != 0u) { continue; }
      used[i] = 1u;
      used[i + 1u] = 1u;
      used[j] = 1u;
      ids[o + j] = ids[o + i];
      // Insert (i, j) in order of j.
      var q = n;
      while (q > 0u && pj[q - 1u] > j) {
        pi[q] = pi[q - 1u];
        pj[q] = pj[q - 1u];
        q--;
      }
      pi[q] = i;
      pj[q] = j;
      n++;
      break;
    }
  }
  for (var p = 0u; p < n; p++) {
    pairs[(b * ${NT}u + p) * 2u] = pj[p];
    pairs[(b * ${NT}u + p) * 2u + 1u] = ids[o + pi[p] + 1u];
  }
  cnt[b] = n;`
      : `
  ids[o] = 0u;
  for (var s = 1u; s < ${T}u; s++) { ids[o + s] = 1u + rand(t, b, &c, ${V - 1}u); }
  let k = 6u + rand(t, b, &c, 15u);
  let s1 = 1u + rand(t, b, &c, ${T - 1}u - 2u * k);
  let d = k + rand(t, b, &c, ${T + 1}u - s1 - 2u * k);
  for (var s = s1 + d; s < min(${T}u, s1 + d + k); s++) { ids[o + s] = ids[o + s - d]; }
  for (var s = 0u; s < ${T - 1}u; s++) {
    pairs[(b * ${NT}u + s) * 2u] = s;
    pairs[(b * ${NT}u + s) * 2u + 1u] = ids[o + s + 1u];
  }
  cnt[b] = ${T - 1}u;`;
  return `
${CLOCK_STRUCT}
${RANDOM_WGSL}

@group(0) @binding(0) var<storage, read> clk: Clock;
@group(0) @binding(1) var<storage, read_write> ids: array<u32>;        // [B T]
@group(0) @binding(2) var<storage, read_write> pairs: array<u32>;      // [B, NT, 2] (position, target)
@group(0) @binding(3) var<storage, read_write> cnt: array<u32>;        // [B] pairs per sequence
@group(0) @binding(4) var<storage, read_write> tRow: array<u32>;       // [CAP]
@group(0) @binding(5) var<storage, read_write> tTok: array<u32>;       // [CAP]
@group(0) @binding(6) var<storage, read_write> count: array<u32>;      // [1]
@group(0) @binding(7) var<storage, read_write> seqOff: array<u32>;     // [B + 1]
@group(0) @binding(8) var<storage, read> seed: array<u32>;             // [1] (a binding, not baked in: one pipeline for every seed)

// An integer in [0, k) from the sequence's next counter (exact in u32 for k <= 65536).
fn rand(t: u32, b: u32, c: ptr<function, u32>, k: u32) -> u32 {
  let v = draw(seed[0], t, b * ${counters}u + *c);
  *c = *c + 1u;
  return ((v >> 16u) * k) >> 16u;
}

@compute @workgroup_size(${WG})
fn gen_sequence_v1(@builtin(global_invocation_id) gid: vec3u) {
  let b = gid.x;
  if (b >= ${B}u) { return; }
  let t = clk.step + 1u;
  let o = b * ${T}u;
  var c = 0u;
${gen}
}

@compute @workgroup_size(${WG})
fn compact_v1(@builtin(global_invocation_id) gid: vec3u) {
  let b = gid.x;
  if (b >= ${B}u) { return; }
  var off = 0u;
  for (var q = 0u; q < b; q++) { off += cnt[q]; }
  let n = cnt[b];
  for (var p = 0u; p < n; p++) {
    tRow[off + p] = b * ${T}u + pairs[(b * ${NT}u + p) * 2u];
    tTok[off + p] = pairs[(b * ${NT}u + p) * 2u + 1u];
  }
  seqOff[b] = off;
  if (b == ${B - 1}u) {
    seqOff[${B}u] = off + n;
    count[0] = off + n;
  }
}
`;
}

/** The token index of a batch's ids (`token_*`): rows sorted by token, as the host's CSR. */
export function tokenIndexSource({ B, T, V }: { B: number; T: number; V: number }): string {
  const R = B * T;
  return `
// ids, offsets and order are regions of one buffer (the trainer's batch): a dispatch may not bind
// one buffer both read-only and writable, so all are read_write (each region is only read or
// only written by any one entry point).
@group(0) @binding(0) var<storage, read_write> ids: array<u32>;            // [R]
@group(0) @binding(1) var<storage, read_write> counters: array<atomic<u32>>; // [2 V] counts, cursors
@group(0) @binding(2) var<storage, read_write> offsets: array<u32>;        // [V + 1]
@group(0) @binding(3) var<storage, read_write> order: array<u32>;          // [R]

@compute @workgroup_size(${WG})
fn token_count_v1(@builtin(global_invocation_id) gid: vec3u) {
  let r = gid.x;
  if (r >= ${R}u) { return; }
  atomicAdd(&counters[ids[r]], 1u);
}

@compute @workgroup_size(1)
fn token_offsets_v1() {
  var s = 0u;
  for (var v = 0u; v < ${V}u; v++) {
    offsets[v] = s;
    s += atomicLoad(&counters[v]);
    atomicStore(&counters[v], 0u);
    atomicStore(&counters[${V}u + v], 0u);
  }
  offsets[${V}u] = s;
}

@compute @workgroup_size(${WG})
fn token_fill_v1(@builtin(global_invocation_id) gid: vec3u) {
  let r = gid.x;
  if (r >= ${R}u) { return; }
  let id = ids[r];
  order[offsets[id] + atomicAdd(&counters[${V}u + id], 1u)] = r;
}

@compute @workgroup_size(${WG})
fn token_sort_v1(@builtin(global_invocation_id) gid: vec3u) {
  let v = gid.x;
  if (v >= ${V}u) { return; }
  let a = offsets[v];
  let e = offsets[v + 1u];
  for (var i = a + 1u; i < e; i++) {
    let x = order[i];
    var j = i;
    while (j > a && order[j - 1u] > x) {
      order[j] = order[j - 1u];
      j--;
    }
    order[j] = x;
  }
}
`;
}
