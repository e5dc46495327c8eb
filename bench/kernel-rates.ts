/**
 * The adapter's FMA peak and the matmul kernel's rate, for the bench's JSON: how close the
 * kernel the model pins comes to what the adapter can do at all.
 *
 * Peak: each invocation runs C independent vec4 `fma` chains for ITERS steps with no memory
 * traffic but one store at the end; GFLOP/s = 2 flops per fma per lane. Too few chains wait on
 * the fma latency, too many spill (llvmpipe runs 8 invocations per AVX2 vector, so a vec4 chain
 * holds 4 of its 16 registers: 4 chains measured 38 GFLOP/s there, 2 chains 23, 6 chains 24),
 * so the peak is the best over CHAINS.
 * Matmul: the pinned version at the GPT-2-small projection shapes of a 15-token forward
 * (M = 15) and of a 180-row sweep pass (M = 180 x 1 position), fp32.
 */
import type { Gpu } from '../src/gpu/device.ts';
import { MATMUL_VERSION, matmul, matmulEntry } from '../src/gpu/kernels/matmul.ts';
import { submitSteps, type Params } from '../src/gpu/recorder.ts';
import { Tensor } from '../src/gpu/tensor.ts';

const ITERS = 4096; // fma steps per chain: long enough that launch cost is noise
// Workgroups of 64 in the peak shader: 512 fill every core's SIMD lanes on a CPU adapter; a
// discrete GPU needs far more resident invocations (an H100 holds 132 x 2048) to reach its peak.
const GROUPS_SOFTWARE = 512;
const GROUPS_HARDWARE = 16384;

const CHAINS = [2, 3, 4, 5, 6]; // independent vec4 chains per invocation, tried in turn

function peakWgsl(chains: number): string {
  const v = [...Array(chains).keys()];
  return /* wgsl */ `
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(64)
fn peak(@builtin(global_invocation_id) gid: vec3u) {
${v.map((c) => `  var a${c} = vec4f(f32(gid.x) * 1e-7, ${c}.0, 2.0, 3.0);`).join('\n')}
  let m = vec4f(0.999999);
  let c = vec4f(1e-7);
  for (var i = 0u; i < ${ITERS}u; i++) {
${v.map((c) => `    a${c} = fma(a${c}, m, c);`).join('\n')}
  }
  out[gid.x] = ${v.map((c) => `dot(a${c}, a${c})`).join(' + ')};
}`;
}

async function timeSteps(run: () => void, read: () => Promise<unknown>, reps: number): Promise<number> {
  run();
  await read(); // warm-up: pipeline creation, first dispatch
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    run();
    await read();
    times.push(performance.now() - t0);
  }
  return times.sort((x, y) => x - y)[0];
}

export async function kernelRates(gpu: Gpu, software: boolean): Promise<Record<string, unknown>> {
  const GROUPS = software ? GROUPS_SOFTWARE : GROUPS_HARDWARE;
  // FMA peak: the best over chain counts.
  const out = Tensor.empty(gpu, [GROUPS * 64], 'peak out');
  const byChains: Record<number, number> = {};
  for (const chains of CHAINS) {
    const module = gpu.device.createShaderModule({ code: peakWgsl(chains), label: `fma peak x${chains}` });
    const pipeline = gpu.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'peak' } });
    const bindGroup = gpu.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: out.buffer } }] });
    const ms = await timeSteps(
      () => submitSteps(gpu, [{ kind: 'dispatch', label: 'peak', pipeline, bindGroup, workgroups: [GROUPS, 1, 1] }], 'peak'),
      () => out.read(),
      5,
    );
    const flops = GROUPS * 64 * ITERS * chains * 4 /* lanes of vec4 */ * 2; /* fma = 2 flops */
    byChains[chains] = +(flops / ms / 1e6).toFixed(2);
  }
  const peak = Math.max(...Object.values(byChains));
  out.release();

  // The pinned matmul at the model's shapes.
  const rates: Array<{ M: number; K: number; N: number; repeat: number; gflops: number; of_peak: number; gflops_one_submit: number }> = [];
  for (const [M, K, N] of [
    [15, 768, 3072],
    [15, 768, 768],
    [180, 768, 3072],
  ]) {
    const a = Tensor.from(gpu, new Float32Array(M * K).fill(0.01), [M * K], 'a');
    const b = Tensor.from(gpu, new Float32Array(K * N).fill(0.01), [K * N], 'b');
    const c = Tensor.empty(gpu, [M * N], 'c');
    const params: Params[] = [];
    const d = matmul(gpu, { out: c.buffer, a: a.buffer, b: b.buffer, M, N, K, label: 'mm' }, params);
    const flops = 2 * M * K * N;
    // The kernel's own rate: enough back-to-back dispatches in one submit (about 1 GFLOP) that
    // the submit and readback are noise. Also one dispatch per submit, as a forward's smallest
    // projections see it.
    const repeat = Math.max(1, Math.ceil(1e9 / flops));
    const ms = await timeSteps(
      () => submitSteps(gpu, Array(repeat).fill(d), 'mm'),
      () => c.read(),
      5,
    );
    const oneMs = await timeSteps(
      () => submitSteps(gpu, [d], 'mm'),
      () => c.read(),
      5,
    );
    const gflops = (flops * repeat) / ms / 1e6;
    rates.push({ M, K, N, repeat, gflops: +gflops.toFixed(2), of_peak: +(gflops / peak).toFixed(3), gflops_one_submit: +(flops / oneMs / 1e6).toFixed(2) });
    for (const t of [a, b, c]) t.release();
    for (const p of params) p.destroy();
  }
  return {
    fma_peak_gflops: +peak.toFixed(2),
    fma_peak_by_chains: byChains,
    matmul_version: matmulEntry(gpu, MATMUL_VERSION),
    subgroup_size: gpu.subgroupSize,
    matmul: rates,
    note: 'min over 5 runs; gflops: `repeat` dispatches in one submit and one readback; gflops_one_submit: one dispatch, one submit, one readback',
  };
}
