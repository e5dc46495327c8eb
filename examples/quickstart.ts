// Cache, ablate a head, patch a position: the shipped toy model, in Node (npx tsx examples/quickstart.ts).
import { openAsBlob } from 'node:fs';
import { acquireGpu, blobModelSource, loadModel, logitDiff, patchFrom, zeroHead } from '../src/index.ts';

const dir = 'demos/models/induction-2l';
const gpu = await acquireGpu();
const model = await loadModel(gpu, blobModelSource({
  'config.json': await openAsBlob(`${dir}/config.json`),
  'model.safetensors': await openAsBlob(`${dir}/model.safetensors`),
}));

// BOS, 10 random tokens, then the first 6 again: the model should continue the copy with 247.
const clean = [0, 200, 290, 288, 235, 361, 417, 247, 69, 18, 454, 200, 290, 288, 235, 361, 417];
const corrupt = [0, 374, 411, 18, 486, 308, 403, 72, 372, 134, 242, 200, 290, 288, 235, 361, 417];
const metric = async (r: { logits: { read(): Promise<Float32Array>; shape: readonly number[] } }) =>
  logitDiff(await r.logits.read(), r.logits.shape, 16, 247, 72); // logit(247) - logit(72) at the last position

// 1. Run with a cache of every hook point (TransformerLens names).
const run = await model.runWithCache([clean]);
console.log('pattern of layer 0:', run.cache.get('blocks.0.attn.hook_pattern').shape); // [1, 4, 17, 17]
console.log('clean logit diff:', (await metric(run)).toFixed(3));

// 2. Zero-ablate head 0.2's output at every position.
const ablated = await model.runWithHooks([clean], [zeroHead(0, 2)]);
console.log('head 0.2 ablated:', (await metric(ablated)).toFixed(3));

// 3. Patch the clean residual stream into the corrupted run before layer 1 at the last position
//    (what layer 0 moved there is what layer 1 reads; patching any single earlier position does ~nothing).
const corrupted = await model.run([corrupt]);
const patched = await model.runWithHooks([corrupt], [patchFrom('blocks.1.hook_resid_pre', run.cache, { pos: 16 })]);
console.log('corrupt:', (await metric(corrupted)).toFixed(3), '-> patched:', (await metric(patched)).toFixed(3));

for (const r of [run, ablated, corrupted, patched]) r.release(); // buffers go back to the pool
model.destroy();
process.exit(0); // Dawn keeps Node's event loop alive
