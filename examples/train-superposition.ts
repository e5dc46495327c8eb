// Toy Models of Superposition, trained on the GPU (npx tsx examples/train-superposition.ts).
import { acquireGpu, entriesOf, featureNorms, Optimizer, ToyModel, TrainClock, Trainer } from '../src/index.ts';

const gpu = await acquireGpu();
const clock = new TrainClock(gpu); // the step number, learning rate and clipping factor every kernel reads
// 5 features in 2 dimensions, importance 0.9^i: one instance with dense features, one at 90% sparsity.
const toy = new ToyModel(gpu, clock, { features: 5, hidden: 2, featureProbability: [1, 0.1], batch: 1024, seed: 0 });
const opt = new Optimizer(gpu, clock, entriesOf(toy.params.list), { kind: 'adamw', lr: 2e-2 });
const run = new Trainer(gpu, clock, toy.task, opt).train({
  until: 1000,
  every: 250,
  onReport: (r) => console.log(`step ${r.step}: loss ${Array.from(r.metrics.loss!, (l) => l.toFixed(4)).join(', ')}`),
});
await run.done; // run.pause(), run.resume() and run.stop() act between submits

const W = await toy.params.get('W').value.read(); // [instances, features, hidden]
const norms = featureNorms(W, 2, 5, 2);
for (const [i, sparsity] of [0, 0.9].entries()) {
  const represented = Array.from(norms.subarray(i * 5, i * 5 + 5)).filter((n) => n > 0.5).length;
  console.log(`sparsity ${sparsity}: ${represented} of 5 features represented`);
}
process.exit(0); // Dawn keeps Node's event loop alive
