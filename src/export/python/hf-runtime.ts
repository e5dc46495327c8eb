/**
 * The Python that exported scripts carry. HF_HOOKS: Patchbay's hook points on a Hugging Face model
 * as PyTorch forward hooks (TransformerLens' names and shapes), for the transformers export.
 * PY_METRICS: the metrics as Patchbay parses them (relative positions, quoted tokens), for every
 * export. Kept as Python text here so an exported script is one self-contained file;
 * tests/export/python.test.ts runs the transformers script against Patchbay on the fixtures.
 */
export const HF_HOOKS = String.raw`# ---- Patchbay's hook points on a Hugging Face model (PyTorch forward hooks) ----------------
# TransformerLens' names, as Patchbay uses them:
#   resid_pre   blocks.L.hook_resid_pre   the decoder layer's input            [batch, pos, d_model]
#   resid_mid   blocks.L.hook_resid_mid   the residual after attention         [batch, pos, d_model]
#   resid_post  blocks.L.hook_resid_post  the decoder layer's output           [batch, pos, d_model]
#   attn_out    blocks.L.hook_attn_out    the attention block's output         [batch, pos, d_model]
#   mlp_out     blocks.L.hook_mlp_out     the MLP's output                     [batch, pos, d_model]
#   z           blocks.L.attn.hook_z      each head's output, before W_O       [batch, pos, head, d_head]
#   q, k, v     blocks.L.attn.hook_q/k/v  before rotary embeddings             [batch, pos, head, d_head]
#   rot_q, rot_k  blocks.L.attn.hook_rot_q/k  after rotary embeddings          [batch, pos, head, d_head]
#   attn_scores blocks.L.attn.hook_attn_scores  scaled, -inf where masked      [batch, head, query, key]
#   pattern     blocks.L.attn.hook_pattern  softmax(scores)                    [batch, head, query, key]
#   mlp_pre     blocks.L.mlp.hook_pre     the MLP's (gate) pre-activation      [batch, pos, d_mlp]
#   mlp_pre_linear  blocks.L.mlp.hook_pre_linear  a gated MLP's up projection  [batch, pos, d_mlp]
#   mlp_post    blocks.L.mlp.hook_post    the input of the MLP's output matrix [batch, pos, d_mlp]
#   embed, pos_embed  hook_embed, hook_pos_embed  the embeddings               [batch, pos, d_model]
#   unembed_in, logits  unembed.hook_in, unembed.hook_out                      [batch, pos, d_model | d_vocab]
import json
import re
import sys

import torch
from transformers import AttentionInterface, AutoModelForCausalLM, AutoTokenizer
from transformers.masking_utils import AttentionMaskInterface

torch.set_grad_enabled(False)

# Layer number -> {site: [functions]} editing, in place, what the attention function computes
# there: rot_q, rot_k (after rotary), attn_scores, pattern (see attention).
_ATTN_EDITS = {}


def attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Eager attention with rotary q/k, scores and pattern exposed, so hooks can read and patch them."""
    edits = _ATTN_EDITS.get(module.layer_idx, {})
    for fn in edits.get("rot_q", ()):
        fn(query.transpose(1, 2))  # [batch, pos, head, d_head] view: edits reach query
    for fn in edits.get("rot_k", ()):
        fn(key.transpose(1, 2))
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    groups = query.shape[1] // key.shape[1]  # grouped-query attention shares key/value heads
    if groups > 1:
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask[:, :, :, : key.shape[-2]]
    if "attn_scores" in edits:
        # TransformerLens' scores: -inf where masked; the mask holds whatever a hook writes there.
        masked = (attention_mask[:, :, :, : key.shape[-2]] < 0) if attention_mask is not None else torch.zeros_like(scores, dtype=torch.bool)
        scores = scores.masked_fill(masked, float("-inf"))
        for fn in edits["attn_scores"]:
            fn(scores)
        scores = scores.masked_fill(masked, float("-inf"))
    pattern = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    for fn in edits.get("pattern", ()):
        fn(pattern)
    out = torch.matmul(pattern, value).transpose(1, 2).contiguous()
    return out, pattern


AttentionInterface.register("patchbay", attention)
AttentionMaskInterface.register("patchbay", AttentionMaskInterface()["eager"])  # the additive causal mask eager attention takes


class HookedModel:
    """A causal LM with Patchbay's hook points: run(ids, edits) edits activations in place."""

    def __init__(self, path, revision=None):
        self.hf = AutoModelForCausalLM.from_pretrained(path, revision=revision, dtype=torch.float32, attn_implementation="patchbay")
        self.hf.eval()
        c = self.hf.config
        self.family = c.model_type
        if self.family == "gpt2":
            self.layers = self.hf.transformer.h
            self.attn, self.mlp, self.o_proj = "attn", "mlp", "c_proj"
            self.n_heads = self.n_kv_heads = c.n_head
            self.parallel = False
        elif self.family == "gpt_neox":
            self.layers = self.hf.gpt_neox.layers
            self.attn, self.mlp, self.o_proj = "attention", "mlp", "dense"
            self.n_heads = self.n_kv_heads = c.num_attention_heads
            self.parallel = c.use_parallel_residual
        elif self.family in ("llama", "mistral", "qwen2"):
            self.layers = self.hf.model.layers
            self.attn, self.mlp, self.o_proj = "self_attn", "mlp", "o_proj"
            self.n_heads = c.num_attention_heads
            self.n_kv_heads = c.num_key_value_heads
            self.parallel = False
        else:
            sys.exit(f"this script knows GPT-2, GPT-NeoX and Llama-style models, not {self.family!r}")
        self.n_layers = len(self.layers)
        self.d_head = c.hidden_size // self.n_heads
        self.d_vocab = c.vocab_size

    def _attn(self, layer):
        return getattr(self.layers[layer], self.attn)

    def _module(self, name):
        """The model's own modules that hold the embeddings and the unembedding."""
        hf, t = self.hf, self.family
        if name == "embed":
            return hf.transformer.wte if t == "gpt2" else hf.gpt_neox.embed_in if t == "gpt_neox" else hf.model.embed_tokens
        if name == "pos_embed":
            if t != "gpt2":
                sys.exit("hook_pos_embed: only GPT-2 adds a position embedding (rotary models have none)")
            return hf.transformer.wpe
        return hf.embed_out if t == "gpt_neox" else hf.lm_head

    def _mlp(self, layer, part):
        """The MLP's linear maps: in (the first, or a gated MLP's gate), up (a gated MLP's), out."""
        mlp, t = getattr(self.layers[layer], self.mlp), self.family
        names = {"gpt2": ("c_fc", None, "c_proj"), "gpt_neox": ("dense_h_to_4h", None, "dense_4h_to_h")}.get(t, ("gate_proj", "up_proj", "down_proj"))
        name = names[("in", "up", "out").index(part)]
        if name is None:
            sys.exit(f"blocks.{layer}.mlp.hook_pre_linear: only gated MLPs (Llama-style) have one")
        return getattr(mlp, name)

    def run(self, ids, edits=()):
        """Logits [pos, d_vocab] of one prompt; edits is [(site, layer, fn)], fn(act) edits act in place."""
        return self.run_rows([ids], edits)[0]

    def run_rows(self, rows, edits=()):
        """Logits [batch, pos, d_vocab] of prompts of one length; edits as for run, in forward order at each site."""
        handles = []
        pre = {}  # layer -> its input, for resid_mid

        def first_arg(args, kwargs):
            return args[0] if args else kwargs["hidden_states"]

        def with_first_arg(args, kwargs, x):
            return ((x, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": x})

        def edit_input(module, fn):
            def hook(mod, args, fn=fn):
                fn(args[0])  # edited in place: the tensor the module reads
            return module.register_forward_pre_hook(hook)

        def edit_output(module, fn):
            return module.register_forward_hook(lambda mod, args, out, fn=fn: fn(out))

        for site, layer, fn in edits:
            if site in ("embed", "pos_embed", "logits"):
                handles.append(edit_output(self._module(site), fn))
                continue
            if site == "unembed_in":
                def hook(mod, args, fn=fn):
                    x = args[0].clone()  # ln_final's output, maybe a view of it
                    fn(x)
                    return (x, *args[1:])
                handles.append(self._module("unembed").register_forward_pre_hook(hook))
                continue
            block, attn = self.layers[layer], self._attn(layer)
            if site == "resid_pre":
                def hook(mod, args, kwargs, fn=fn):
                    x = first_arg(args, kwargs).clone()
                    fn(x)
                    return with_first_arg(args, kwargs, x)
                handles.append(block.register_forward_pre_hook(hook, with_kwargs=True))
            elif site == "resid_post":
                def hook(mod, args, out, fn=fn):
                    x = out[0] if isinstance(out, tuple) else out
                    fn(x)
                handles.append(block.register_forward_hook(hook))
            elif site == "attn_out":
                handles.append(attn.register_forward_hook(lambda mod, args, out, fn=fn: fn(out[0])))
            elif site == "mlp_out":
                handles.append(edit_output(getattr(block, self.mlp), fn))
            elif site == "resid_mid":
                if self.parallel:
                    sys.exit("a parallel-residual block has no resid_mid")
                def keep(mod, args, kwargs, layer=layer):
                    pre[layer] = first_arg(args, kwargs)
                def hook(mod, args, out, fn=fn, layer=layer):
                    mid = out[0] + pre[layer]  # what the block adds next
                    fn(mid)
                    return (mid - pre[layer], *out[1:])
                handles.append(block.register_forward_pre_hook(keep, with_kwargs=True))
                handles.append(attn.register_forward_hook(hook))
            elif site == "z":
                def hook(mod, args, fn=fn):
                    x = args[0]
                    fn(x.view(*x.shape[:-1], self.n_heads, self.d_head))
                handles.append(getattr(attn, self.o_proj).register_forward_pre_hook(hook))
            elif site in ("q", "k", "v"):
                handles.append(self._qkv_hook(attn, site, fn))
            elif site in ("rot_q", "rot_k", "attn_scores", "pattern"):
                if site.startswith("rot_") and self.family == "gpt2":
                    sys.exit(f"blocks.{layer}.attn.hook_{site}: GPT-2 has no rotary embeddings")
                _ATTN_EDITS.setdefault(layer, {}).setdefault(site, []).append(fn)
            elif site == "mlp_pre":
                handles.append(edit_output(self._mlp(layer, "in"), fn))
            elif site == "mlp_pre_linear":
                handles.append(edit_output(self._mlp(layer, "up"), fn))
            elif site == "mlp_post":
                handles.append(edit_input(self._mlp(layer, "out"), fn))
            else:
                sys.exit(f"unknown site {site}")
        try:
            return self.hf(torch.tensor(rows)).logits.float()
        finally:
            for h in handles:
                h.remove()
            _ATTN_EDITS.clear()

    def _qkv_hook(self, attn, site, fn):
        H, Hkv, dh = self.n_heads, self.n_kv_heads, self.d_head
        if self.family == "gpt2":
            part = "qkv".index(site)
            def hook(mod, args, out):
                x = out[..., part * H * dh : (part + 1) * H * dh]
                fn(x.unflatten(-1, (H, dh)))
            return attn.c_attn.register_forward_hook(hook)
        if self.family == "gpt_neox":
            part = "qkv".index(site)
            def hook(mod, args, out):
                x = out.view(*out.shape[:-1], H, 3 * dh)  # per head: q, k, v
                fn(x[..., part * dh : (part + 1) * dh])
            return attn.query_key_value.register_forward_hook(hook)
        n = H if site == "q" else Hkv
        proj = getattr(attn, f"{site}_proj")
        return proj.register_forward_hook(lambda mod, args, out: fn(out.view(*out.shape[:-1], n, dh)))

    def cache(self, ids, sites):
        """The activations at sites ([(site, layer)]) of one run, batch row 0, and the logits."""
        acts, logits = self.cache_rows([ids], sites)
        return {k: v[0] for k, v in acts.items()}, logits[0]

    def cache_rows(self, rows, sites):
        """The activations at sites ([(site, layer)]) of a run on rows, every row, and the logits."""
        acts = {}
        def keep(key):
            def fn(x):
                acts[key] = x.clone()
            return fn
        logits = self.run_rows(rows, [(s, l, keep((s, l))) for s, l in sites])
        return acts, logits


# TransformerLens' hook names within a block, as this runtime's sites, in forward order.
BLOCK_SITES = {
    "hook_resid_pre": "resid_pre", "attn.hook_q": "q", "attn.hook_k": "k", "attn.hook_v": "v",
    "attn.hook_rot_q": "rot_q", "attn.hook_rot_k": "rot_k", "attn.hook_attn_scores": "attn_scores",
    "attn.hook_pattern": "pattern", "attn.hook_z": "z", "hook_attn_out": "attn_out",
    "hook_resid_mid": "resid_mid", "mlp.hook_pre": "mlp_pre", "mlp.hook_pre_linear": "mlp_pre_linear",
    "mlp.hook_post": "mlp_post", "hook_mlp_out": "mlp_out", "hook_resid_post": "resid_post",
}
MODEL_SITES = {"hook_embed": "embed", "hook_pos_embed": "pos_embed", "unembed.hook_in": "unembed_in", "unembed.hook_out": "logits"}


def hook_site(name):
    """(site, layer) of a TransformerLens hook name (layer None outside the blocks)."""
    if name in MODEL_SITES:
        return MODEL_SITES[name], None
    m = re.fullmatch(r"blocks\.(\d+)\.(.+)", name)
    if m and m.group(2) in BLOCK_SITES:
        return BLOCK_SITES[m.group(2)], int(m.group(1))
    sys.exit(f"{name}: this script has no PyTorch hook for that hook point")


def forward_rank(name):
    """Where a hook point comes in the forward pass, for sorting interventions into that order."""
    site, layer = hook_site(name)
    order = ["embed", "pos_embed", *BLOCK_SITES.values(), "unembed_in", "logits"]
    return (-1 if site in ("embed", "pos_embed") else 1 << 30 if layer is None else layer, order.index(site))


def load_tokenizer(path, revision):
    try:
        return AutoTokenizer.from_pretrained(path, revision=revision)
    except (OSError, ValueError):
        return None  # a toy model without tokenizer.json: prompts are token ids
`;

