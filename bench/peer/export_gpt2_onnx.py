#!/usr/bin/env python3
"""GPT-2 (Hugging Face safetensors + config.json) -> ONNX, for the bench's peer (ONNX Runtime Web).

    python3 export_gpt2_onnx.py MODEL_DIR OUT.onnx

A short PyTorch re-implementation of GPT-2's forward (no transformers package needed), exported
with torch.onnx.export at opset 17: input `input_ids` int64 [batch, pos], output `logits` float32
[batch, pos, vocab], both axes dynamic. Reads `model.safetensors` itself with numpy (F32, F16 or
BF16 tensors; both `transformer.h.N.` and `h.N.` names). Needs Debian's python3-torch and
python3-onnx (torch 1.13 / onnx 1.12 here).
"""
import json
import math
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            a, b = info["data_offsets"]
            f.seek(base + a)
            raw = f.read(b - a)
            dt = info["dtype"]
            if dt == "F32":
                arr = np.frombuffer(raw, dtype="<f4")
            elif dt == "F16":
                arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
            elif dt == "BF16":
                arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                continue  # masks (attn.bias) and other non-float tensors are not needed
            out[name] = torch.from_numpy(arr.astype(np.float32).reshape(info["shape"]).copy())
    return out


class GPT2(nn.Module):
    def __init__(self, cfg, t):
        super().__init__()
        p = "transformer." if "transformer.wte.weight" in t else ""
        self.C = cfg["n_embd"]
        self.H = cfg["n_head"]
        self.L = cfg["n_layer"]
        self.eps = float(cfg.get("layer_norm_epsilon", 1e-5))
        n_ctx = cfg.get("n_positions", cfg.get("n_ctx"))
        P = lambda name: nn.Parameter(t[p + name], requires_grad=False)
        self.wte = P("wte.weight")
        self.wpe = P("wpe.weight")
        self.ln_f_w = P("ln_f.weight")
        self.ln_f_b = P("ln_f.bias")
        names = ["ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias",
                 "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"]
        self.layers = nn.ModuleList()
        for l in range(self.L):
            m = nn.Module()
            for n in names:
                setattr(m, n.replace(".", "_"), P(f"h.{l}.{n}"))
            self.layers.append(m)
        self.register_buffer("causal", torch.tril(torch.ones(n_ctx, n_ctx, dtype=torch.bool)), persistent=False)

    def forward(self, input_ids):
        B, T = input_ids.shape
        C, H = self.C, self.H
        dh = C // H
        x = self.wte[input_ids] + self.wpe[:T]
        mask = self.causal[:T, :T]
        neg = torch.tensor(torch.finfo(torch.float32).min)
        for m in self.layers:
            h = F.layer_norm(x, (C,), m.ln_1_weight, m.ln_1_bias, self.eps)
            qkv = h @ m.attn_c_attn_weight + m.attn_c_attn_bias
            q, k, v = qkv.split(C, dim=2)
            q = q.reshape(B, T, H, dh).transpose(1, 2)
            k = k.reshape(B, T, H, dh).transpose(1, 2)
            v = v.reshape(B, T, H, dh).transpose(1, 2)
            att = (q @ k.transpose(2, 3)) * (1.0 / math.sqrt(dh))
            att = torch.where(mask, att, neg)
            att = torch.softmax(att, dim=-1)
            z = (att @ v).transpose(1, 2).reshape(B, T, C)
            x = x + (z @ m.attn_c_proj_weight + m.attn_c_proj_bias)
            h = F.layer_norm(x, (C,), m.ln_2_weight, m.ln_2_bias, self.eps)
            a = h @ m.mlp_c_fc_weight + m.mlp_c_fc_bias
            a = 0.5 * a * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (a + 0.044715 * a * a * a)))  # gelu_new
            x = x + (a @ m.mlp_c_proj_weight + m.mlp_c_proj_bias)
        x = F.layer_norm(x, (C,), self.ln_f_w, self.ln_f_b, self.eps)
        return x @ self.wte.t()


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: export_gpt2_onnx.py MODEL_DIR OUT.onnx")
    model_dir, out = sys.argv[1], sys.argv[2]
    with open(f"{model_dir}/config.json") as f:
        cfg = json.load(f)
    torch.set_num_threads(1)
    model = GPT2(cfg, read_safetensors(f"{model_dir}/model.safetensors")).eval()
    ids = torch.tensor([[i % cfg["vocab_size"] for i in range(7)]], dtype=torch.int64)
    with torch.no_grad():
        torch.onnx.export(
            model, (ids,), out, opset_version=17, input_names=["input_ids"], output_names=["logits"],
            dynamic_axes={"input_ids": {0: "batch", 1: "pos"}, "logits": {0: "batch", 1: "pos"}},
            do_constant_folding=True,
        )
    print(json.dumps({"onnx": out, "torch": torch.__version__, "layers": model.L}))


if __name__ == "__main__":
    main()
