/**
 * `patchbay export SPEC --to nnsight`: the experiment as nnsight traces, one trace per run, on a
 * Hugging Face model wrapped by `nnsight.LanguageModel`; `REMOTE = True` sends each trace to NDIF
 * (models too large for a tab: Llama-3.1-8B … 405B). Written against nnsight's documentation
 * (ndif-team/nnsight docs/usage/access-and-modify.md, docs/patterns/activation-patching.md,
 * per-head-attention.md, gotchas/save.md, gotchas/remote.md): `module.input` is the first
 * positional input, `module.output` a block's output tensor (transformers >= 5) or an attention
 * module's tuple, in-place writes through `.view()` reach the model, and only `.save()`d values
 * come back. Not run by Patchbay's tests (nnsight is not installable there): syntax-checked.
 * Attention patterns are not exposed as a module output in nnsight, so pattern sites are refused.
 */
import type { ExperimentSpec } from '../../experiments/spec.ts';
import { SpecError } from '../../experiments/spec.ts';
import { PY_PROMPTS, docstring, pyJson, pyStr, pythonModel, refuseHooks, refuseSae, siteLayout, type PythonExportOptions } from './common.ts';
import { PY_INTERVENE, PY_METRICS } from './hf-runtime.ts';

/** The hook points nnsight reaches as module inputs and outputs (no pattern, scores, rotary q/k or resid_mid). */
export const NNSIGHT_HOOKS: readonly RegExp[] = [
  /^hook_(embed|pos_embed)$/,
  /^unembed\.hook_(in|out)$/,
  /^blocks\.\d+\.hook_(resid_pre|resid_post|attn_out|mlp_out)$/,
  /^blocks\.\d+\.attn\.hook_(q|k|v|z)$/,
  /^blocks\.\d+\.mlp\.hook_(pre|pre_linear|post)$/,
];

const ACCESS = String.raw`# ---- Patchbay's hook points inside an nnsight trace (TransformerLens' names and layouts) ------
def blocks(model):
    t = model.config.model_type
    if t == "gpt2":
        return model.transformer.h
    if t == "gpt_neox":
        return model.gpt_neox.layers
    return model.model.layers  # Llama-style


def dims(model):
    c = model.config
    heads = getattr(c, "n_head", None) or c.num_attention_heads
    kv = getattr(c, "num_key_value_heads", None) or heads
    return len(blocks(model)), heads, kv, c.hidden_size // heads


def act(model, site, layer):
    """The activation at (site, layer) inside a trace, in TransformerLens' layout (a view: writes reach the model)."""
    t = model.config.model_type
    if site == "embed":
        return (model.transformer.wte if t == "gpt2" else model.gpt_neox.embed_in if t == "gpt_neox" else model.model.embed_tokens).output
    if site == "pos_embed":
        return model.transformer.wpe.output  # GPT-2 only: rotary models add no position vector
    if site == "unembed_in":
        return (model.embed_out if t == "gpt_neox" else model.lm_head).input
    if site == "logits":
        return logits_of(model)
    block = blocks(model)[layer]
    attn = block.attn if t == "gpt2" else block.attention if t == "gpt_neox" else block.self_attn
    _, H, Hkv, dh = dims(model)
    if site == "resid_pre":
        return block.input
    if site == "resid_post":
        return block.output
    if site == "attn_out":
        return attn.output[0]
    if site == "mlp_out":
        return block.mlp.output
    if site in ("mlp_pre", "mlp_pre_linear", "mlp_post"):
        names = {"gpt2": ("c_fc", None, "c_proj"), "gpt_neox": ("dense_h_to_4h", None, "dense_4h_to_h")}.get(t, ("gate_proj", "up_proj", "down_proj"))
        linear = getattr(block.mlp, names[("mlp_pre", "mlp_pre_linear", "mlp_post").index(site)])
        return linear.input if site == "mlp_post" else linear.output
    if site == "z":
        x = (attn.c_proj if t == "gpt2" else attn.dense if t == "gpt_neox" else attn.o_proj).input
        return x.view(*x.shape[:-1], H, dh)
    if site in ("q", "k", "v"):
        part = "qkv".index(site)
        if t == "gpt2":
            x = attn.c_attn.output
            return x[..., part * H * dh : (part + 1) * H * dh].unflatten(-1, (H, dh))
        if t == "gpt_neox":
            x = attn.query_key_value.output
            return x.view(*x.shape[:-1], H, 3 * dh)[..., part * dh : (part + 1) * dh]
        x = getattr(attn, site + "_proj").output
        return x.view(*x.shape[:-1], H if site == "q" else Hkv, dh)
    raise SystemExit(f"site {site} is not available through nnsight module outputs")


def logits_of(model):
    return model.lm_head.output if model.config.model_type != "gpt_neox" else model.embed_out.output


# TransformerLens' hook names as the sites act() reads, in forward order (nnsight needs modules
# accessed in the order the forward pass runs them).
BLOCK_SITES = {
    "hook_resid_pre": "resid_pre", "attn.hook_q": "q", "attn.hook_k": "k", "attn.hook_v": "v",
    "attn.hook_z": "z", "hook_attn_out": "attn_out", "mlp.hook_pre": "mlp_pre",
    "mlp.hook_pre_linear": "mlp_pre_linear", "mlp.hook_post": "mlp_post", "hook_mlp_out": "mlp_out",
    "hook_resid_post": "resid_post",
}
MODEL_SITES = {"hook_embed": "embed", "hook_pos_embed": "pos_embed", "unembed.hook_in": "unembed_in", "unembed.hook_out": "logits"}


def hook_site(name):
    """(site, layer) of a TransformerLens hook name (layer None outside the blocks)."""
    if name in MODEL_SITES:
        return MODEL_SITES[name], None
    m = re.fullmatch(r"blocks\.(\d+)\.(.+)", name)
    if m and m.group(2) in BLOCK_SITES:
        return BLOCK_SITES[m.group(2)], int(m.group(1))
    raise SystemExit(f"{name}: not available through nnsight module inputs and outputs")


def forward_rank(name):
    site, layer = hook_site(name)
    order = ["embed", "pos_embed", *BLOCK_SITES.values(), "unembed_in", "logits"]
    return (-1 if site in ("embed", "pos_embed") else 1 << 30 if layer is None else layer, order.index(site))
`;