export const PY_METRICS = String.raw`# ---- Metrics, as Patchbay writes them (logit-diff:POS:GOOD:BAD, logprob, prob, loss) ---------
def _fields(text):
    out, cur, quoted, i = [], "", False, 0
    while i < len(text):
        ch = text[i]
        if quoted and ch == "\\":
            cur += text[i : i + 2]
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        if ch == ":" and not quoted:
            out.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    return out + [cur]


def resolve_metric(text, ids, tokenizer):
    """(kind, args) with positions absolute and tokens ids, for the prompt ids."""
    kind, *rest = _fields(text)
    T = len(ids)

    def token(s):
        if s.startswith('"'):
            enc = tokenizer.encode(json.loads(s), add_special_tokens=False)
            if len(enc) != 1:
                sys.exit(f"metric {text}: {s} is {len(enc)} tokens, not one")
            return enc[0]
        return int(s)

    def pos(s):
        if s.startswith('"'):
            t = token(s)
            if t not in ids:
                sys.exit(f"metric {text}: {s} is not in the prompt")
            return len(ids) - 1 - ids[::-1].index(t)
        p = int(s)
        return T + p if p < 0 else p

    if kind == "logit-diff":
        return kind, (pos(rest[0]), token(rest[1]), token(rest[2]))
    if kind in ("logprob", "prob"):
        return kind, (pos(rest[0]), token(rest[1]))
    if kind == "loss":
        start, end = (int(x) for x in rest)
        return kind, (T + start if start < 0 else start, T + end if end < 0 else end)
    sys.exit(f"unknown metric {text}")


def metric_value(metric, logits, ids):
    """The metric of logits [pos, d_vocab] (the prompt ids is what a loss predicts)."""
    kind, a = metric
    if kind == "logit-diff":
        return (logits[a[0], a[1]] - logits[a[0], a[2]]).item()
    if kind in ("logprob", "prob"):
        lp = torch.log_softmax(logits[a[0]].double(), -1)[a[1]]
        return (lp.exp() if kind == "prob" else lp).item()
    start, end = a
    lp = torch.log_softmax(logits[start:end].double(), -1)
    return -lp[torch.arange(end - start), torch.tensor(ids[start + 1 : end + 1])].mean().item()


def prompt_ids(p, tokenizer):
    if isinstance(p, list):
        return p
    if tokenizer is None:
        return [int(x) for x in p.replace(",", " ").split()]
    return tokenizer.encode(p, add_special_tokens=False)
`;

