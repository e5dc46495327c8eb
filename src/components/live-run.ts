/**
 * The run a figure shows: the experiment's prompt through the model as the reader has it, i.e.
 * with the heads in `ablate` zero- or mean-ablated. Mean-ablation replaces a head's output with
 * its mean over the prompt itself, pooled over positions (what `headAblationSweep` does without
 * a reference), so a figure and the head grid agree on what "ablated" means.
 */
import { meanHead, zeroHead } from '../hooks/interventions.ts';
import type { ModelConfig } from '../model/config.ts';
import type { CacheFilter, Model, RunResult } from '../hooks/model.ts';

export interface HeadRef {
  layer: number;
  head: number;
}

export const headName = (h: HeadRef): string => `${h.layer}.${h.head}`;

/** Heads written "LAYER.HEAD" (e.g. "0.2"), checked against the model; throws naming the bad one. */
export function parseHeadList(list: readonly string[], config: Pick<ModelConfig, 'n_layers' | 'n_heads'>): HeadRef[] {
  const { n_layers: L, n_heads: H } = config;
  return list
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const m = /^(\d+)\.(\d+)$/.exec(s);
      if (!m) throw new Error(`"${s}" is not a head: write heads as LAYER.HEAD, e.g. 0.2`);
      const h = { layer: Number(m[1]), head: Number(m[2]) };
      if (h.layer >= L || h.head >= H) throw new Error(`head ${s} is not in this model (layers 0 .. ${L - 1}, heads 0 .. ${H - 1})`);
      return h;
    });
}

/** `model.run([ids])` with the ablations applied and the hook points `cache` asks for. */
export async function runAblated(model: Model, ids: readonly number[], ablate: readonly HeadRef[], mode: 'zero' | 'mean', cache?: CacheFilter): Promise<RunResult> {
  if (ablate.length === 0) return model.run([ids], cache ? { cache } : {});
  if (mode === 'zero') return model.run([ids], { ...(cache ? { cache } : {}), hooks: ablate.map((h) => zeroHead(h.layer, h.head)) });
  const layers = [...new Set(ablate.map((h) => h.layer))];
  const reference = await model.run([ids], { cache: layers.map((l) => `blocks.${l}.attn.hook_z`) });
  try {
    return await model.run([ids], { ...(cache ? { cache } : {}), hooks: ablate.map((h) => meanHead(h.layer, h.head, reference.cache, { pooled: true })) });
  } finally {
    // The forward above is submitted; the queue orders any later reuse of these buffers after it.
    reference.release();
  }
}

const modelIds = new WeakMap<Model, number>();
let nextModelId = 1;

/** A short key naming a model instance, for figures' job keys. */
export function modelKey(model: Model): string {
  let id = modelIds.get(model);
  if (id === undefined) modelIds.set(model, (id = nextModelId++));
  return `m${id}`;
}
