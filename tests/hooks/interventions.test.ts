/**
 * Interventions against the CPU reference forward (with the same edit applied as a CPU hook),
 * per-row interventions in one pass, the slow callback path, and the errors a user will hit.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadModel } from '../../src/hooks/load.ts';
import type { Model } from '../../src/hooks/model.ts';
import { forwardCpu } from '../../src/model/forward.cpu.ts';
import { loadCheckpoint } from '../../src/model/checkpoint.ts';
import { gpt2HostWeights } from '../../src/model/gpt2-weights.ts';
import type { HostWeights } from '../../src/model/host-weights.ts';
import { addVector, hookFn, meanAblate, patchFrom, scaleBy, zeroAblate, type Intervention } from '../../src/hooks/interventions.ts';
import { expectClose, maxAbsDiff } from '../helpers/compare.ts';
import { fixtureCases, fixtureSource } from '../helpers/fixtures.ts';
import { testGpu } from '../helpers/gpu.ts';
import { mulberry32 } from '../helpers/synthetic.ts';

const NAME = 'tiny-gpt2-random';
let model: Model;
let host: HostWeights;
let prompts: number[][];

beforeAll(async () => {
  model = await loadModel(await testGpu(), await fixtureSource(NAME));
  host = await gpt2HostWeights((await loadCheckpoint(await fixtureSource(NAME))).tensors, model.config);
  prompts = fixtureCases(NAME).prompts;
});
afterAll(() => model?.destroy());

/** Index helper for [B, T, ...inner] activations. */
const rowPos = (T: number, inner: number) => (b: number, p: number) => (b * T + p) * inner;

describe('interventions match the CPU reference with the same edit', () => {
  it('add (steering) a vector to resid_pre on one row and two positions', async () => {
    const C = model.config.d_model;
    const T = prompts[0].length;
    const rnd = mulberry32(3);
    const v = Float32Array.from({ length: C }, () => rnd() * 2 - 1);
    const hook = 'blocks.1.hook_resid_pre';
    const gpu = await model.run(prompts, { hooks: [addVector(hook, v, 3, { batch: 1, pos: [2, 5] })], cache: [hook, 'blocks.1.hook_resid_post'] });
    const at = rowPos(T, C);
    const ref = forwardCpu(model.config, host, prompts, (name, act) => {
      if (name !== hook) return;
      for (const p of [2, 5]) for (let c = 0; c < C; c++) act[at(1, p) + c] += 3 * v[c];
    });
    expectClose(hook, await gpu.cache.read(hook), ref.get(hook)!);
    expectClose('blocks.1.hook_resid_post', await gpu.cache.read('blocks.1.hook_resid_post'), ref.get('blocks.1.hook_resid_post')!);
    expectClose('logits', await gpu.logits.read(), ref.get('logits')!);
    // The edit changed row 1 and left row 0 exactly as a plain run.
    const plain = await model.run(prompts);
    const a = await plain.logits.read();
    const b = await gpu.logits.read();
    const rowLen = a.length / 2;
    expect(maxAbsDiff(a.subarray(0, rowLen), b.subarray(0, rowLen))).toBe(0);
    expect(maxAbsDiff(a.subarray(rowLen), b.subarray(rowLen))).toBeGreaterThan(1e-2);
    plain.release();
    gpu.release();
  });

  it('scale two heads of hook_z, and a per-head add vector on hook_q', async () => {
    const { n_heads: H, d_head: D } = model.config;
    const T = prompts[0].length;
    const rnd = mulberry32(5);
    const perHead = Float32Array.from({ length: H * D }, () => rnd() - 0.5);
    const hooks: Intervention[] = [scaleBy('blocks.0.attn.hook_z', 0.25, { heads: [1, 2] }), addVector('blocks.1.attn.hook_q', perHead, 1, { pos: [0, 7] })];
    const gpu = await model.run(prompts, { hooks });
    const ref = forwardCpu(model.config, host, prompts, (name, act) => {
      if (name === 'blocks.0.attn.hook_z') {
        for (let bt = 0; bt < 2 * T; bt++) for (const h of [1, 2]) for (let d = 0; d < D; d++) act[(bt * H + h) * D + d] *= 0.25;
      }
      if (name === 'blocks.1.attn.hook_q') {
        for (let b = 0; b < 2; b++) for (const p of [0, 7]) for (let i = 0; i < H * D; i++) act[(b * T + p) * H * D + i] += perHead[i];
      }
    });
    expectClose('logits', await gpu.logits.read(), ref.get('logits')!);
    gpu.release();
  });

  it('mean-ablation per position and pooled, from a reference cache', async () => {
    const hook = 'blocks.0.mlp.hook_post';
    const M = model.config.d_mlp;
    const T = prompts[0].length;
    const reference = await model.run(prompts, { cache: [hook] });
    const refAct = await reference.cache.read(hook);
    for (const pooled of [false, true]) {
      const gpu = await model.run([prompts[0]], { hooks: [meanAblate(hook, reference.cache, { pooled, pos: [1, 4, 9] })] });
      const cpu = forwardCpu(model.config, host, [prompts[0]], (name, act) => {
        if (name !== hook) return;
        for (const p of [1, 4, 9]) {
          for (let m = 0; m < M; m++) {
            let s = 0;
            let n = 0;
            for (let b = 0; b < 2; b++)
              for (let q = 0; q < T; q++)
                if (pooled || q === p) {
                  s += refAct[(b * T + q) * M + m];
                  n++;
                }
            act[p * M + m] = s / n;
          }
        }
      });
      expectClose(`logits (pooled=${pooled})`, await gpu.logits.read(), cpu.get('logits')!);
      gpu.release();
    }
    reference.release();
  });

  it('replace (patching) with row-aligned sources, and zero-ablation of one position', async () => {
    const hook = 'blocks.0.hook_attn_out';
    const C = model.config.d_model;
    const T = prompts[0].length;
    const swapped = [prompts[1], prompts[0]];
    const source = await model.run(swapped, { cache: [hook] });
    const srcAct = await source.cache.read(hook);
    const gpu = await model.run(prompts, { hooks: [patchFrom(hook, source.cache, { pos: [3, 4] }), zeroAblate('blocks.1.hook_mlp_out', { pos: 6, batch: 0 })] });
    const cpu = forwardCpu(model.config, host, prompts, (name, act) => {
      if (name === hook) for (let b = 0; b < 2; b++) for (const p of [3, 4]) for (let c = 0; c < C; c++) act[(b * T + p) * C + c] = srcAct[(b * T + p) * C + c];
      if (name === 'blocks.1.hook_mlp_out') for (let c = 0; c < C; c++) act[6 * C + c] = 0;
    });
    expectClose('logits', await gpu.logits.read(), cpu.get('logits')!);
    gpu.release();
    source.release();
  });
});

