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
#   pattern     blocks.L.attn.hook_pattern  softmax(scores)                    [batch, head, query, key]
import json
import sys

import torch
from transformers import AttentionInterface, AutoModelForCausalLM, AutoTokenizer
from transformers.masking_utils import AttentionMaskInterface

torch.set_grad_enabled(False)

# Layer number -> function editing that layer's attention pattern in place (see attention).
_PATTERN_EDITS = {}


def attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Eager attention with the pattern exposed, so hook_pattern can be read and patched."""
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    groups = query.shape[1] // key.shape[1]  # grouped-query attention shares key/value heads
    if groups > 1:
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask[:, :, :, : key.shape[-2]]
    pattern = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    edit = _PATTERN_EDITS.get(module.layer_idx)
    if edit is not None:
        pattern = edit(pattern)
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

    def run(self, ids, edits=()):
        """Logits [pos, d_vocab] of one prompt; edits is [(site, layer, fn)], fn(act) edits act in place."""
        handles = []
        pre = {}  # layer -> its input, for resid_mid

        def first_arg(args, kwargs):
            return args[0] if args else kwargs["hidden_states"]

        def with_first_arg(args, kwargs, x):
            return ((x, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": x})

        for site, layer, fn in edits:
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
                handles.append(getattr(block, self.mlp).register_forward_hook(lambda mod, args, out, fn=fn: fn(out)))
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
            elif site == "pattern":
                _PATTERN_EDITS[layer] = lambda p, fn=fn: (fn(p), p)[1]
            else:
                sys.exit(f"unknown site {site}")
        try:
            return self.hf(torch.tensor([ids])).logits[0].float()
        finally:
            for h in handles:
                h.remove()
            _PATTERN_EDITS.clear()

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
        acts = {}
        def keep(key):
            def fn(x):
                acts[key] = x[0].clone()
            return fn
        logits = self.run(ids, [(s, l, keep((s, l))) for s, l in sites])
        return acts, logits


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
