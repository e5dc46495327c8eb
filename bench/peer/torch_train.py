#!/usr/bin/env python3
"""PyTorch eager training steps per second, the peer of `npm run bench`'s training section.

    python3 torch_train.py [--threads N] [--steps N] [--only tms|transformer]

Times, on the CPU (no GPU is used even if torch sees one), each after 3 untimed warm-up steps:
  tms_5_2      Toy Models of Superposition, 5 features in 2 dimensions, 32 instances, batch 1024
  tms_400_30   400 features in 30 dimensions, 16 instances, batch 1024
               (both: features drawn with torch.rand each step, ReLU(W^T W x + b), importance
               0.9^i, importance-weighted MSE summed over instances, AdamW lr 1e-3: the paper's
               setup, as Patchbay's ToyModel runs it)
  transformer  a 2-layer attention-only GPT-2 (d_model 64, 4 heads, vocab 256, n_ctx 48: the
               shape of induction-attn-2l), batch 64 x 48 tokens, cross-entropy on every
               next-token prediction, AdamW (betas 0.9 / 0.98, weight decay 0.01) after clipping
               to norm 1; token batches drawn beforehand, so only the step is timed
Each workload runs with 1 thread and with torch's default (all cores), and the faster counts:
tiny steps are dominated by dispatch overhead, where a second thread only adds synchronisation,
and a busy core slows a 2-thread pool far more than it slows one thread.
Prints one JSON object: steps per second for each (the best, and both thread counts).
"""
import argparse, json, math, time
import torch


def tms(F, H, I, B, steps):
    torch.manual_seed(0)
    W = torch.nn.init.xavier_normal_(torch.empty(I, F, H)).requires_grad_(True)
    b = torch.zeros(I, F, requires_grad=True)
    imp = 0.9 ** torch.arange(F, dtype=torch.float32)
    p = 0.5 ** (torch.arange(I, dtype=torch.float32) / 3)
    opt = torch.optim.AdamW([W, b], lr=1e-3)

    def step():
        x = torch.where(torch.rand(B, I, F) <= p[None, :, None], torch.rand(B, I, F), torch.zeros(()))
        h = torch.einsum("bif,ifh->bih", x, W)
        y = torch.relu(torch.einsum("bih,ifh->bif", h, W) + b)
        loss = (imp * (x - y) ** 2).mean((0, 2)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return timed(step, steps)


def transformer(steps, B=64, T=48, V=256, D=64, NH=4, L=2):
    torch.manual_seed(0)
    dh = D // NH
    P = {"wte": torch.randn(V, D) * 0.02, "wpe": torch.randn(T, D) * 0.02, "lnf_w": torch.ones(D), "lnf_b": torch.zeros(D)}
    for l in range(L):
        P.update({f"{l}.ln_w": torch.ones(D), f"{l}.ln_b": torch.zeros(D), f"{l}.qkv_w": torch.randn(D, 3 * D) * 0.02,
                  f"{l}.qkv_b": torch.zeros(3 * D), f"{l}.o_w": torch.randn(D, D) * 0.01, f"{l}.o_b": torch.zeros(D)})
    for v in P.values():
        v.requires_grad_(True)
    opt = torch.optim.AdamW(list(P.values()), lr=1e-3, betas=(0.9, 0.98), weight_decay=0.01)
    mask = torch.full((T, T), float("-inf")).triu(1)
    batches = [torch.randint(1, V, (B, T)) for _ in range(8)]
    for ids in batches:
        ids[:, 0] = 0
    k = [0]

    def step():
        ids = batches[k[0] % len(batches)]
        k[0] += 1
        x = P["wte"][ids] + P["wpe"][:T]
        for l in range(L):
            a = torch.nn.functional.layer_norm(x, (D,), P[f"{l}.ln_w"], P[f"{l}.ln_b"], 1e-5)
            q, kk, v = (a @ P[f"{l}.qkv_w"] + P[f"{l}.qkv_b"]).split(D, -1)
            q, kk, v = (t.view(B, T, NH, dh).transpose(1, 2) for t in (q, kk, v))
            att = torch.softmax(q @ kk.transpose(-1, -2) / math.sqrt(dh) + mask, -1)
            z = (att @ v).transpose(1, 2).reshape(B, T, D)
            x = x + z @ P[f"{l}.o_w"] + P[f"{l}.o_b"]
        x = torch.nn.functional.layer_norm(x, (D,), P["lnf_w"], P["lnf_b"], 1e-5)
        logits = x @ P["wte"].T
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(P.values()), 1.0)
        opt.step()
    return timed(step, steps)


def timed(step, steps):
    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    s = time.perf_counter() - t0
    return {"steps": steps, "seconds": round(s, 3), "steps_per_s": round(steps / s, 2)}


def best_of_threads(run, threads):
    """Runs `run` at each thread count; returns the faster result with both rates."""
    results = {}
    for n in threads:
        torch.set_num_threads(n)
        results[n] = run()
    best = max(results.values(), key=lambda r: r["steps_per_s"])
    return {**best, "by_threads": {str(n): r["steps_per_s"] for n, r in results.items()}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=0, help="only this many torch threads (default: 1 and all cores, the faster counts)")
    ap.add_argument("--steps", type=int, default=0, help="timed steps (default: per workload)")
    ap.add_argument("--only", choices=["tms", "transformer"])
    a = ap.parse_args()
    cores = torch.get_num_threads()
    threads = [a.threads] if a.threads else sorted({1, cores})
    out = {"torch": torch.__version__, "threads_tried": threads, "device": "cpu"}
    if a.only in (None, "tms"):
        out["tms_5_2"] = best_of_threads(lambda: tms(5, 2, 32, 1024, a.steps or 100), threads)
        out["tms_400_30"] = best_of_threads(lambda: tms(400, 30, 16, 1024, a.steps or 10), threads)
    if a.only in (None, "transformer"):
        out["transformer"] = best_of_threads(lambda: transformer(a.steps or 20), threads)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
