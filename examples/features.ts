// An SAE spliced into the shipped tiny Gemma 3, in Node (npx tsx examples/features.ts).
import { openAsBlob } from 'node:fs';
import { acquireGpu, blobModelSource, featureAblationSweep, loadModel, loadSae, logitDiffMetric, saeHook, withErrorTerm, zeroFeature } from '../src/index.ts';

const dir = 'demos/models/tiny-gemma3-random';
const gpu = await acquireGpu();
const model = await loadModel(gpu, blobModelSource({ 'config.json': await openAsBlob(`${dir}/config.json`), 'model.safetensors': await openAsBlob(`${dir}/model.safetensors`) }));
const sae = await loadSae(gpu, blobModelSource({ 'cfg.json': await openAsBlob(`${dir}/sae-resid-post-3/cfg.json`), 'sae_weights.safetensors': await openAsBlob(`${dir}/sae-resid-post-3/sae_weights.safetensors`) }));
const tokens = [[2, 474, 513, 755, 950, 37, 146, 823, 948, 251, 313, 869, 425, 275, 828, 259, 410, 644, 550, 88, 30]];
const T = tokens[0].length;

// 1. The SAE's features at the last token (SAELens' hook names), spliced with its error term.
const acts = saeHook(sae, 'hook_sae_acts_post'); // blocks.3.hook_resid_post.hook_sae_acts_post
const run = await model.run(tokens, { saes: [withErrorTerm(sae)], cache: [acts] });
const last = (await run.cache.read(acts)).slice((T - 1) * sae.config.d_sae, T * sae.config.d_sae);
const top = [...last.keys()].sort((a, b) => last[b] - last[a]).slice(0, 3);
console.log('top features at the last token:', top.map((f) => `#${f} ${last[f].toFixed(3)}`).join(', '));

// 2. With the error term the model is unchanged; zeroing the top feature moves the next-token logits.
const plain = await model.run(tokens);
const ablated = await model.run(tokens, { saes: [withErrorTerm(sae)], hooks: [zeroFeature(sae, top[0], { pos: T - 1 })] });
const [a, b, c] = [await run.logits.read(), await plain.logits.read(), await ablated.logits.read()];
const maxDiff = (x: Float32Array, y: Float32Array) => Math.max(...x.map((v, i) => Math.abs(v - y[i])));
console.log('spliced vs plain logits, max |diff|:', maxDiff(a, b).toExponential(1));
console.log(`feature #${top[0]} zeroed, max |logit change|:`, maxDiff(c, b).toFixed(3));

// 3. Every top-2 feature of every position, each zeroed alone, in a few batched passes.
const grid = await featureAblationSweep(model, sae, tokens[0], logitDiffMetric(T - 1, 11, 22), { k: 2 });
console.log(`feature ablation sweep: ${grid.shape.join(' x ')} cells, ${grid.stats.passes} pass(es), logit diff ${grid.clean.toFixed(3)} unablated`);

for (const r of [run, plain, ablated]) r.release();
sae.destroy();
model.destroy();
process.exit(0); // Dawn keeps Node's event loop alive
