/**
 * The attention-only trainer (`src/train/attn-only.ts`) against independent references:
 *
 * - its float64 CPU reference (`attn-only.cpu.ts`) against central finite differences of its own
 *   loss, tied and untied;
 * - one update's loss and every gradient buffer against that reference on odd shapes (B, T odd,
 *   D and V not multiples of 64, fewer targets than maxTargets with stale slots past the count),
 *   to 1e-4 of each tensor's largest magnitude;
 * - the narrow matmuls (`shaders/narrow-matmul.wgsl.ts`) dispatched directly against
 *   `narrow-matmul.cpu.ts` at odd shapes, with and without subgroup broadcasts;
 * - 3 AdamW updates of the induction recipe model against the general path
 *   (`TransformerTraining`, itself checked against PyTorch);
 * - clear errors for models and batches it cannot train.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/device.ts';
import { readBuffer } from '../../src/gpu/tensor.ts';
import { submitSteps } from '../../src/gpu/recorder.ts';
import { rowsTimesTCpu, weightGradCpu } from '../../src/gpu/kernels/narrow-matmul.cpu.ts';
import { NARROW_WG, rowsTimesTSource, rowsTimesTV2Grid, rowsTimesTV2Source, weightGradSource, weightGradV2Grid, weightGradV2Source } from '../../shaders/narrow-matmul.wgsl.ts';
import { modelFromWeights } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { gpt2LikeConfig } from '../../src/model/config.ts';
import type { HostLayer, HostMatrix } from '../../src/model/host-weights.ts';
import { loadCheckpoint } from '../../src/model/checkpoint.ts';
import { hostWeightsFor } from '../../src/model/host-weights-for.ts';
import { writeSafetensors } from '../../src/model/safetensors.ts';
import { AttnOnlyTraining } from '../../src/train/attn-only.ts';
import { attnOnlyCpuShape, attnOnlyCpuShapes, attnOnlyLossCpu, type AttnOnlyCpuShape, type CpuTarget } from '../../src/train/attn-only.cpu.ts';
import { TrainClock } from '../../src/train/clock.ts';
import { inductionBatch } from '../../src/train/induction-data.ts';
import { modelFromFiles, RECIPE, recipeConfig, recipeInit } from '../../src/train/induction-recipe.ts';
import { Optimizer } from '../../src/train/optimizer.ts';
import { Trainer } from '../../src/train/trainer.ts';
import { TransformerTraining, type TrainBatch } from '../../src/train/transformer.ts';
import { SeededRandom } from '../../src/util/random.ts';
import { fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';
import { maxAbs, maxAbsDiff, RELATIVE_TOLERANCE } from '../helpers/compare.ts';

/** Random weights for the reference's shape: matrices N(0, 0.3), biases N(0, 0.1), norm gains 1 + N(0, 0.2). */
function randomWeights(s: AttnOnlyCpuShape, seed: number): Map<string, Float32Array> {
  const rng = new SeededRandom(seed);
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of attnOnlyCpuShapes(s)) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (/ln.*\.w$/.test(name)) out.set(name, rng.normal(n, 0.2, 1));
    else if (shape.length === 1) out.set(name, rng.normal(n, 0.1));
    else out.set(name, rng.normal(n, 0.3));
  }
  return out;
}

/** Distinct (row, pos) pairs in random order with random targets. */
function randomTargets(rng: SeededRandom, B: number, T: number, V: number, n: number): CpuTarget[] {
  const cells = Array.from({ length: B * T }, (_, i) => i);
  for (let i = cells.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [cells[i], cells[j]] = [cells[j]!, cells[i]!];
  }
  return cells.slice(0, n).map((c) => ({ row: Math.floor(c / T), pos: c % T, target: rng.int(V) }));
}

function randomIds(rng: SeededRandom, B: number, T: number, V: number): number[][] {
  return Array.from({ length: B }, () => Array.from({ length: T }, () => rng.int(V)));
}