/**
 * The spec's interventions in Python, as Patchbay applies them (src/experiments/spec-interventions.ts
 * and the intervention kernel): each edits one hook's activation in place, on the outer product of
 * the selected batch rows, positions, heads and key positions. Shared by every export.
 */
export const PY_INTERVENE = String.raw`# ---- Interventions, as Patchbay applies them (zero, mean, patch, scale, set, add) ------------
def _axes(hook):
    """The activation's axes a selection picks from, in its own order: batch, pos, head, key."""
    if hook.endswith((".hook_pattern", ".hook_attn_scores")):
        return ["batch", "head", "pos", "key"]  # [batch, head, query, key]
    if hook.endswith((".hook_q", ".hook_k", ".hook_v", ".hook_z", ".hook_rot_q", ".hook_rot_k")):
        return ["batch", "pos", "head"]  # [batch, pos, head, d_head]
    return ["batch", "pos"]  # [batch, pos, d]


def _indices(v, n, signed):
    if v is None:
        return list(range(n))
    out = [v] if isinstance(v, int) else list(v)
    return [i + n if signed and i < 0 else i for i in out]


def selection(x, iv):
    """The outer index of the selected rows, positions, heads and keys of x (all where not given)."""
    axes = _axes(iv["hook"])
    fields = {"batch": ("batch", False), "pos": ("pos", True), "head": ("heads", False), "key": ("key_pos", True)}
    index = []
    for i, axis in enumerate(axes):
        name, signed = fields[axis]
        shape = [1] * len(axes)
        shape[i] = -1
        index.append(torch.tensor(_indices(iv.get(name), x.shape[i], signed)).view(shape))
    return tuple(index)


def add_vector(iv, x):
    """coeff * vector, shaped to broadcast over x: the last axis, or (heads, last axis) on per-head hooks."""
    v = torch.tensor(iv["vector"], dtype=x.dtype) * iv.get("coeff", 1.0)
    axes = _axes(iv["hook"])
    if v.numel() == x.shape[-1]:
        return v
    if "head" in axes and v.numel() == x.shape[axes.index("head")] * x.shape[-1]:
        shape = [1] * x.dim()
        shape[axes.index("head")] = x.shape[axes.index("head")]
        shape[-1] = x.shape[-1]
        return v.view(shape)
    sys.exit(f"the vector added at {iv['hook']} has {v.numel()} values; it needs {x.shape[-1]}")


def source_of(iv):
    """The prompts a patch reads or a mean averages: "clean", "corrupt" or "reference"."""
    if iv["op"] == "patch":
        return iv.get("from", "corrupt")
    if iv["op"] == "mean":
        return iv.get("from", "reference" if "reference" in PROMPTS else "clean")
    return None


def source_value(iv, acts, rows):
    """What a mean or a patch writes, broadcastable to the hook's activation: acts is the hook's
    activation in the source run (every row, no interventions), rows the run's row count."""
    if iv["op"] == "mean":
        dims = (0, _axes(iv["hook"]).index("pos")) if iv.get("pooled") else (0,)
        return acts.mean(dim=dims, keepdim=True)
    if "source_batch" in iv:
        return acts[iv["source_batch"] : iv["source_batch"] + 1]
    if acts.shape[0] not in (1, rows):
        sys.exit(f"{iv['hook']}: the source has {acts.shape[0]} rows and the run {rows}; give source_batch")
    return acts


def intervene(x, iv, src=None):
    """Edits x (the activation at iv["hook"], batch first) in place as the intervention says."""
    at = selection(x, iv)
    op = iv["op"]
    if op == "zero":
        x[at] = 0.0
    elif op == "set":
        x[at] = float(iv["value"])
    elif op == "scale":
        x[at] = x[at] * iv["factor"]
    elif op == "add":
        x[at] = x[at] + add_vector(iv, x).expand_as(x)[at]
    else:  # mean, patch
        x[at] = src.to(x.dtype).expand_as(x)[at]
`;
