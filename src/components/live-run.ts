/**
 * Helpers the figures share around the run they show: head lists as the page's state writes
 * them ("0.2,1.3"), and a key per model instance for their jobs. The run itself, the prompt with
 * the page's heads ablated, is `runHeadAblation` (src/experiments/ablation.ts).
 */
import type { ModelConfig } from '../model/config.ts';
import type { Model } from '../hooks/model.ts';
import type { HeadRef } from '../experiments/ablation.ts';

export type { HeadRef } from '../experiments/ablation.ts';

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

const modelIds = new WeakMap<Model, number>();
let nextModelId = 1;

/** A short key naming a model instance, for figures' job keys. */
export function modelKey(model: Model): string {
  let id = modelIds.get(model);
  if (id === undefined) modelIds.set(model, (id = nextModelId++));
  return `m${id}`;
}
