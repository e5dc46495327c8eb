#!/usr/bin/env python3
"""PyTorch eager GPT-2 forwards, one at a time and batched: the reference point for a sweep.

    python3 torch_eager.py (MODEL_DIR | --random) [--layers N] [--device cuda|cpu]
                           [--pos T] [--rows R] [--reps N] [--threads N]

The same short re-implementation the ONNX export uses (export_gpt2_onnx.py), in eager mode, no
autograd. Times, in one run, on one device:
  forward:     batch 1 at T positions, all logits on the host (median and min over reps);
  sequential:  R batch-1 forwards one after another, each waited for and its last position's
               logits on the host: what a sweep costs when every patched run is its own forward
               (TransformerLens' loop, without the hooks);
  batched:     one forward of R rows at T positions, last position's logits on the host: the
               same work packed into the batch.
Prints one JSON object. `--random` builds GPT-2-small-shaped weights (12 layers, 12 heads,
d_model 768, vocab 50257; fixed seed) in torch, so no model folder is needed on a GPU box.
Defaults: cuda when torch sees one, T 15, R 180 (the 12 x 15 resid_pre sweep), 10 reps.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_gpt2_onnx import GPT2, read_safetensors  # noqa: E402


def random_gpt2(layers):
    """GPT-2-small-shaped random weights under the names export_gpt2_onnx.GPT2 reads."""
    cfg = {"n_embd": 768, "n_head": 12, "n_layer": layers, "n_positions": 1024, "vocab_size": 50257, "layer_norm_epsilon": 1e-5}
    g = torch.Generator().manual_seed(1)
    C, V = cfg["n_embd"], cfg["vocab_size"]
    r = lambda *shape: torch.randn(*shape, generator=g) * 0.02
    t = {"wte.weight": r(V, C), "wpe.weight": r(1024, C), "ln_f.weight": torch.ones(C), "ln_f.bias": torch.zeros(C)}
    for l in range(layers):
        p = f"h.{l}."
        t.update({
            p + "ln_1.weight": torch.ones(C), p + "ln_1.bias": torch.zeros(C),
            p + "attn.c_attn.weight": r(C, 3 * C), p + "attn.c_attn.bias": torch.zeros(3 * C),
            p + "attn.c_proj.weight": r(C, C), p + "attn.c_proj.bias": torch.zeros(C),
            p + "ln_2.weight": torch.ones(C), p + "ln_2.bias": torch.zeros(C),
            p + "mlp.c_fc.weight": r(C, 4 * C), p + "mlp.c_fc.bias": torch.zeros(4 * C),
            p + "mlp.c_proj.weight": r(4 * C, C), p + "mlp.c_proj.bias": torch.zeros(C),
        })
    return cfg, t


def timed(fn, sync, reps):
    fn()  # warm-up: allocator, kernels chosen
    sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": round(statistics.median(times), 3), "min_ms": round(min(times), 3), "reps": reps}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir", nargs="?")
    ap.add_argument("--random", action="store_true")
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--pos", type=int, default=15)
    ap.add_argument("--rows", type=int, default=180)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's own)")
    a = ap.parse_args()
    if bool(a.model_dir) == a.random:
        ap.error("give exactly one of MODEL_DIR and --random")
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.random:
        cfg, tensors = random_gpt2(a.layers)
    else:
        with open(os.path.join(a.model_dir, "config.json")) as f:
            cfg = json.load(f)
        tensors = read_safetensors(os.path.join(a.model_dir, "model.safetensors"))
    if a.pos > cfg.get("n_positions", cfg.get("n_ctx")):
        ap.error(f"--pos {a.pos} is longer than the model's context")
    dev = torch.device(a.device)
    model = GPT2(cfg, tensors).eval().to(dev)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    ids = torch.tensor([[(i * 7919 + 13) % cfg["vocab_size"] for i in range(a.pos)]], dtype=torch.int64, device=dev)
    rows = ids.expand(a.rows, a.pos).contiguous()

    with torch.inference_mode():
        forward = timed(lambda: model(ids).cpu(), sync, a.reps)

        def sequential():
            for _ in range(a.rows):
                model(ids)[:, -1].cpu()

        seq = timed(sequential, sync, max(1, a.reps // 5))
        batched = timed(lambda: model(rows)[:, -1].cpu(), sync, a.reps)

    print(json.dumps({
        "engine": f"PyTorch {torch.__version__} eager",
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu, {torch.get_num_threads()} threads",
        "layers": model.L, "pos": a.pos, "rows": a.rows,
        "forward": forward,
        "sequential": seq,
        "batched": batched,
        "sequential_over_batched": round(seq["median_ms"] / batched["median_ms"], 2),
    }, indent=1))


if __name__ == "__main__":
    main()
