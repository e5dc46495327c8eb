// A TransformerLens notebook, ported call by call: processed weights, direct logit attribution,
// patching a batch of prompt pairs (npx tsx examples/from-transformer-lens.ts).
import { openAsBlob } from 'node:fs';
import { acquireGpu, blobModelSource, loadModel, logitDiffMetric, patching } from '../src/index.ts';

const dir = 'demos/models/induction-2l';
const gpu = await acquireGpu();
// model = HookedTransformer.from_pretrained(...)  (fold_ln, center_writing_weights, center_unembed, fold_value_biases)
const model = await loadModel(gpu, blobModelSource({
  'config.json': await openAsBlob(`${dir}/config.json`),
  'model.safetensors': await openAsBlob(`${dir}/model.safetensors`),
}), { processing: 'transformer-lens' });

// Two pairs: BOS, a run of 10 tokens, its first 6 again; the corrupted prompts start with another run.
const clean = [
  [0, 200, 290, 288, 235, 361, 417, 247, 69, 18, 454, 200, 290, 288, 235, 361, 417],
  [0, 13, 24, 287, 382, 411, 467, 354, 247, 214, 235, 13, 24, 287, 382, 411, 467],
];
const corrupt = [
  [0, 374, 411, 18, 486, 308, 403, 72, 372, 134, 242, 200, 290, 288, 235, 361, 417],
  [0, 258, 143, 239, 455, 227, 170, 503, 458, 484, 470, 13, 24, 287, 382, 411, 467],
];
const answers = [247, 354]; // each clean prompt's copy continuation
const wrong = [72, 503]; // its corrupted prompt's

// logits, cache = model.run_with_cache(clean_tokens)
const { logits, cache } = await model.runWithCache(clean);
const all = await logits.read(); // [2, 17, 512]
const V = model.config.d_vocab;
const diffs = answers.map((a, n) => all[(n * 17 + 16) * V + a] - all[(n * 17 + 16) * V + wrong[n]]);
console.log('logit differences:', diffs.map((d) => d.toFixed(3)).join(', '));

// resid_stack, labels = cache.decompose_resid(pos_slice=-1, return_labels=True)
// cache.logit_attrs(resid_stack, answers, wrong, pos_slice=-1)   (it applies ln_final's scale itself)
const layers = await cache.decomposeResid({ posSlice: -1 });
const attrs = await cache.logitAttrs(layers, answers, wrong); // [components, 2]
layers.labels.forEach((label, i) => console.log(`  ${label.padEnd(11)} ${attrs.data[2 * i].toFixed(3)} ${attrs.data[2 * i + 1].toFixed(3)}`));
// What no component writes is b_U's share (model.logitBias): the attributions add up to the rest.
const total = (n: number) => layers.labels.reduce((s, _, i) => s + attrs.data[2 * i + n], 0);
const bias = await Promise.all(answers.map(async (a, n) => (await model.logitBias(a)) - (await model.logitBias(wrong[n]))));
console.log('attributions + b_U difference:', [0, 1].map((n) => (total(n) + bias[n]).toFixed(3)).join(', '));

// Which head writes the answer: cache.stack_head_results(pos_slice=-1) (z W_O, hook_result not needed)
const heads = await cache.stackHeadResults({ posSlice: -1 });
const headAttrs = await cache.logitAttrs(heads, answers, wrong);
const mean = heads.labels.map((label, i) => [label, (headAttrs.data[2 * i] + headAttrs.data[2 * i + 1]) / 2] as const);
console.log('top head:', mean.reduce((a, b) => (b[1] > a[1] ? b : a))[0]);

// patching.get_act_patch_resid_pre(model, corrupted_tokens, clean_cache, metric), the metric the
// batch mean of each pair's logit difference, normalized so 0 = corrupted and 1 = clean
const metrics = answers.map((a, n) => logitDiffMetric(16, a, wrong[n]));
const grid = await patching.getActPatchResidPre(model, corrupt, cache, metrics, { normalize: true });
console.log('resid_pre grid', grid.shape, 'layer 1, last position:', grid.values[1 * 17 + 16].toFixed(3));

logits.release();
cache.release();
model.destroy();
process.exit(0); // Dawn keeps Node's event loop alive
