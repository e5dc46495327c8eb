/**
 * `patchbay export SPEC --to transformers`: a script that runs the spec's experiment on the Hugging
 * Face checkpoint with PyTorch forward hooks (HF_RUNTIME: the hook points, the metrics) and prints
 * the JSON `patchbay run SPEC --json` prints. One forward per patched cell, as TransformerLens'
 * patching module does it.
 */
import type { ExperimentSpec } from '../../experiments/spec.ts';
import { SpecError } from '../../experiments/spec.ts';
import { docstring, pyJson, pyStr, pythonModel, refuseSae, refuseHooks, siteLayout, PY_PROMPTS, type PythonExportOptions } from './common.ts';
import { HF_HOOKS, PY_INTERVENE, PY_METRICS } from './hf-runtime.ts';

/** The hook points the transformers runtime reaches with PyTorch hooks (HF_HOOKS). */
export const TRANSFORMERS_HOOKS: readonly RegExp[] = [
  /^hook_(embed|pos_embed)$/,
  /^unembed\.hook_(in|out)$/,
  /^blocks\.\d+\.hook_(resid_pre|resid_mid|resid_post|attn_out|mlp_out)$/,
  /^blocks\.\d+\.attn\.hook_(q|k|v|z|rot_q|rot_k|attn_scores|pattern)$/,
  /^blocks\.\d+\.mlp\.hook_(pre|pre_linear|post)$/,
];

/** The experiment's main(), per kind. */
function mainBody(spec: ExperimentSpec): string {
  const e = spec.experiment;
  switch (e.kind) {
    case 'patch': {
      const { axes, hook, byHead, byPos, posFirst } = siteLayout(e.site);
      const hooks = hook.split(',');
      const kv = hook === 'k' || hook === 'v';
      // Cells in Patchbay's row-major order over `axes`.
      const loops =
        e.site === 'block_every'
          ? `    cells = [(site, layer, pos, None) for site in ${pyJson(hooks)} for layer in range(L) for pos in range(T)]`
          : byHead
            ? byPos
              ? posFirst
                ? `    cells = [(${pyStr(hook)}, layer, pos, head) for layer in range(L) for pos in range(T) for head in range(H)]`
                : `    cells = [(${pyStr(hook)}, layer, pos, head) for layer in range(L) for head in range(H) for pos in range(T)]`
              : `    cells = [(${pyStr(hook)}, layer, None, head) for layer in range(L) for head in range(H)]`
            : `    cells = [(${pyStr(hook)}, layer, pos, None) for layer in range(L) for pos in range(T)]`;
      const shape = e.site === 'block_every' ? '[3, L, T]' : byHead ? (byPos ? (posFirst ? '[L, T, H]' : '[L, H, T]') : '[L, H]') : '[L, T]';
      return `def main():
    args = arguments()
    model = HookedModel(args.model, REVISION)
    tokenizer = load_tokenizer(args.model, REVISION)
    clean = prompt_ids(PROMPTS["clean"], tokenizer)
    corrupt = prompt_ids(PROMPTS["corrupt"], tokenizer)
    metric = resolve_metric(METRIC, clean, tokenizer)  # a loss predicts the clean prompt's tokens
    L, T = model.n_layers, len(clean)
    H = ${kv ? 'model.n_kv_heads' : 'model.n_heads'}
    hooks = ${pyJson(hooks)}
    source, clean_logits = model.cache(clean, [(h, layer) for h in hooks for layer in range(L)])
    m_clean = metric_value(metric, clean_logits, clean)
    m_corrupt = metric_value(metric, model.run(corrupt), clean)
    scale, shift = (1 / (m_clean - m_corrupt), m_corrupt) if NORMALIZE else (1.0, 0.0)
${loops}
    values = []
    for site, layer, pos, head in cells:
        src = source[(site, layer)]

        def patch(x, site=site, pos=pos, head=head, src=src):
            # x: the corrupted run's activation, batch row 0 first; src: the clean run's, without batch.
            at = slice(None) if pos is None else pos
            if site == "pattern":  # [batch, head, query, key]
                x[0, head, at] = src[head, at]
            elif head is None:  # [batch, pos, d_model]
                x[0, at] = src[at]
            else:  # [batch, pos, head, d_head]
                x[0, at, head] = src[at, head]

        logits = model.run(corrupt, [(site, layer, patch)])
        values.append((metric_value(metric, logits, clean) - shift) * scale)
    shape = ${shape}
    print(json.dumps({
        "patchbay": 2, "kind": "patch", "prompts": {"clean": clean, "corrupt": corrupt},
        "site": SITE, "shape": shape, "axes": ${pyJson(axes)}, "values": nest(values, shape),
        "clean": m_clean, "corrupt": m_corrupt, "normalize": NORMALIZE,
    }))`;
    }
    case 'sweep-ablate':
      return `def main():
    args = arguments()
    model = HookedModel(args.model, REVISION)
    tokenizer = load_tokenizer(args.model, REVISION)
    ids = prompt_ids(PROMPTS["clean"], tokenizer)
    metric = resolve_metric(METRIC, ids, tokenizer)
    L, H = model.n_layers, model.n_heads
    z, logits = model.cache(ids, [("z", layer) for layer in range(L)])
    unablated = metric_value(metric, logits, ids)
    values = []
    for layer in range(L):
        for head in range(H):
            # zero, or the head's output averaged over the prompt's positions (unablated run)
            fill = 0.0 if MODE == "zero" else z[("z", layer)][:, head].mean(0)

            def ablate(x, head=head, fill=fill):
                x[0, :, head] = fill

            values.append(metric_value(metric, model.run(ids, [("z", layer, ablate)]), ids))
    print(json.dumps({
        "patchbay": 2, "kind": "sweep-ablate", "prompts": {"clean": ids}, "mode": MODE,
        "shape": [L, H], "axes": ["layer", "head"], "values": nest(values, [L, H]), "unablated": unablated,
    }))`;
    case 'ablate':
      return `def main():
    args = arguments()
    model = HookedModel(args.model, REVISION)
    tokenizer = load_tokenizer(args.model, REVISION)
    rows = {name: prompt_rows(p, tokenizer) for name, p in PROMPTS.items()}
    clean = rows["clean"]
    metrics = [resolve_metric(METRIC, r, tokenizer) for r in clean] if METRIC else None
    # The runs patches and means read: each source's prompts, without interventions.
    sources = {}
    for name in ("clean", "corrupt", "reference"):
        hooks = sorted({iv["hook"] for iv in INTERVENTIONS if source_of(iv) == name}, key=forward_rank)
        if hooks:
            acts, _ = model.cache_rows(rows[name], [hook_site(h) for h in hooks])
            for h in hooks:
                sources[(name, h)] = acts[hook_site(h)]
    edits = []
    for iv in sorted(INTERVENTIONS, key=lambda iv: forward_rank(iv["hook"])):  # stable: the spec's order at one hook
        src = sources.get((source_of(iv), iv["hook"]))
        value = None if src is None else source_value(iv, src, len(clean))
        edits.append((*hook_site(iv["hook"]), lambda x, iv=iv, value=value: intervene(x, iv, value)))
    plain = model.run_rows(clean)
    logits = model.run_rows(clean, edits) if edits else plain
    out = {"metric": [], "unablated": [], "top": []}
    for b, ids in enumerate(clean):
        probs = torch.softmax(logits[b, -1].double(), -1)
        top = sorted(range(len(probs)), key=lambda i: (-logits[b, -1, i].item(), i))[:5]
        out["top"].append([[i, probs[i].item()] for i in top])
        out["metric"].append(metric_value(metrics[b], logits[b], ids) if metrics else None)
        out["unablated"].append(metric_value(metrics[b], plain[b], ids) if metrics else None)
    one = {k: v if is_batch(PROMPTS["clean"]) else v[0] for k, v in out.items()}
    prompts = {name: r if name == "reference" or is_batch(PROMPTS[name]) else r[0] for name, r in rows.items()}
    print(json.dumps({
        "patchbay": 2, "kind": "ablate", "prompts": prompts,
        "metric": None if not metrics else one["metric"], "unablated": None if not metrics else one["unablated"], "top": one["top"],
    }))`;
    case 'attribute':
      throw new SpecError('spec.experiment: exporting attribution patching to Python is not supported yet');
  }
}

