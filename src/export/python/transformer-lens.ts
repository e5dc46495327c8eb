/**
 * `patchbay export SPEC --to transformer-lens`: the experiment with TransformerLens'
 * `HookedTransformer` and its `patching` module (`get_act_patch_resid_pre`, …,
 * `get_act_patch_block_every`), whose hook names Patchbay's are. Written against TransformerLens'
 * source and documentation (TransformerLensOrg/TransformerLens transformer_lens/patching.py,
 * HookedTransformer.from_pretrained / from_pretrained_no_processing, run_with_cache,
 * run_with_hooks, utils.get_act_name): its grids have Patchbay's shapes and axes. `processing: "transformer-lens"` loads with `from_pretrained` (fold_ln,
 * center_writing_weights, center_unembed, fold_value_biases), "none" with
 * `from_pretrained_no_processing`. TransformerLens loads models it knows by name: for a local
 * folder, pass --model with the name of the architecture it was saved from. Not run by
 * Patchbay's tests (TransformerLens is not installable there): syntax-checked.
 */
import type { ExperimentSpec } from '../../experiments/spec.ts';
import { SpecError } from '../../experiments/spec.ts';
import { PY_PROMPTS, docstring, pyJson, pyStr, pythonModel, refuseSae, type PythonExportOptions } from './common.ts';

/** Patchbay's (TransformerLens') grid axes per site. */
const SITE_AXES: Record<string, string[]> = {
  block_every: ['component', 'layer', 'pos'],
  pattern_dest_src: ['layer', 'head', 'dest_pos', 'src_pos'],
  head_all_pos_every: ['component', 'layer', 'head'],
  head_by_pos_every: ['component', 'layer', 'pos', 'head'],
  pattern_by_pos: ['layer', 'head', 'dest_pos'],
  ...Object.fromEntries(
    ['z', 'q', 'k', 'v', 'pattern'].flatMap((h) => [
      [h, ['layer', 'head']],
      [`${h}_by_pos`, ['layer', 'pos', 'head']],
    ]),
  ),
  ...Object.fromEntries(['resid_pre', 'resid_mid', 'resid_post', 'attn_out', 'mlp_out'].map((s) => [s, ['layer', 'pos']])),
};
import { PY_INTERVENE, PY_METRICS } from './hf-runtime.ts';

/** TransformerLens' patching function for each site, and whether its grid is [layer, pos, head]. */
function tlPatch(site: string): { call: string; posHead: boolean } {
  const generic = (name: string) => `partial(patching.generic_activation_patch, patch_setter=patching.layer_pos_patch_setter, activation_name=${pyStr(name)}, index_axis_names=("layer", "pos"))`;
  const head = { z: 'out', q: 'q', k: 'k', v: 'v', pattern: 'pattern' } as Record<string, string>;
  if (site === 'resid_post') return { call: generic('resid_post'), posHead: false };
  if (site === 'pattern_dest_src') return { call: 'patching.get_act_patch_attn_head_pattern_dest_src_pos', posHead: false };
  if (site === 'head_all_pos_every') return { call: 'patching.get_act_patch_attn_head_all_pos_every', posHead: false };
  if (site === 'head_by_pos_every') return { call: 'patching.get_act_patch_attn_head_by_pos_every', posHead: false };
  if (['resid_pre', 'resid_mid', 'attn_out', 'mlp_out', 'block_every'].includes(site)) return { call: `patching.get_act_patch_${site}`, posHead: false };
  const base = site.replace(/_by_pos$/, '');
  if (site.endsWith('_by_pos')) return { call: `patching.get_act_patch_attn_head_${head[base]}_by_pos`, posHead: true };
  return { call: `patching.get_act_patch_attn_head_${head[base]}_all_pos`, posHead: false };
}

