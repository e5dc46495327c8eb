/**
 * The adapter's FMA peak and the matmul kernel's rate, for the bench's JSON: how close the
 * kernel the model pins comes to what the adapter can do at all.
 *
 * Peak: each invocation runs 8 independent `fma` chains (so the chains do not wait on each
 * other) for ITERS steps with no memory traffic but one store at the end; GFLOP/s = 2 flops per
 * fma. Matmul: the pinned version at the GPT-2-small projection shapes of a 15-token forward
 * (M = 15) and of a 180-row sweep pass (M = 180 x 1 position), fp32.
 */
import type { Gpu } from '../src/gpu/device.ts';
import { MATMUL_VERSION, matmul } from '../src/gpu/kernels/matmul.ts';
import { submitSteps, type Params } from '../src/gpu/recorder.ts';
import { Tensor } from '../src/gpu/tensor.ts';

const ITERS = 4096; // fma steps per chain: long enough that launch cost is noise
const GROUPS = 512; // workgroups of 64: enough invocations to fill every core's SIMD lanes

const PEAK_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(64)
fn peak(@builtin(global_invocation_id) gid: vec3u) {
  var a = vec4f(f32(gid.x) * 1e-7, 1.0, 2.0, 3.0);
  var b = vec4f(0.5, f32(gid.x) * 1e-7, 1.5, 2.5);
  let m = vec4f(0.999999);
  let c = vec4f(1e-7);
  for (var i = 0u; i < ${ITERS}u; i++) {
    a = fma(a, m, c);
    b = fma(b, m, c);
  }
  out[gid.x] = dot(a, b);
}`;

async function timeSteps(gpu: Gpu, run: () => void, read: () => Promise<unknown>, reps: number): Promise<number> {
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

export async function kernelRates(gpu: Gpu): Promise<Record<string, unknown>> {
  // FMA peak.
  const out = Tensor.empty(gpu, [GROUPS * 64], 'peak out');
  const module = gpu.device.createShaderModule({ code: PEAK_WGSL, label: 'fma peak' });
  const pipeline = gpu.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'peak' } });
  const bindGroup = gpu.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: out.buffer } }] });
  const peakMs = await timeSteps(
    gpu,
    () => submitSteps(gpu, [{ kind: 'dispatch', label: 'peak', pipeline, bindGroup, workgroups: [GROUPS, 1, 1] }], 'peak'),
    () => out.read(),
    5,
  );
  const flops = GROUPS * 64 * ITERS * 2 /* chains */ * 4 /* lanes of vec4 */ * 2; /* fma = 2 flops */
  const peak = flops / peakMs / 1e6;
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
    const ms = await timeSteps(gpu, () => submitSteps(gpu, Array(repeat).fill(d), 'mm'), () => c.read(), 5);
    const oneMs = await timeSteps(gpu, () => submitSteps(gpu, [d], 'mm'), () => c.read(), 5);
    const gflops = (flops * repeat) / ms / 1e6;
    rates.push({ M, K, N, repeat, gflops: +gflops.toFixed(2), of_peak: +(gflops / peak).toFixed(3), gflops_one_submit: +(flops / oneMs / 1e6).toFixed(2) });
    for (const t of [a, b, c]) t.release();
    for (const p of params) p.destroy();
  }
  return { fma_peak_gflops: +peak.toFixed(2), matmul_version: MATMUL_VERSION, matmul: rates, note: 'min over 5 runs; gflops: `repeat` dispatches in one submit and one readback; gflops_one_submit: one dispatch, one submit, one readback' };
}