function mainBody(spec: ExperimentSpec): string {
  const e = spec.experiment;
  switch (e.kind) {
    case 'patch': {
      const { axes, hook, byHead, byPos, posFirst } = siteLayout(e.site);
      if (hook === 'pattern')
        throw new SpecError('spec.experiment.site: pattern sites cannot be exported to nnsight (no module outputs the attention pattern); export to transformers or transformer-lens');
      if (hook === 'resid_mid') throw new SpecError('spec.experiment.site: resid_mid is not a module output in nnsight; export to transformers or transformer-lens');
      const hooks = hook.split(',');
      const cells =
        e.site === 'block_every'
          ? `[(site, layer, pos, None) for site in HOOKS for layer in range(L) for pos in range(T)]`
          : byHead
            ? byPos
              ? posFirst
                ? `[(HOOKS[0], layer, pos, head) for layer in range(L) for pos in range(T) for head in range(H)]`
                : `[(HOOKS[0], layer, pos, head) for layer in range(L) for head in range(H) for pos in range(T)]`
              : `[(HOOKS[0], layer, None, head) for layer in range(L) for head in range(H)]`
            : `[(HOOKS[0], layer, pos, None) for layer in range(L) for pos in range(T)]`;
      const shape = e.site === 'block_every' ? '[3, L, T]' : byHead ? (byPos ? (posFirst ? '[L, T, H]' : '[L, H, T]') : '[L, H]') : '[L, T]';
      return `HOOKS = ${pyJson(hooks)}


def main():
    args = arguments()
    model = LanguageModel(args.model, revision=REVISION, dispatch=True)
    clean = prompt_ids(PROMPTS["clean"], model.tokenizer)
    corrupt = prompt_ids(PROMPTS["corrupt"], model.tokenizer)
    metric = resolve_metric(METRIC, clean, model.tokenizer)
    L, Hq, Hkv, _ = dims(model)
    H = ${hook === 'k' || hook === 'v' ? 'Hkv' : 'Hq'}
    T = len(clean)
    with model.trace(torch.tensor([clean]), remote=REMOTE):
        # Layer by layer, each layer's sites in forward order: nnsight reads modules in the order they run.
        source = nnsight.save([[act(model, site, layer)[0].clone() for site in HOOKS] for layer in range(L)])
        clean_logits = logits_of(model)[0].save()
    with model.trace(torch.tensor([corrupt]), remote=REMOTE):
        corrupt_logits = logits_of(model)[0].save()
    m_clean = metric_value(metric, clean_logits.float(), clean)
    m_corrupt = metric_value(metric, corrupt_logits.float(), clean)
    scale, shift = (1 / (m_clean - m_corrupt), m_corrupt) if NORMALIZE else (1.0, 0.0)
    values = []
    for site, layer, pos, head in ${cells}:
        src = source[layer][HOOKS.index(site)]
        at = slice(None) if pos is None else pos
        with model.trace(torch.tensor([corrupt]), remote=REMOTE):
            x = act(model, site, layer)
            if head is None:
                x[0, at] = src[at]
            else:
                x[0, at, head] = src[at, head]
            logits = logits_of(model)[0].save()
        values.append((metric_value(metric, logits.float(), clean) - shift) * scale)
    shape = ${shape}
    print(json.dumps({
        "patchbay": 2, "kind": "patch", "prompts": {"clean": clean, "corrupt": corrupt},
        "site": SITE, "shape": shape, "axes": ${pyJson(axes)}, "values": nest(values, shape),
        "clean": m_clean, "corrupt": m_corrupt, "normalize": NORMALIZE,
    }))`;
    }
    case 'sweep-ablate':
      return `def ablated_logits(model, ids, heads, z):
    """Logits with each (layer, head) in heads set to zero or to its mean over the prompt (MODE)."""
    with model.trace(torch.tensor([ids]), remote=REMOTE):
        for layer, head in heads:
            x = act(model, "z", layer)
            x[0, :, head] = 0.0 if MODE == "zero" else z[layer][:, head].mean(0)
        logits = logits_of(model)[0].save()
    return logits.float()


def main():
    args = arguments()
    model = LanguageModel(args.model, revision=REVISION, dispatch=True)
    ids = prompt_ids(PROMPTS["clean"], model.tokenizer)
    metric = resolve_metric(METRIC, ids, model.tokenizer)
    L, H, _, _ = dims(model)
    with model.trace(torch.tensor([ids]), remote=REMOTE):
        z = nnsight.save([act(model, "z", layer)[0].clone() for layer in range(L)])
        plain = logits_of(model)[0].save()
    plain = plain.float()
    unablated = metric_value(metric, plain, ids)
    values = [metric_value(metric, ablated_logits(model, ids, [(layer, head)], z), ids) for layer in range(L) for head in range(H)]
    print(json.dumps({
        "patchbay": 2, "kind": "sweep-ablate", "prompts": {"clean": ids}, "mode": MODE,
        "shape": [L, H], "axes": ["layer", "head"], "values": nest(values, [L, H]), "unablated": unablated,
    }))`;
    case 'ablate':
      return `def main():
    args = arguments()
    model = LanguageModel(args.model, revision=REVISION, dispatch=True)
    rows = {name: prompt_rows(p, model.tokenizer) for name, p in PROMPTS.items()}
    clean = rows["clean"]
    metrics = [resolve_metric(METRIC, r, model.tokenizer) for r in clean] if METRIC else None
    # The runs patches and means read: each source's prompts, without interventions; hooks in forward order.
    sources = {}
    for name in ("clean", "corrupt", "reference"):
        hooks = sorted({iv["hook"] for iv in INTERVENTIONS if source_of(iv) == name}, key=forward_rank)
        if hooks:
            with model.trace(torch.tensor(rows[name]), remote=REMOTE):
                saved = nnsight.save([act(model, *hook_site(h)).clone() for h in hooks])
            sources.update({(name, h): a for h, a in zip(hooks, saved)})
    # Each hook read once, in forward order, with its interventions in the spec's order.
    by_hook = {}
    for iv in INTERVENTIONS:
        by_hook.setdefault(iv["hook"], []).append(iv)
    with model.trace(torch.tensor(clean), remote=REMOTE):
        plain = logits_of(model).save()
    with model.trace(torch.tensor(clean), remote=REMOTE):
        out = None
        for hook in sorted(by_hook, key=forward_rank):
            x = act(model, *hook_site(hook))
            for iv in by_hook[hook]:
                src = sources.get((source_of(iv), hook))
                intervene(x, iv, None if src is None else source_value(iv, src, len(clean)))
            if hook == "unembed.hook_out":
                out = x
        logits = (out if out is not None else logits_of(model)).save()
    plain, logits = plain.float(), logits.float()
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

export function nnsightScript(spec: ExperimentSpec, options: PythonExportOptions = {}): string {
  const model = pythonModel(spec, options);
  const e = spec.experiment;
  if (spec.processing === 'transformer-lens') throw new SpecError('spec.processing: "transformer-lens" processing has no nnsight counterpart; export to transformer-lens instead');
  refuseSae(spec, 'nnsight');
  refuseHooks(spec, 'nnsight', NNSIGHT_HOOKS);
  const constants = [
    `SPEC = ${pyJson(spec)}`,
    `MODEL = ${pyStr(model.model)}`,
    `REVISION = ${model.revision === null ? 'None' : pyStr(model.revision)}`,
    `PROMPTS = SPEC["prompts"]`,
    `METRIC = ${'metric' in e && e.metric ? pyStr(e.metric) : 'None'}`,
    `# True: run every trace on NDIF's servers (an NDIF API key, and a model NDIF hosts).`,
    `REMOTE = False`,
  ];
  if (e.kind === 'patch') constants.push(`SITE = ${pyStr(e.site)}`, `NORMALIZE = ${e.normalize ? 'True' : 'False'}`);
  if (e.kind === 'sweep-ablate') constants.push(`MODE = ${pyStr(e.mode ?? 'zero')}`);
  if (e.kind === 'ablate') constants.push(`INTERVENTIONS = SPEC.get("interventions", [])`);
  return `#!/usr/bin/env python3
${docstring(spec, 'nnsight', model, 'torch, transformers >= 5, nnsight (pip install nnsight)', '\nSet REMOTE = True below to run it on NDIF.')}
import argparse
import json
import re
import sys

import nnsight
import torch
from nnsight import LanguageModel

torch.set_grad_enabled(False)

${ACCESS.trimEnd()}


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