function mainBody(spec: ExperimentSpec): string {
  const e = spec.experiment;
  const load = `    args = arguments()
    load = HookedTransformer.from_pretrained if PROCESSING == "transformer-lens" else HookedTransformer.from_pretrained_no_processing
    model = load(args.model, revision=REVISION) if REVISION else load(args.model)
    model.eval()`;
  switch (e.kind) {
    case 'patch': {
      // Patchbay's grids have TransformerLens' shapes and axes.
      const { call } = tlPatch(e.site);
      const axes = SITE_AXES[e.site];
      const toPatchbay = '';
      return `def main():
${load}
    clean = prompt_ids(PROMPTS["clean"], model.tokenizer)
    corrupt = prompt_ids(PROMPTS["corrupt"], model.tokenizer)
    metric = resolve_metric(METRIC, clean, model.tokenizer)
    clean_logits, clean_cache = model.run_with_cache(torch.tensor([clean]))
    m_clean = metric_value(metric, clean_logits[0], clean)
    m_corrupt = metric_value(metric, model(torch.tensor([corrupt]))[0], clean)
    scale, shift = (1 / (m_clean - m_corrupt), m_corrupt) if NORMALIZE else (1.0, 0.0)

    def patching_metric(logits):  # logits [batch, pos, d_vocab] of a patched run
        return torch.tensor((metric_value(metric, logits[0], clean) - shift) * scale)

    grid = ${call}(model, torch.tensor([corrupt]), clean_cache, patching_metric)${toPatchbay}
    print(json.dumps({
        "patchbay": 2, "kind": "patch", "prompts": {"clean": clean, "corrupt": corrupt},
        "site": SITE, "shape": list(grid.shape), "axes": ${pyJson(axes)}, "values": grid.tolist(),
        "clean": m_clean, "corrupt": m_corrupt, "normalize": NORMALIZE,
    }))`;
    }
    case 'sweep-ablate':
      return `def ablated_logits(model, ids, heads, cache):
    """Logits with each (layer, head) in heads set to zero or to its mean over the prompt (MODE)."""
    hooks = []
    for layer, head in heads:
        fill = 0.0 if MODE == "zero" else cache[utils.get_act_name("z", layer)][0, :, head].mean(0)

        def hook(z, hook, head=head, fill=fill):  # z [batch, pos, head, d_head]
            z[:, :, head] = fill
            return z

        hooks.append((utils.get_act_name("z", layer), hook))
    return model.run_with_hooks(torch.tensor([ids]), fwd_hooks=hooks)[0]


def main():
${load}
    ids = prompt_ids(PROMPTS["clean"], model.tokenizer)
    metric = resolve_metric(METRIC, ids, model.tokenizer)
    plain, cache = model.run_with_cache(torch.tensor([ids]))
    plain = plain[0]
    L, H = model.cfg.n_layers, model.cfg.n_heads
    unablated = metric_value(metric, plain, ids)
    values = [metric_value(metric, ablated_logits(model, ids, [(layer, head)], cache), ids) for layer in range(L) for head in range(H)]
    print(json.dumps({
        "patchbay": 2, "kind": "sweep-ablate", "prompts": {"clean": ids}, "mode": MODE,
        "shape": [L, H], "axes": ["layer", "head"], "values": [values[l * H : (l + 1) * H] for l in range(L)],
        "unablated": unablated,
    }))`;
    case 'ablate':
      return `def main():
${load}
    rows = {name: prompt_rows(p, model.tokenizer) for name, p in PROMPTS.items()}
    clean = rows["clean"]
    metrics = [resolve_metric(METRIC, r, model.tokenizer) for r in clean] if METRIC else None
    # The runs patches and means read: each source's prompts, without interventions.
    sources = {}
    for name in ("clean", "corrupt", "reference"):
        hooks = {iv["hook"] for iv in INTERVENTIONS if source_of(iv) == name}
        if hooks:
            _, cache = model.run_with_cache(torch.tensor(rows[name]), names_filter=lambda n, hooks=hooks: n in hooks)
            sources.update({(name, h): cache[h] for h in hooks})
    # Patchbay's hook names are TransformerLens'; at one hook point, hooks run in the order added.
    fwd_hooks = []
    for iv in INTERVENTIONS:
        src = sources.get((source_of(iv), iv["hook"]))
        value = None if src is None else source_value(iv, src, len(clean))

        def hook(x, hook, iv=iv, value=value):
            intervene(x, iv, value)
            return x

        fwd_hooks.append((iv["hook"], hook))
    plain = model(torch.tensor(clean))
    logits = model.run_with_hooks(torch.tensor(clean), fwd_hooks=fwd_hooks) if fwd_hooks else plain
    result = {"metric": [], "unablated": [], "top": []}
    for b, ids in enumerate(clean):
        probs = torch.softmax(logits[b, -1].double(), -1)
        top = sorted(range(len(probs)), key=lambda i: (-logits[b, -1, i].item(), i))[:5]
        result["top"].append([[i, probs[i].item()] for i in top])
        result["metric"].append(metric_value(metrics[b], logits[b], ids) if metrics else None)
        result["unablated"].append(metric_value(metrics[b], plain[b], ids) if metrics else None)
    one = {k: v if is_batch(PROMPTS["clean"]) else v[0] for k, v in result.items()}
    prompts = {name: r if name == "reference" or is_batch(PROMPTS[name]) else r[0] for name, r in rows.items()}
    print(json.dumps({
        "patchbay": 2, "kind": "ablate", "prompts": prompts,
        "metric": one["metric"] if metrics else None, "unablated": one["unablated"] if metrics else None, "top": one["top"],
    }))`;
    case 'attribute':
      throw new SpecError('spec.experiment: exporting attribution patching to Python is not supported yet');
  }
}

export function transformerLensScript(spec: ExperimentSpec, options: PythonExportOptions = {}): string {
  const model = pythonModel(spec, options);
  const e = spec.experiment;
  refuseSae(spec, 'transformer-lens');
  const constants = [
    `SPEC = ${pyJson(spec)}`,
    `MODEL = ${pyStr(model.model)}`,
    `REVISION = ${model.revision === null ? 'None' : pyStr(model.revision)}`,
    `PROCESSING = ${pyStr(spec.processing ?? 'none')}`,
    `PROMPTS = SPEC["prompts"]`,
    `METRIC = ${'metric' in e && e.metric ? pyStr(e.metric) : 'None'}`,
  ];
  if (e.kind === 'patch') constants.push(`SITE = ${pyStr(e.site)}`, `NORMALIZE = ${e.normalize ? 'True' : 'False'}`);
  if (e.kind === 'sweep-ablate') constants.push(`MODE = ${pyStr(e.mode ?? 'zero')}`);
  if (e.kind === 'ablate') constants.push(`INTERVENTIONS = SPEC.get("interventions", [])`);
  return `#!/usr/bin/env python3
${docstring(spec, 'transformer-lens', model, 'torch, transformer-lens (pip install transformer-lens)')}
import argparse
import json
import sys
from functools import partial

import torch
from transformer_lens import HookedTransformer, patching, utils

torch.set_grad_enabled(False)


${PY_METRICS.trimEnd()}


${PY_PROMPTS.trimEnd()}


${PY_INTERVENE.trimEnd()}


def arguments():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=MODEL, help="a model name TransformerLens knows, or a Hub id (default: %(default)s)")
    return p.parse_args()


# ---- The experiment ----------------------------------------------------------------------------
${constants.join('\n')}


${mainBody(spec)}


if __name__ == "__main__":
    main()
`;
}