describe('one pass, many variants', () => {
  it('different rows carry different interventions and match separate runs', async () => {
    const p = prompts[0];
    const variants: Intervention[][] = [
      [zeroAblate('blocks.0.attn.hook_z', { heads: [0] })],
      [scaleBy('blocks.1.hook_resid_mid', 2, { pos: [3] })],
      [],
      [zeroAblate('blocks.0.attn.hook_pattern', { heads: [3], pos: [5, 6] })],
    ];
    const batched = await model.run(
      variants.map(() => p),
      { hooks: variants.flatMap((ivs, row) => ivs.map((iv) => ({ ...iv, batch: row }) as Intervention)) },
    );
    const all = await batched.logits.read();
    const n = all.length / variants.length;
    for (const [row, ivs] of variants.entries()) {
      const one = await model.run([p], { hooks: ivs });
      expect(maxAbsDiff(await one.logits.read(), all.subarray(row * n, (row + 1) * n)), `row ${row}`).toBeLessThanOrEqual(1e-5);
      one.release();
    }
    batched.release();
  });

  it('a JavaScript hook function equals the same edit done on the GPU (pattern zeroing)', async () => {
    const { n_heads: H } = model.config;
    const T = prompts[0].length;
    const hook = 'blocks.1.attn.hook_pattern';
    let calls = 0;
    const viaCallback = await model.run(prompts, {
      hooks: [
        hookFn(hook, (act, { shape }) => {
          calls++;
          expect(shape).toEqual([2, H, T, T]);
          for (let b = 0; b < 2; b++) for (const q of [4, 8]) act.fill(0, ((b * H + 2) * T + q) * T, ((b * H + 2) * T + q + 1) * T);
        }),
      ],
    });
    const viaTable = await model.run(prompts, { hooks: [zeroAblate(hook, { heads: [2], pos: [4, 8] })] });
    expect(calls).toBe(1);
    expect(maxAbsDiff(await viaCallback.logits.read(), await viaTable.logits.read())).toBe(0);
    const plain = await model.run(prompts);
    expect(maxAbsDiff(await plain.logits.read(), await viaTable.logits.read())).toBeGreaterThan(1e-3);
    for (const r of [viaCallback, viaTable, plain]) r.release();
  });

  it('hooks live for one run only: a later plain run is unchanged', async () => {
    const before = await model.run(prompts);
    (await model.run(prompts, { hooks: [zeroAblate('blocks.0.hook_resid_pre'), scaleBy('ln_final.hook_normalized', 0)] })).release();
    const after = await model.run(prompts);
    expect(maxAbsDiff(await before.logits.read(), await after.logits.read())).toBe(0);
    before.release();
    after.release();
  });
});