describe('CPU reference', () => {
  // D, d_head and V need not be multiples of 4 here (only the GPU path needs that).
  for (const tied of [true, false]) {
    it(`matches central finite differences of its own loss (${tied ? 'tied' : 'untied'})`, () => {
      const s: AttnOnlyCpuShape = { B: 2, T: 7, D: 12, H: 3, E: 4, V: 21, P: 9, eps: 1e-5, scales: [0.5, 0.25], tied };
      const rng = new SeededRandom(11);
      const ids = randomIds(rng, s.B, s.T, s.V);
      const targets = randomTargets(rng, s.B, s.T, s.V, 9);
      const weights = new Map([...randomWeights(s, tied ? 1 : 2)].map(([n, w]) => [n, Float64Array.from(w)]));
      const { loss, grads } = attnOnlyLossCpu(s, weights, ids, targets);
      expect(loss).toBeGreaterThan(0.5);
      const h = 1e-5;
      for (const [name, w] of weights) {
        const g = grads.get(name)!;
        const fd = new Float64Array(w.length);
        for (let i = 0; i < w.length; i++) {
          const w0 = w[i]!;
          w[i] = w0 + h;
          const up = attnOnlyLossCpu(s, weights, ids, targets).loss;
          w[i] = w0 - h;
          const down = attnOnlyLossCpu(s, weights, ids, targets).loss;
          w[i] = w0;
          fd[i] = (up - down) / (2 * h);
        }
        // Central differences at h = 1e-5 are good to ~1e-10 here; 1e-6 of the tensor's scale
        // (and 1e-9 absolute, for the key bias whose gradient is exactly 0) is far inside.
        expect(maxAbsDiff(g, fd), name).toBeLessThanOrEqual(1e-6 * maxAbs(fd) + 1e-9);
        if (name.endsWith('attn.b_K')) expect(maxAbs(g), name).toBeLessThan(1e-12);
        else if (name !== 'pos_embed.W_pos') expect(maxAbs(g), `${name} is exercised`).toBeGreaterThan(1e-4);
      }
      // W_pos rows past T get no gradient.
      expect(maxAbs(grads.get('pos_embed.W_pos')!.subarray(s.T * s.D))).toBe(0);
    });
  }
});

// ---- GPU against the reference ----