export function transformersScript(spec: ExperimentSpec, options: PythonExportOptions = {}): string {
  const model = pythonModel(spec, options);
  const e = spec.experiment;
  if (spec.processing === 'transformer-lens') throw new SpecError('spec.processing: "transformer-lens" processing has no Hugging Face counterpart; export to transformer-lens instead');
  refuseSae(spec, 'transformers');
  refuseHooks(spec, 'transformers', TRANSFORMERS_HOOKS);
  const constants = [
    `SPEC = ${pyJson(spec)}`,
    `MODEL = ${pyStr(model.model)}`,
    `REVISION = ${model.revision === null ? 'None' : pyStr(model.revision)}`,
    `PROMPTS = SPEC["prompts"]`,
    `METRIC = ${'metric' in e && e.metric ? pyStr(e.metric) : 'None'}`,
  ];
  if (e.kind === 'patch') constants.push(`SITE = ${pyStr(e.site)}`, `NORMALIZE = ${e.normalize ? 'True' : 'False'}`);
  if (e.kind === 'sweep-ablate') constants.push(`MODE = ${pyStr(e.mode ?? 'zero')}`);
  if (e.kind === 'ablate') constants.push(`INTERVENTIONS = SPEC.get("interventions", [])`);
  return `#!/usr/bin/env python3
${docstring(spec, 'transformers', model, 'torch, transformers, safetensors (pip install torch transformers safetensors)')}
import argparse
${HF_HOOKS.trimEnd()}


${PY_METRICS.trimEnd()}


${PY_PROMPTS.trimEnd()}


${PY_INTERVENE.trimEnd()}


def nest(values, shape):
    """Row-major values as nested lists over shape."""
    if len(shape) == 1:
        return list(values)
    step = len(values) // shape[0]
    return [nest(values[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def arguments():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=MODEL, help="a local folder or a Hub id (default: %(default)s)")
    return p.parse_args()


# ---- The experiment ----------------------------------------------------------------------------
${constants.join('\n')}


${mainBody(spec)}


if __name__ == "__main__":
    main()
`;
}
