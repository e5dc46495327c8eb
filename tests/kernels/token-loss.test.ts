/**
 * token_loss_v1 + token_loss_sum_v1 against `tokenLossCpu`: R = 37 rows (some unscored), V = 257
 * and 13 (not multiples of the 64-wide workgroup), logits N(0, 3) so the softmax is peaked, both
 * into a separate gradient buffer and in place over the logits.
 *
 * Tolerance: softmax entries are exp(z - lse) with lse from a max and a V-term sum in fp32
 * (relative error ~gamma_V), each exp within a few ulp (WGSL: 3 + 2|x| ulp for exp), times 1/N:
 * abs 1e-6 / N plus rel 1e-5 of the largest gradient; the loss, a mean of R such lse terms, to
 * 1e-5 relative.
 */
import { expect, it } from 'vitest';
import { NO_TARGET } from '../../shaders/token-loss.wgsl.ts';
import { tokenLoss } from '../../src/gpu/kernels/token-loss.ts';
import { tokenLossCpu } from '../../src/gpu/kernels/token-loss.cpu.ts';
import { submitSteps } from '../../src/gpu/recorder.ts';
import { expectNear } from './check.ts';
import { kernelHarness } from './harness.ts';
import { mulberry32, normal } from './random.ts';

const kh = kernelHarness();

it.each([
  [257, false],
  [257, true],
  [13, false],
  [13, true],
])('V = %i, in place: %s', async (V, inPlace) => {
  const R = 37;
  const rng = mulberry32(V + (inPlace ? 1 : 0));
  const logits = normal(rng, R * V, 0, 3);
  const targets = new Uint32Array(R).map((_, r) => (r % 5 === 2 ? NO_TARGET : Math.floor(rng() * V)));
  const n = targets.filter((t) => t !== NO_TARGET).length;
  const ref = new Float64Array(R * V);
  const want = tokenLossCpu(ref, logits, targets, R, V);
  const z = kh.upload(logits, 'logits');
  const d = inPlace ? null : kh.empty(R * V, 'dlogits');
  const loss = kh.empty(1, 'loss');
  const standIn = kh.empty(4, 'stand-in');
  const asF32 = (u: Uint32Array) => new Float32Array(u.buffer);
  submitSteps(
    kh.gpu,
    tokenLoss(
      kh.gpu,
      {
        logits: z.buffer,
        targets: kh.upload(asF32(targets), 'targets').buffer,
        count: kh.upload(asF32(Uint32Array.of(n)), 'count').buffer,
        dlogits: d?.buffer,
        lossPart: kh.empty(R, 'parts').buffer,
        loss: loss.buffer,
        R,
        V,
        label: 'token loss',
      },
      kh.params,
      standIn.buffer,
    ),
    'token loss',
  );
  expectNear(`V ${V} dlogits`, await (d ?? z).read(), ref, { abs: 1e-6 / n, rel: 1e-5 });
  const got = (await loss.read())[0]!;
  expect(Math.abs(got - want) / want).toBeLessThan(1e-5);
});