const cat = (...parts: Float32Array[]) => {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

/**
 * An attention-only GPT-2 on the GPU from the reference's weights: tied, as an in-memory Hugging
 * Face folder (config.json + model.safetensors, the loading path users take); untied (which the
 * GPT-2 loader does not read yet) from host weights. MLPs of width 4: random c_fc and ln_2 (they
 * must not matter), zero c_proj.
 */
async function gpuModel(gpu: Gpu, s: AttnOnlyCpuShape, w: Map<string, Float32Array>, byLayer: boolean, mlpOut = 0): Promise<Model> {
  const { D, V, P } = s;
  const L = s.scales.length;
  const rng = new SeededRandom(99);
  const m = (data: Float32Array, shape: number[]): HostMatrix => ({ data, shape });
  const g = (n: string) => w.get(n)!;
  const mlp = () => ({
    ln2_w: rng.normal(D, 0.2, 1),
    ln2_b: rng.normal(D, 0.1),
    W_in: rng.normal(D * 4, 0.3),
    b_in: rng.normal(4, 0.1),
    W_out: new Float32Array(4 * D).fill(mlpOut),
    b_out: new Float32Array(D),
  });
  if (s.tied) {
    const t: Record<string, { shape: number[]; data: Float32Array }> = {
      'transformer.wte.weight': { shape: [V, D], data: g('embed.W_E') },
      'transformer.wpe.weight': { shape: [P, D], data: g('pos_embed.W_pos') },
      'transformer.ln_f.weight': { shape: [D], data: g('ln_final.w') },
      'transformer.ln_f.bias': { shape: [D], data: g('ln_final.b') },
    };
    for (let l = 0; l < L; l++) {
      const p = `blocks.${l}.`;
      const h = `transformer.h.${l}.`;
      const cAttn = new Float32Array(D * 3 * D); // [D, 3D]: q | k | v columns
      ['Q', 'K', 'V'].forEach((n, c) => {
        for (let r = 0; r < D; r++) cAttn.set(g(`${p}attn.W_${n}`).subarray(r * D, (r + 1) * D), r * 3 * D + c * D);
      });
      const x = mlp();
      Object.assign(t, {
        [`${h}ln_1.weight`]: { shape: [D], data: g(`${p}ln1.w`) },
        [`${h}ln_1.bias`]: { shape: [D], data: g(`${p}ln1.b`) },
        [`${h}attn.c_attn.weight`]: { shape: [D, 3 * D], data: cAttn },
        [`${h}attn.c_attn.bias`]: { shape: [3 * D], data: cat(g(`${p}attn.b_Q`), g(`${p}attn.b_K`), g(`${p}attn.b_V`)) },
        [`${h}attn.c_proj.weight`]: { shape: [D, D], data: g(`${p}attn.W_O`) },
        [`${h}attn.c_proj.bias`]: { shape: [D], data: g(`${p}attn.b_O`) },
        [`${h}ln_2.weight`]: { shape: [D], data: x.ln2_w },
        [`${h}ln_2.bias`]: { shape: [D], data: x.ln2_b },
        [`${h}mlp.c_fc.weight`]: { shape: [D, 4], data: x.W_in },
        [`${h}mlp.c_fc.bias`]: { shape: [4], data: x.b_in },
        [`${h}mlp.c_proj.weight`]: { shape: [4, D], data: x.W_out },
        [`${h}mlp.c_proj.bias`]: { shape: [D], data: x.b_out },
      });
    }
    const config = {
      architectures: ['GPT2LMHeadModel'],
      model_type: 'gpt2',
      n_embd: D,
      n_head: s.H,
      n_layer: L,
      n_positions: P,
      n_inner: 4,
      vocab_size: V,
      layer_norm_epsilon: s.eps,
      activation_function: 'gelu_new',
      tie_word_embeddings: true,
      scale_attn_by_inverse_layer_idx: byLayer,
    };
    return (await modelFromFiles(gpu, { 'config.json': JSON.stringify(config), 'model.safetensors': writeSafetensors(t) })).model;
  }
  const cfg = gpt2LikeConfig({
    d_model: D,
    n_layers: L,
    n_heads: s.H,
    d_head: s.E,
    d_mlp: 4,
    n_ctx: P,
    d_vocab: V,
    eps: s.eps,
    tied_embeddings: false,
    ...(byLayer ? { scale_attn_by_inverse_layer_idx: true } : {}),
  });
  const layers: HostLayer[] = Array.from({ length: L }, (_, l) => {
    const p = `blocks.${l}.`;
    const x = mlp();
    const HE = s.H * s.E;
    return {
      ln1_w: m(g(`${p}ln1.w`), [D]),
      ln1_b: m(g(`${p}ln1.b`), [D]),
      W_Q: m(g(`${p}attn.W_Q`), [D, HE]),
      b_Q: m(g(`${p}attn.b_Q`), [HE]),
      W_K: m(g(`${p}attn.W_K`), [D, HE]),
      b_K: m(g(`${p}attn.b_K`), [HE]),
      W_V: m(g(`${p}attn.W_V`), [D, HE]),
      b_V: m(g(`${p}attn.b_V`), [HE]),
      W_O: m(g(`${p}attn.W_O`), [HE, D]),
      b_O: m(g(`${p}attn.b_O`), [D]),
      ln2_w: m(x.ln2_w, [D]),
      ln2_b: m(x.ln2_b, [D]),
      W_in: m(x.W_in, [D, 4]),
      b_in: m(x.b_in, [4]),
      W_out: m(x.W_out, [4, D]),
      b_out: m(x.b_out, [D]),
    };
  });
  return modelFromWeights(
    gpu,
    cfg,
    { W_E: m(g('embed.W_E'), [V, D]), W_pos: m(g('pos_embed.W_pos'), [P, D]), layers, lnf_w: m(g('ln_final.w'), [D]), lnf_b: m(g('ln_final.b'), [D]), W_U_rows: m(g('unembed.W_U'), [V, D]) },
    { f16: false },
  );
}

/**
 * The rule of this file: max |got - ref| <= 1e-4 max |ref|, per tensor (no absolute floor:
 * gradients are mostly far below 1). Records the largest diff / tolerance per group for the log.
 */
const worst = new Map<string, { ratio: number; what: string }>();
function check(group: string, name: string, got: ArrayLike<number>, ref: ArrayLike<number>): void {
  expect(got.length, name).toBe(ref.length);
  const diff = maxAbsDiff(got, ref);
  const tol = RELATIVE_TOLERANCE * maxAbs(ref);
  expect(diff, `${name}: max |diff| ${diff.toExponential(3)}, tolerance ${tol.toExponential(3)}`).toBeLessThanOrEqual(tol);
  const w = worst.get(group) ?? { ratio: 0, what: '' };
  if (diff / tol > w.ratio) worst.set(group, { ratio: diff / tol, what: name });
}
afterAll(() => {
  for (const [group, w] of worst) console.log(`${group}: worst diff ${w.ratio.toFixed(4)} of tolerance (${w.what})`);
});

describe('AttnOnlyTraining against the CPU reference', () => {
  // B, T odd; D = 20, V = 36 (not multiples of 64; D / 4 and V / 4 odd); n_ctx 13 > T.
  const cases = [
    { tied: false, byLayer: false, B: 3, T: 11, D: 20, H: 5, V: 36, P: 13, cap: 24, subgroups: true },
    { tied: true, byLayer: true, B: 3, T: 11, D: 20, H: 5, V: 36, P: 13, cap: 24, subgroups: true },
    // The last layer's keys and values folded into the scored queries: forced, and by default
    // (cap T 121 < B T d_head 264).
    { tied: false, byLayer: true, B: 3, T: 11, D: 20, H: 5, V: 36, P: 13, cap: 24, subgroups: true, fold: true },
    { tied: true, byLayer: false, B: 3, T: 11, D: 40, H: 5, V: 36, P: 13, cap: 11, subgroups: true, fold: 'default' },
    // The kernels a device without a fixed subgroup size of 8 or more gets (SwiftShader, many GPUs).
    // D 36 rather than 20: lavapipe compiles the no-subgroup matmuls at D 20 in ~5 s each (cold
    // shader cache), ~50 s for the trainer; at 36, ~20 s.
    { tied: false, byLayer: true, B: 3, T: 11, D: 36, H: 9, V: 36, P: 13, cap: 24, subgroups: false },
  ];
  for (const c of cases) {
    it(`one update's loss and gradients: B ${c.B}, T ${c.T}, D ${c.D}, V ${c.V}, ${c.tied ? 'tied' : 'untied'}${c.byLayer ? ', scale by layer' : ''}, ${c.subgroups ? 'subgroups' : 'no subgroups'}${c.fold ? `, keys folded (${c.fold === true ? 'forced' : 'by default'})` : ''}`, async () => {
      const gpu = await testGpu();
      if (c.subgroups) expect(gpu.subgroupSize, 'this host runs the subgroup kernels (lavapipe: 8)').toBeGreaterThanOrEqual(8);
      const L = 2;
      const E = c.D / c.H;
      const base: AttnOnlyCpuShape = { B: c.B, T: c.T, D: c.D, H: c.H, E, V: c.V, P: c.P, eps: 1e-5, scales: [0, 0], tied: c.tied };
      const w = randomWeights(base, 5 + c.D);
      const model = await gpuModel(gpu, base, w, c.byLayer);
      const s = attnOnlyCpuShape(model.config, c.B, c.T);
      expect(s.scales).toEqual(Array.from({ length: L }, (_, l) => 1 / (Math.sqrt(E) * (c.byLayer ? l + 1 : 1))));
      const rng = new SeededRandom(c.D * 7 + c.B);
      const ids = randomIds(rng, c.B, c.T, c.V);
      // Update 1 scores maxTargets cells in random order; update 2 fewer, in the same slot: the stale
      // targets past its count must not count; update 3 the first and last positions only, none in
      // the middle sequences.
      const ends = [
        { row: c.B - 1, pos: c.T - 1, target: 3 },
        { row: 0, pos: 0, target: 1 },
        { row: 0, pos: c.T - 1, target: 2 },
      ];
      const batches: TrainBatch[] = [
        { ids, targets: randomTargets(rng, c.B, c.T, c.V, c.cap) },
        { ids: randomIds(rng, c.B, c.T, c.V), targets: randomTargets(rng, c.B, c.T, c.V, Math.ceil(c.cap / 2) + 1) },
        { ids, targets: c.B > 1 ? ends : ends.slice(1) },
      ];
      const sg = gpu.subgroupSize;
      if (!c.subgroups) gpu.subgroupSize = null; // read once, when the trainer generates its kernels
      let training: AttnOnlyTraining;
      try {
        training = await AttnOnlyTraining.create(gpu, model, { batch: c.B, pos: c.T, maxTargets: c.cap, data: (t) => batches[t - 1]!, slots: 1, foldKeys: c.fold === true ? true : undefined });
      } finally {
        gpu.subgroupSize = sg;
      }
      expect(training.keysFolded, 'the last layer folds its keys and values').toBe(!!c.fold);
      try {
        for (const [k, batch] of batches.entries()) {
          training.task.prepare!(k, 1);
          submitSteps(gpu, training.task.stepsAt!(0), `attn-only test update ${k + 1}`);
          const ref = attnOnlyLossCpu(s, w, batch.ids, batch.targets);
          const obj = training.task.metrics.objective!;
          const loss = await readBuffer(gpu, obj.buffer, (obj.offset ?? 0) * 4, 4);
          const group = 'AttnOnlyTraining vs CPU reference';
          check(group, `update ${k + 1} loss`, loss, [ref.loss]);
          for (const [name, g] of ref.grads) {
            const b = training.gradBuffers.get(name);
            expect(b, name).toBeDefined();
            expect(b!.n, name).toBe(g.length);
            const got = await readBuffer(gpu, b!.buffer, b!.start * 4, b!.n * 4);
            if (name.endsWith('.b_K')) {
              // Exactly 0 (the softmax cancels it); the reference's sums leave ~1e-17.
              expect(maxAbs(got), name).toBe(0);
              expect(maxAbs(g), name).toBeLessThan(1e-12);
            } else check(group, `update ${k + 1} ${name}`, got, g);
          }
          for (let l = 0; l < L; l++) {
            const b = training.gradBuffers.get(`blocks.${l}.ln2.w`)!;
            expect(maxAbs(await readBuffer(gpu, b.buffer, b.start * 4, b.n * 4)), `ln2 of layer ${l} has no gradient`).toBe(0);
          }
        }
        // The optimizer sees the reference's tensors and ln2 (its zero gradient leaves only weight
        // decay, as on the general path), never the MLPs.
        const ln2 = Array.from({ length: L }, (_, l) => [`blocks.${l}.ln2.w`, `blocks.${l}.ln2.b`]).flat();
        expect(training.entries.map((e) => e.name).sort()).toEqual([...attnOnlyCpuShapes(s).keys(), ...ln2].sort());
      } finally {
        training.destroy();
        model.destroy();
      }
    });
  }
});

// ---- narrow matmuls, dispatched directly ----

async function dispatch(gpu: Gpu, code: string, entry: string, bindings: Record<number, Float32Array>, groups: [number, number, number], read: number[]): Promise<Float32Array[]> {
  const dev = gpu.device;
  const pipeline = gpu.pipelines.get(`narrow-matmul test ${entry}`, code, entry);
  const buffers = Object.entries(bindings).map(([k, data]) => {
    // 64 NaNs past the end: a read past the last row poisons the result instead of reading 0.
    const padded = new Float32Array(data.length + 64).fill(NaN);
    padded.set(data);
    const buffer = dev.createBuffer({ size: padded.byteLength, usage: 0x80 | 0x8 | 0x4, label: `binding ${k}` });
    dev.queue.writeBuffer(buffer, 0, padded);
    return [Number(k), buffer, data.length] as const;
  });
  try {
    const bindGroup = dev.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: buffers.map(([binding, buffer]) => ({ binding, resource: { buffer } })) });
    submitSteps(gpu, [{ kind: 'dispatch', label: entry, pipeline, bindGroup, workgroups: groups }], 'narrow-matmul test');
    return await Promise.all(read.map((k) => buffers.find(([b]) => b === k)!).map(([, buffer, n]) => readBuffer(gpu, buffer, 0, n * 4)));
  } finally {
    for (const [, b] of buffers) b.destroy();
  }
}