describe('recording', () => {
  it('a hooked run (mean, replace, add, zero) is one submit and reads nothing back', async () => {
    const gpu = model.gpu;
    const ref = await model.run(prompts, { cache: ['blocks.0.attn.hook_z', 'blocks.1.hook_resid_pre'] });
    await ref.logits.read();
    const hooks = [
      meanAblate('blocks.0.attn.hook_z', ref.cache, { heads: [1] }),
      patchFrom('blocks.1.hook_resid_pre', ref.cache, { pos: 3 }),
      addVector('blocks.1.hook_resid_mid', new Float32Array(model.config.d_model).fill(0.5)),
      zeroAblate('blocks.1.mlp.hook_post', { batch: 1 }),
    ];
    (await model.run(prompts, { hooks, cache: ['blocks.1.hook_resid_pre'] })).release(); // warm: plan, pipelines, pool
    const queue = gpu.device.queue;
    const submit = queue.submit.bind(queue);
    const createBuffer = gpu.device.createBuffer.bind(gpu.device);
    let submits = 0;
    let readbacks = 0;
    queue.submit = (cbs: Iterable<GPUCommandBuffer>) => (submits++, submit(cbs));
    gpu.device.createBuffer = (d: GPUBufferDescriptor) => {
      if (d.usage & GPUBufferUsage.MAP_READ) readbacks++;
      return createBuffer(d);
    };
    let r;
    try {
      r = await model.run(prompts, { hooks, cache: ['blocks.1.hook_resid_pre'] });
    } finally {
      queue.submit = submit;
      gpu.device.createBuffer = createBuffer;
    }
    expect(submits).toBe(1);
    expect(readbacks).toBe(0);
    // And the patch landed: position 3 of resid_pre 1 equals the reference run's.
    const C = model.config.d_model;
    const got = await r.cache.read('blocks.1.hook_resid_pre');
    const want = await ref.cache.read('blocks.1.hook_resid_pre');
    expect(maxAbsDiff(got.subarray(3 * C, 4 * C), want.subarray(3 * C, 4 * C))).toBe(0);
    r.release();
    ref.release();
  });
});

describe('errors', () => {
  const run = (hooks: Intervention[]) => model.run(prompts, { hooks });
  it('name the problem', async () => {
    await expect(run([zeroAblate('blocks.0.attn.hook_zz')])).rejects.toThrow(/unknown hook point "blocks.0.attn.hook_zz"; did you mean blocks.0.attn.hook_z/);
    await expect(run([zeroAblate('blocks.0.attn.hook_z', { heads: [4] })])).rejects.toThrow(/head 4 is out of range for blocks.0.attn.hook_z \(it has 4 heads: 0 .. 3\)/);
    await expect(run([zeroAblate('blocks.0.hook_resid_pre', { pos: [12] })])).rejects.toThrow(/position 12 is out of range .* 0 .. 11/);
    await expect(run([zeroAblate('blocks.0.hook_resid_pre', { batch: 2 })])).rejects.toThrow(/batch row 2 is out of range/);
    await expect(run([zeroAblate('blocks.0.hook_resid_pre', { heads: [0] })])).rejects.toThrow(/has no head axis/);
    await expect(run([addVector('blocks.0.hook_resid_pre', [1, 2, 3])])).rejects.toThrow(/has 3 values; it needs 64/);
    const other = await model.run([prompts[0].slice(0, 5)], { cache: ['blocks.0.hook_resid_pre'] });
    await expect(run([patchFrom('blocks.0.hook_resid_pre', other.cache)])).rejects.toThrow(/has shape \[1, 5, 64\] but the hook has \[2, 12, 64\]/);
    await expect(run([patchFrom('blocks.1.hook_resid_pre', other.cache)])).rejects.toThrow(/"blocks.1.hook_resid_pre" is not in this cache/);
    await expect(run([meanAblate('blocks.0.hook_resid_pre', other.cache)])).rejects.toThrow(/has 5 positions and this run 12; use pooled: true/);
    await expect(run([hookFn('blocks.0.hook_resid_pre', () => new Float32Array(3))])).rejects.toThrow(/returned 3 values; the activation has 1536/);
    other.release();
    // After all those failures nothing is held: the pool has no extra buffers in use.
    const inUse = model.gpu.pool.inUseCount;
    await expect(run([zeroAblate('blocks.0.hook_resid_pre', { pos: [99] })])).rejects.toThrow();
    expect(model.gpu.pool.inUseCount).toBe(inUse);
  });
});

describe('concurrency', () => {
  it('runs issued together, one pausing in a JavaScript hook, each get their own results', async () => {
    const [a, b] = prompts;
    const [wantA, wantB] = await Promise.all([model.run([a]), model.run([b])].map(async (p) => (await p).logits.read()));
    let paused = 0;
    const slow = model.run([a], {
      hooks: [
        hookFn('blocks.1.attn.hook_z', () => {
          paused++;
        }),
      ],
    });
    // Issued from a timer, so it lands while the first run waits on its hook's readback.
    const other = new Promise((r) => setTimeout(r, 0)).then(() => model.run([b]));
    const [ra, rb] = await Promise.all([slow, other]);
    expect(paused).toBe(1);
    expect(maxAbsDiff(await ra.logits.read(), wantA)).toBe(0);
    expect(maxAbsDiff(await rb.logits.read(), wantB)).toBe(0);
    ra.release();
    rb.release();
  });
});
