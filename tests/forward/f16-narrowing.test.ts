/**
 * F32 tensors stay F32 unless the caller asks: in a mostly-F16 checkpoint, an F32 matrix holding
 * a value F16 cannot hold (here 100000, past F16's 65504) keeps the model in fp32 under 'auto'
 * (narrowing it gave +-Infinity and all-NaN logits); `f16: true` refuses it, naming the tensor
 * and the value; and the CLI's --dtype picks f32, f16 or auto.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, expect } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import { loadCheckpoint } from '../../src/model/checkpoint.ts';
import { hostWeightsFor } from '../../src/model/host-weights-for.ts';
import { forwardCpu } from '../../src/model/forward.cpu.ts';
import { writeSafetensors } from '../../src/model/safetensors.ts';
import { blobModelSource } from '../../src/model/source.ts';
import { isF16Exact, toF16Bits } from '../../src/gpu/half.ts';
import { f16ToNumber } from '../../src/model/safetensors.ts';
import { maxAbs, maxAbsDiff } from '../helpers/compare.ts';
import { llamaCheckpoint } from '../helpers/checkpoints.ts';
import { testGpu } from '../helpers/gpu.ts';
import { runCli } from '../helpers/run-cli.ts';

const tokens = [[5, 17, 99, 3, 42, 7, 150, 8, 61]];
const BIG = 'model.layers.1.mlp.down_proj.weight';

/** Every tensor F16 but one F32 matrix with an element of 100000. */
function mixedFiles(): Record<string, Uint8Array> {
  const c = llamaCheckpoint({}, 'LlamaForCausalLM', 4);
  const tensors = c.tensors.map((t) => {
    if (t.name !== BIG) return { ...t, dtype: 'F16' as const };
    const data = t.data.slice();
    data[7] = 100000;
    return { ...t, data, dtype: 'F32' as const };
  });
  return { 'config.json': new TextEncoder().encode(JSON.stringify(c.config)), 'model.safetensors': writeSafetensors(tensors) };
}

describe('narrowing to F16', async () => {
  const gpu = await testGpu();

  it("'auto' keeps a mostly-F16 checkpoint with an F32 matrix beyond F16's range in fp32: finite logits equal to the CPU forward", async () => {
    const source = blobModelSource(mixedFiles(), 'mixed');
    const model = await loadModel(gpu, source);
    expect(model.weightsF16).toBe(false);
    const r = await model.run(tokens);
    const got = await r.logits.read();
    r.release();
    model.destroy();
    const ck = await loadCheckpoint(source);
    const want = forwardCpu(ck.config, await hostWeightsFor(ck.tensors, ck.config, ck.hfConfig), tokens).get('logits')!;
    expect(got.every(Number.isFinite)).toBe(true);
    expect(maxAbsDiff(got, want)).toBeLessThanOrEqual(1e-4 * Math.max(1, maxAbs(want)));
  });

  it('f16: true refuses the value, naming the tensor, and allocates nothing', async () => {
    const before = gpu.pool.weightBytes;
    await expect(loadModel(gpu, blobModelSource(mixedFiles(), 'mixed'), { f16: true })).rejects.toThrow(
      /blocks\.1\.mlp\.W_out: value 100000 \(element \d+\) is beyond float16's range \(±65504\); keep the weights in float32/,
    );
    expect(gpu.pool.weightBytes).toBe(before);
  });

  it('isF16Exact agrees with a round trip through F16 on every kind of value', () => {
    const values = [0, -0, 1, -2.5, 65504, 65505, 1e5, 2 ** -14, 2 ** -24, 3 * 2 ** -24, 2 ** -25, 2 ** -15 + 2 ** -24, 1 / 3, Math.fround(0.1), Infinity, -Infinity, NaN];
    for (const v of values) {
      const x = Math.fround(v);
      const back = f16ToNumber(toF16Bits(x));
      expect(isF16Exact(Float32Array.of(x)), `${v}`).toBe(Number.isNaN(x) || Object.is(back, x));
    }
  });

  it('the CLI: --dtype f16 refuses the model, --dtype f32 and auto run it, a bad value is a usage error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'patchbay-dtype-'));
    const model = join(dir, 'mixed');
    mkdirSync(model);
    for (const [name, bytes] of Object.entries(mixedFiles())) writeFileSync(join(model, name), bytes);
    const args = ['ablate', model, '--ids', tokens[0].join(','), '--heads', '0.1', '--metric', 'logit-diff:8:1:2', '--json'];
    const f16 = await runCli([...args, '--dtype', 'f16']);
    expect(f16.code).toBe(1);
    expect(f16.errorLines.join('\n')).toMatch(/blocks\.1\.mlp\.W_out: value 100000 .*beyond float16's range.*--dtype f32/);
    for (const dtype of ['f32', 'auto']) {
      const r = await runCli([...args, '--dtype', dtype]);
      expect(r.code, r.stderr).toBe(0);
      expect(Number.isFinite((JSON.parse(r.stdout) as { metric: number }).metric)).toBe(true);
    }
    const bad = await runCli([...args, '--dtype', 'bf16']);
    expect(bad.code).toBe(2);
    expect(bad.errorLines.join('\n')).toMatch(/--dtype bf16: expected f32, f16 or auto/);
  });
});