describe('narrow matmuls against narrow-matmul.cpu.ts', () => {
  const rt = [
    { M: 37, K: 20, N: 70, bias: true, res: true }, // C 2, RB 8: a partial row block and a partial column group
    { M: 77, K: 12, N: 33, bias: false, res: false }, // C 1, RB 16: two row workgroups, the second partial
    { M: 13, K: 36, N: 201, bias: true, res: false }, // C 4
    { M: 65, K: 4, N: 150, bias: false, res: true, C: 3 },
    { M: 211, K: 28, N: 50, bias: true, res: true, RB: 24 }, // C 1, the trainer's blocks of 24 rows (96 a workgroup): the third workgroup partial
    { M: 45, K: 132, N: 17, bias: false, res: true, RB: 32 }, // C 1, K >= 128: blocks of 32 rows
  ];
  const wg = [
    { M: 37, Kin: 21, N: 70, split: 70, accumulate: false, bias: true }, // M % 4 = 1, Kin % 8 = 5, C 2
    { M: 30, Kin: 12, N: 60, split: 20, accumulate: true, bias: true }, // M % 4 = 2, three [12, 20] blocks
    { M: 11, Kin: 36, N: 130, split: 130, accumulate: true, bias: false }, // M % 4 = 3, C 3
    { M: 8, Kin: 5, N: 9, split: 3, accumulate: false, bias: false },
    { M: 29, Kin: 53, N: 45, split: 45, accumulate: false, bias: true }, // C 1: blocks of 24 rows, the third 5 of 24
  ];
  for (const subgroups of [false, true]) {
    it(`rows_times_t and weight_grad at odd shapes, ${subgroups ? 'subgroup broadcasts' : 'no subgroups'}`, async () => {
      const gpu = await testGpu();
      if (subgroups) expect(gpu.subgroupSize, 'this host runs the subgroup variant (lavapipe: 8)').toBeGreaterThanOrEqual(8);
      const rng = new SeededRandom(subgroups ? 3 : 4);
      /** One rows_times_t product of random inputs (Y starts as NaN), against rowsTimesTCpu. */
      const rowsTimesTCase = async (x: { M: number; K: number; N: number; bias: boolean; res: boolean }, code: string, entry: string, grid: [number, number, number], label: string) => {
        const A = rng.normal(x.M * x.K);
        const Z = rng.normal(x.N * x.K);
        const bias = rng.normal(x.N);
        const res = rng.normal(x.M * x.N);
        const b: Record<number, Float32Array> = { 0: A, 1: Z, 2: new Float32Array(x.M * x.N).fill(NaN) };
        if (x.bias) b[3] = bias;
        if (x.res) b[4] = res;
        const [Y] = await dispatch(gpu, code, entry, b, grid, [2]);
        check('narrow matmuls', label, Y!, rowsTimesTCpu(A, Z, x.M, x.K, x.N, x.bias ? bias : null, x.res ? res : null));
      };
      for (const x of rt) {
        const C = x.C ?? Math.min(4, Math.ceil(x.N / NARROW_WG));
        const RB = (x.RB ?? (C === 1 ? 16 : 8)) as 8 | 16 | 24 | 32;
        const ROWS = RB === 24 ? 96 : 64;
        const code = rowsTimesTSource({ M: x.M, K: x.K, N: x.N, C, RB, ROWS, bias: x.bias, residual: x.res, subgroups });
        await rowsTimesTCase(x, code, 'rows_times_t_v1', [Math.ceil(x.N / (NARROW_WG * C)), Math.ceil(x.M / ROWS), 1], `rows_times_t ${JSON.stringify(x)}`);
      }
      // v2 (8-lane subgroups, N % 4 == 0): the same shapes with N rounded up to a multiple of 4,
      // at blocks of 32, 16 and 8 rows (partial last row blocks, partial groups of 8 lanes), and
      // rows that fill their blocks exactly (no bounds checks generated).
      if (subgroups) {
        const v2 = [...rt.map((x, n) => ({ ...x, N: Math.ceil(x.N / 4) * 4, RB: [32, 16, 8][n % 3]! })), { M: 48, K: 8, N: 36, bias: true, res: true, RB: 16 }];
        for (const x of v2) {
          const shape = { M: x.M, K: x.K, N: x.N, RB: x.RB, bias: x.bias, residual: x.res };
          await rowsTimesTCase(x, rowsTimesTV2Source(shape), 'rows_times_t_v2', rowsTimesTV2Grid(shape), `rows_times_t_v2 ${JSON.stringify(shape)}`);
        }
      }
      // weight_grad_v2 (8-lane subgroups, N % 4 == 0): the same shapes with N rounded up to a
      // multiple of 4 (the split kept where it divides it: [12, 3] blocks split a lane's 4
      // columns), at its 16 output rows and at 8.
      if (subgroups) {
        for (const [n, x] of wg.entries()) {
          const N = Math.ceil(x.N / 4) * 4;
          const shape = { M: x.M, Kin: x.Kin, N, C: 1, split: N % x.split ? N : x.split, accumulate: x.accumulate, bias: x.bias, subgroups, KR: n % 2 ? 8 : 16 };
          const A = rng.normal(x.M * x.Kin);
          const G = rng.normal(x.M * N);
          const before = x.accumulate ? rng.normal(x.Kin * N) : new Float32Array(x.Kin * N).fill(NaN);
          const b: Record<number, Float32Array> = { 0: A, 1: G, 2: before };
          if (x.bias) b[3] = new Float32Array(N).fill(NaN);
          const got = await dispatch(gpu, weightGradV2Source(shape), 'weight_grad_v2', b, weightGradV2Grid(shape), x.bias ? [2, 3] : [2]);
          const want = Float64Array.from(before);
          const sums = weightGradCpu(want, A, G, x.M, x.Kin, N, shape.split, x.accumulate);
          check('narrow matmuls', `weight_grad_v2 ${JSON.stringify(shape)}`, got[0]!, want);
          if (x.bias) check('narrow matmuls', `weight_grad_v2 column sums ${JSON.stringify(shape)}`, got[1]!, sums);
        }
        // The diagonal blocks of [Kin, N] (rows x cols each) packed as [rows, N], with column sums
        // (the first row block's workgroups write them even where they skip the product).
        for (const x of [
          { M: 29, Kin: 40, N: 20, rows: 8, cols: 4, accumulate: true, bias: true, KR: 16 }, // KR spans two row blocks
          { M: 6, Kin: 36, N: 36, rows: 9, cols: 9, accumulate: false, bias: true, KR: 8 }, // blocks of 9 columns split lanes' quads
        ]) {
          const shape = { M: x.M, Kin: x.Kin, N: x.N, C: 1, split: x.N, accumulate: x.accumulate, bias: x.bias, subgroups, KR: x.KR, diagonal: { rows: x.rows, cols: x.cols } };
          const A = rng.normal(x.M * x.Kin);
          const G = rng.normal(x.M * x.N);
          const before = x.accumulate ? rng.normal(x.rows * x.N) : new Float32Array(x.rows * x.N).fill(NaN);
          const got = await dispatch(gpu, weightGradV2Source(shape), 'weight_grad_v2', { 0: A, 1: G, 2: before, 3: new Float32Array(x.N).fill(NaN) }, weightGradV2Grid(shape), [2, 3]);
          const full = new Float64Array(x.Kin * x.N);
          const sums = weightGradCpu(full, A, G, x.M, x.Kin, x.N);
          const want = Float64Array.from(before);
          for (let k = 0; k < x.Kin; k++)
            for (let j = 0; j < x.N; j++) {
              if (Math.floor(k / x.rows) !== Math.floor(j / x.cols)) continue;
              const o = (k % x.rows) * x.N + j;
              want[o] = (x.accumulate ? want[o]! : 0) + full[k * x.N + j]!;
            }
          check('narrow matmuls', `weight_grad_v2 diagonal ${JSON.stringify(shape)}`, got[0]!, want);
          check('narrow matmuls', `weight_grad_v2 diagonal column sums ${JSON.stringify(shape)}`, got[1]!, sums);
        }
      }
      for (const x of wg) {
        const C = Math.min(3, Math.ceil(x.N / NARROW_WG));
        const KR = C === 1 ? 24 : 8; // the trainer's one-column blocks (24 rows) and the default
        const code = weightGradSource({ M: x.M, Kin: x.Kin, N: x.N, C, split: x.split, accumulate: x.accumulate, bias: x.bias, subgroups, KR });
        const A = rng.normal(x.M * x.Kin);
        const G = rng.normal(x.M * x.N);
        const before = x.accumulate ? rng.normal(x.Kin * x.N) : new Float32Array(x.Kin * x.N).fill(NaN);
        const b: Record<number, Float32Array> = { 0: A, 1: G, 2: before };
        if (x.bias) b[3] = new Float32Array(x.N).fill(NaN);
        const got = await dispatch(gpu, code, 'weight_grad_v1', b, [Math.ceil(x.N / (NARROW_WG * C)), Math.ceil(x.Kin / KR), 1], x.bias ? [2, 3] : [2]);
        const want = Float64Array.from(before);
        const sums = weightGradCpu(want, A, G, x.M, x.Kin, x.N, x.split, x.accumulate);
        check('narrow matmuls', `weight_grad ${JSON.stringify(x)}`, got[0]!, want);
        if (x.bias) check('narrow matmuls', `weight_grad column sums ${JSON.stringify(x)}`, got[1]!, sums);
      }
    });
  }
});

