/**
 * Run by matmul-subgroups.test.ts in a child process whose lavapipe has another subgroup size
 * (LP_NATIVE_VECTOR_WIDTH=512 gives 16 lanes, 1024 gives 32, as NVIDIA and Apple GPUs have):
 * matmul v6 at the device's own subgroup size (and at each smaller one) against the CPU
 * reference on odd shapes, plain / bias / transposed B, through a row table and into a column
 * block of a wider output, and bit for bit against v5. Prints one JSON line; the test judges it.
 */
import { acquireGpu } from '../../src/gpu/device.ts';
import { matmul, matmulEntry, type MatmulVersion } from '../../src/gpu/kernels/matmul.ts';
import { matmulCpu } from '../../src/gpu/kernels/matmul.cpu.ts';
import { Params, submitSteps } from '../../src/gpu/recorder.ts';
import { Tensor } from '../../src/gpu/tensor.ts';
import { maxAbs, maxAbsDiff } from '../helpers/compare.ts';
import { mulberry32, uniform } from './random.ts';

const U = 2 ** -24;
const gamma = (n: number) => (n * U) / (1 - n * U);

const gpu = await acquireGpu();
const params: Params[] = [];
const own = gpu.subgroupSize;
const cases: Array<{ name: string; entry: MatmulVersion; diff: number; bound: number; sameAsV5: boolean }> = [];

async function run(version: MatmulVersion, M: number, N: number, K: number, transB: boolean, withBias: boolean, rows: number[] | null, seed: number) {
  const rng = mulberry32(seed);
  const R = rows ? Math.max(...rows) + 3 : M; // rows A and C hold
  const a = uniform(rng, R * K);
  const b = uniform(rng, K * N);
  const bias = withBias ? uniform(rng, N) : null;
  const ta = Tensor.from(gpu, a, [a.length], 'a');
  const tb = Tensor.from(gpu, b, [b.length], 'b');
  const tbias = bias ? Tensor.from(gpu, bias, [N], 'bias') : null;
  let table: GPUBuffer | null = null;
  if (rows) {
    table = gpu.device.createBuffer({ size: rows.length * 4, usage: 0x80 | 0x08 });
    gpu.device.queue.writeBuffer(table, 0, new Uint32Array(rows));
  }
  const outs = (['v5', version] as MatmulVersion[]).map((v) => {
    const out = Tensor.from(gpu, new Float32Array(R * N).fill(-7), [R * N], v);
    const args = { out: out.buffer, a: ta.buffer, b: tb.buffer, bias: tbias?.buffer ?? null, M, N, K, transB, label: v, ...(table ? { rows: table, bufferRows: R } : {}) };
    submitSteps(gpu, [matmul(gpu, args, params, v)], v);
    return out;
  });
  const [v5, got] = await Promise.all(outs.map((o) => o.read()));
  const live = rows ?? [...Array(M).keys()];
  const aLive = new Float32Array(M * K);
  live.forEach((r, i) => aLive.set(a.subarray(r * K, (r + 1) * K), i * K));
  const ref = new Float32Array(M * N);
  matmulCpu(ref, aLive, b, bias, M, N, K, transB);
  const gotLive = new Float32Array(M * N);
  live.forEach((r, i) => gotLive.set(got.subarray(r * N, (r + 1) * N), i * N));
  const untouched = [...Array(R).keys()].filter((r) => !live.includes(r)).every((r) => got.subarray(r * N, (r + 1) * N).every((x) => x === -7));
  cases.push({
    name: `S=${gpu.subgroupSize} ${M}x${N}x${K}${transB ? ' transB' : ''}${withBias ? ' bias' : ''}${rows ? ' rows' : ''}`,
    entry: matmulEntry(gpu, version),
    diff: untouched ? maxAbsDiff(gotLive, ref) : Infinity,
    bound: gamma(K + 1) * (K * maxAbs(a) * maxAbs(b) + (bias ? maxAbs(bias) : 0)) + U * maxAbs(ref),
    sameAsV5: got.every((x, i) => Object.is(x, v5[i])),
  });
  for (const t of [ta, tb, tbias, ...outs]) t?.release();
  table?.destroy();
}

const SHAPES: Array<[number, number, number]> = [
  [37, 53, 29], // no multiple of any tile
  [19, 260, 13], // one row past the 16-row tile, one vec4 past v5's 256-column tile: the vec4 path
  [17, 600, 9], // columns past a 32-wide workgroup's 512-column tile, N a multiple of 4
  [33, 1030, 7], // past a 64-wide workgroup's 1024 columns, scalar B path
  [1, 53, 29], // one row
];
const sizes = own === null ? [] : [own, ...[1, 4, 8, 16].filter((s) => s < own)];
let seed = 1;
for (const size of sizes) {
  gpu.subgroupSize = size; // a size below the device's is still correct (lanes past it reload rows)
  for (const [M, N, K] of SHAPES) for (const transB of [false, true]) for (const bias of [false, true]) await run('v6', M, N, K, transB, bias, null, seed++);
  await run('v6', 9, 70, 11, false, true, [20, 0, 1, 5, 6, 7, 13, 22, 3], seed++);
}
gpu.subgroupSize = own;
process.stdout.write(`${JSON.stringify({ adapter: gpu.adapterName, subgroupSize: own, entry: matmulEntry(gpu, 'v6'), cases })}\n`);
for (const p of params) p.destroy();
process.exit(0);
