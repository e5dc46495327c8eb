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
import { SpecError, ablatedHeads } from '../../experiments/spec.ts';
import { docstring, pyJson, pyStr, pythonModel, siteLayout, type PythonExportOptions } from './common.ts';
import { PY_METRICS } from './hf-runtime.ts';

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
`;

function mainBody(spec: ExperimentSpec): string {
  const e = spec.experiment;
  switch (e.kind) {
    case 'patch': {
      const { axes, hook, byHead, byPos, posFirst } = siteLayout(e.site);
      if (hook === 'pattern') throw new SpecError('spec.experiment.site: pattern sites cannot be exported to nnsight (no module outputs the attention pattern); export to transformers or transformer-lens');
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
        source = nnsight.save([[act(model, site, layer)[0].clone() for layer in range(L)] for site in HOOKS])
        clean_logits = logits_of(model)[0].save()
    with model.trace(torch.tensor([corrupt]), remote=REMOTE):
        corrupt_logits = logits_of(model)[0].save()
    m_clean = metric_value(metric, clean_logits.float(), clean)
    m_corrupt = metric_value(metric, corrupt_logits.float(), clean)
    scale, shift = (1 / (m_clean - m_corrupt), m_corrupt) if NORMALIZE else (1.0, 0.0)
    values = []
    for site, layer, pos, head in ${cells}:
        src = source[HOOKS.index(site)][layer]
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
        "patchbay": 1, "kind": "patch", "prompts": {"clean": clean, "corrupt": corrupt},
        "site": SITE, "shape": shape, "axes": ${pyJson(axes)}, "values": nest(values, shape),
        "clean": m_clean, "corrupt": m_corrupt, "normalize": NORMALIZE,
    }))`;
    }
    case 'sweep-ablate':
    case 'ablate': {
      const sweep = e.kind === 'sweep-ablate';
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
    metric = resolve_metric(METRIC, ids, model.tokenizer)${sweep ? '' : ' if METRIC else None'}
    L, H, _, _ = dims(model)
    with model.trace(torch.tensor([ids]), remote=REMOTE):
        z = nnsight.save([act(model, "z", layer)[0].clone() for layer in range(L)])
        plain = logits_of(model)[0].save()
    plain = plain.float()
${
  sweep
    ? `    unablated = metric_value(metric, plain, ids)
    values = [metric_value(metric, ablated_logits(model, ids, [(layer, head)], z), ids) for layer in range(L) for head in range(H)]
    print(json.dumps({
        "patchbay": 1, "kind": "sweep-ablate", "prompts": {"clean": ids}, "mode": MODE,
        "shape": [L, H], "axes": ["layer", "head"], "values": nest(values, [L, H]), "unablated": unablated,
    }))`
    : `    logits = ablated_logits(model, ids, HEADS, z) if HEADS else plain
    probs = torch.softmax(logits[-1].double(), -1)
    top = sorted(range(len(probs)), key=lambda i: (-logits[-1, i].item(), i))[:5]
    print(json.dumps({
        "patchbay": 1, "kind": "ablate", "prompts": {"clean": ids},
        "metric": metric_value(metric, logits, ids) if metric else None,
        "unablated": metric_value(metric, plain, ids) if metric else None,
        "top": [[i, probs[i].item()] for i in top],
    }))`
}`;
    }
    case 'attribute':
      throw new SpecError('spec.experiment: exporting attribution patching to Python is not supported yet');
  }
}

export function nnsightScript(spec: ExperimentSpec, options: PythonExportOptions = {}): string {
  const model = pythonModel(spec, options);
  const e = spec.experiment;
  if (spec.processing === 'transformer-lens') throw new SpecError('spec.processing: "transformer-lens" processing has no nnsight counterpart; export to transformer-lens instead');
  const { heads, mode } = ablatedHeads(spec);
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
  if (e.kind === 'ablate') constants.push(`HEADS = ${pyJson(heads.map((h) => [h.layer, h.head]))}`, `MODE = ${pyStr(mode)}`);
  return `#!/usr/bin/env python3
${docstring(spec, 'nnsight', model, 'torch, transformers >= 5, nnsight (pip install nnsight)', '\nSet REMOTE = True below to run it on NDIF.')}
import argparse
import json
import sys

import nnsight
import torch
from nnsight import LanguageModel

torch.set_grad_enabled(False)

${ACCESS.trimEnd()}


${PY_METRICS.trimEnd()}


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