// ---- against the general path ----

it('3 AdamW updates of the induction recipe model agree with TransformerTraining', async () => {
  const gpu = await testGpu();
  const files = { 'config.json': JSON.stringify(recipeConfig()), 'model.safetensors': recipeInit(0) };
  const [a, b] = [await modelFromFiles(gpu, files), await modelFromFiles(gpu, files)];
  const B = 4;
  const data = (t: number) => inductionBatch('recall', new SeededRandom(t), B, { T: RECIPE.T, V: RECIPE.V });
  const opts = { batch: B, pos: RECIPE.T, data, checkpointNames: a.checkpoint.tensors.names, trainable: (n: string) => !n.includes('.mlp.') };
  // The recipe's optimizer at its peak learning rate: its warm-up would make the first steps ~1e-5,
  // too small for a wrong update to show at 1e-4 of a weight's scale.
  const adam = { kind: 'adamw' as const, lr: RECIPE.lr, betas: RECIPE.betas, eps: 1e-8, weightDecay: RECIPE.weightDecay, clipNorm: RECIPE.clip };
  const clocks = [new TrainClock(gpu), new TrainClock(gpu)] as const;
  const general = new TransformerTraining(gpu, a.model, opts);
  const fast = await AttnOnlyTraining.create(gpu, b.model, opts);
  const optimizers = [new Optimizer(gpu, clocks[0], general.entries, adam), new Optimizer(gpu, clocks[1], fast.entries, adam)];
  const trainers = [new Trainer(gpu, clocks[0], general.task, optimizers[0]!), new Trainer(gpu, clocks[1], fast.task, optimizers[1]!)];
  try {
    expect(fast.entries.map((e) => e.name)).toEqual(general.entries.map((e) => e.name));
    const initial = await Promise.all(general.entries.map((e) => readBuffer(gpu, e.param, 0, e.n * 4)));
    const losses: number[][] = [[], []];
    for (const [k, t] of trainers.entries()) await t.train({ until: 3, every: 1, onReport: (r) => void losses[k]!.push(r.metrics.objective![0]!) }).done;
    expect(losses[0]!.length).toBe(3);
    losses[0]!.forEach((l, k) => expect(Math.abs(losses[1]![k]! - l) / l, `loss before update ${k + 1}`).toBeLessThan(1e-5));
    let moved = 0;
    for (const [i, e] of general.entries.entries()) {
      const want = await readBuffer(gpu, e.param, 0, e.n * 4);
      const f = fast.entries[i]!;
      check('AttnOnlyTraining vs TransformerTraining', `${e.name} after 3 updates`, await readBuffer(gpu, f.param, 0, f.n * 4), want);
      if (e.name.endsWith('.W_Q')) moved = Math.max(moved, maxAbsDiff(want, initial[i]!) / maxAbs(want));
    }
    // The updates are large against the tolerance (lr 2e-3 steps on weights of ~0.05).
    expect(moved).toBeGreaterThan(1e-2);
  } finally {
    trainers.forEach((t) => t.destroy());
    optimizers.forEach((o) => o.destroy());
    general.destroy();
    fast.destroy();
    clocks.forEach((c) => c.destroy());
    a.model.destroy();
    b.model.destroy();
  }
});

