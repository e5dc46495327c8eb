/**
 * Replaying a forward plan: its dispatches in order, with each hook point's interventions and
 * cache copies recorded where the site is, all in one command encoder and one submit. A
 * JavaScript hook function is the one exception: the pass is submitted up to its site, the
 * activation read back and written again, and recording goes on in a new encoder.
 */
import type { Gpu } from '../gpu/device.ts';
import { submitSteps, type Step } from '../gpu/recorder.ts';
import { numel, readBuffer, type Tensor } from '../gpu/tensor.ts';
import type { CompiledHooks } from './hook-plan.ts';
import type { ForwardPlan } from '../model/forward.ts';

export interface Execution {
  hooks?: CompiledHooks | null;
  /** Hook points to copy out, by name (tensors of the site's shape). */
  keep?: ReadonlyMap<string, Tensor>;
  /** Steps before the pass (filling a resumed plan's input and past keys/values). */
  before?: readonly Step[];
  /** Steps after the pass (copying logits, metric kernels). */
  after?: readonly Step[];
  label: string;
  /** Called after each JavaScript hook function: throws if the run must stop (its model was destroyed). */
  assertLive?: () => void;
}

export async function executePlan(gpu: Gpu, plan: ForwardPlan, x: Execution): Promise<void> {
  let steps: Step[] = [...(x.before ?? []), ...(x.hooks?.prelude ?? [])];
  // On-demand steps (a norm's normalized input, its gain and bias again) run when this run
  // reads or changes the sites they serve.
  const changed = (name: string) => !!x.hooks?.bySite.has(name);
  const read = (name: string) => changed(name) || !!x.keep?.has(name);
  for (const s of plan.steps) {
    if (s.kind === 'dispatch') {
      steps.push(s);
      continue;
    }
    if (s.kind === 'on-demand') {
      if (s.ifRead.some(read) || s.ifChanged.some(changed)) steps.push(...s.dispatches);
      continue;
    }
    for (const work of x.hooks?.bySite.get(s.name) ?? []) {
      if (work.kind === 'dispatch') {
        steps.push(...work.dispatches);
        continue;
      }
      // Slow path: finish the pass so far, read the activation, let JavaScript edit it.
      submitSteps(gpu, steps, `${x.label} up to ${s.name}`);
      steps = [];
      const n = numel(s.shape);
      const act = await readBuffer(gpu, s.buffer, 0, n * 4);
      const out = work.fn(act, { hook: s.name, shape: s.shape }) ?? act;
      x.assertLive?.();
      if (out.length !== n) {
        throw new Error(`the hook function at ${s.name} returned ${out.length} values; the activation has ${n} ([${s.shape.join(', ')}])`);
      }
      const f32 = out instanceof Float32Array ? out : Float32Array.from(out);
      gpu.device.queue.writeBuffer(s.buffer, 0, f32.buffer as ArrayBuffer, f32.byteOffset, n * 4);
    }
    const t = x.keep?.get(s.name);
    if (t) steps.push({ kind: 'copy', src: s.buffer, srcOffset: 0, dst: t.buffer, dstOffset: 0, size: t.byteLength });
  }
  steps.push(...(x.after ?? []));
  submitSteps(gpu, steps, x.label);
}