describe('errors', () => {
  it('a model it cannot train: create rejects, naming the reason', async () => {
    const gpu = await testGpu();
    const ck = await loadCheckpoint(await fixtureSource('tiny-llama-random'));
    const llama = await modelFromWeights(gpu, ck.config, await hostWeightsFor(ck.tensors, ck.config, ck.hfConfig), { f16: false });
    const data = (): TrainBatch => ({ ids: [[1, 2, 3]], targets: [] });
    try {
      await expect(AttnOnlyTraining.create(gpu, llama, { batch: 1, pos: 3, data })).rejects.toThrow(/not supported: it uses RMSNorm/);
    } finally {
      llama.destroy();
    }
    const s: AttnOnlyCpuShape = { B: 1, T: 5, D: 12, H: 3, E: 4, V: 16, P: 70, eps: 1e-5, scales: [0, 0], tied: true };
    const withMlp = await gpuModel(gpu, s, randomWeights(s, 8), false, 0.5);
    try {
      await expect(AttnOnlyTraining.create(gpu, withMlp, { batch: 1, pos: 5, data })).rejects.toThrow(/layer 0's MLP is not zero/);
      await expect(AttnOnlyTraining.create(gpu, withMlp, { batch: 1, pos: 65, data })).rejects.toThrow(/sequences of 65 tokens are longer than 64/);
    } finally {
      withMlp.destroy();
    }
  });

  it('a batch scoring the same (row, pos) twice, or more targets than maxTargets', async () => {
    const gpu = await testGpu();
    const s: AttnOnlyCpuShape = { B: 2, T: 5, D: 12, H: 3, E: 4, V: 16, P: 5, eps: 1e-5, scales: [0, 0], tied: true };
    const model = await gpuModel(gpu, s, randomWeights(s, 9), false);
    const ids = [
      [1, 2, 3, 4, 5],
      [6, 7, 8, 9, 10],
    ];
    const batches: TrainBatch[] = [
      {
        ids,
        targets: [
          { row: 1, pos: 3, target: 4 },
          { row: 0, pos: 2, target: 1 },
          { row: 1, pos: 3, target: 9 },
        ],
      },
      { ids, targets: randomTargets(new SeededRandom(1), 2, 5, 16, 5) },
    ];
    const training = await AttnOnlyTraining.create(gpu, model, { batch: 2, pos: 5, maxTargets: 4, data: (t) => batches[t - 1]! });
    try {
      expect(() => training.task.prepare!(0, 1)).toThrow(/update 1 scores row 1 position 3 twice/);
      expect(() => training.task.prepare!(1, 1)).toThrow(/scores 5 targets; this trainer was built for at most 4/);
    } finally {
      training.destroy();
      model.destroy();
    }
  });
});
