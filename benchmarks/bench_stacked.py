"""Many seeds of a transformer as one stacked model (rnnautomata.stacked) against a plain loop over seeds.

Run: python benchmarks/bench_stacked.py [--study tasks/tomita1_transformer.toml] [--seeds 1 4 16]
         [--steps 30] [--batch 64] [--length 20] [--threads 1] [--device cpu]

For each number of seeds S: S models of the study's transformer (each seed's own init), one Adam
training step = forward, per-seed cross-entropy after every symbol, backward, update, on a (B, T)
batch per seed. "stacked" runs the S seeds as one model (torch.func.vmap over functional_call);
"loop" runs S ordinary models one after another. Prints seed-steps per second of each and the
ratio stacked / loop. With `--device cuda` (or `auto`, which adds cuda when torch sees a GPU) the
same on the GPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnnautomata.batched import per_seed_loss, seed_study  # noqa: E402
from rnnautomata.config import load_study  # noqa: E402
from rnnautomata.data import make_task  # noqa: E402
from rnnautomata.stacked import StackedModel  # noqa: E402
from rnnautomata.train import build_model  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_stacked(models, x, y, steps: int, device) -> float:
    """Seconds per step of S seeds as one stacked model."""
    model = StackedModel(models, device)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for k in range(steps + 3):  # 3 warm-up steps
        if k == 3:
            _sync(device)
            t0 = time.perf_counter()
        out = model.prefix_outputs(x)[:, :, 1:]  # (S, B, T, O)
        loss = per_seed_loss(out, y, "cross_entropy", out.shape[-1]).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return (time.perf_counter() - t0) / steps


def time_loop(models, x, y, steps: int, device) -> float:
    """Seconds per step of S ordinary models trained one after another."""
    models = [m.to(device) for m in models]
    opts = [torch.optim.Adam(m.parameters(), lr=0.01) for m in models]
    for k in range(steps + 3):
        if k == 3:
            _sync(device)
            t0 = time.perf_counter()
        for s, (m, o) in enumerate(zip(models, opts)):
            out = m(x[s])  # (B, T, O)
            loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), y[s].reshape(-1))
            o.zero_grad(set_to_none=True)
            loss.backward()
            o.step()
    _sync(device)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="tasks/tomita1_transformer.toml")
    parser.add_argument("--set", action="append", default=[], help="study override, e.g. model.transformer.d_model=32")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto", help="cpu, cuda, or auto (cpu, and cuda when available)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    study = load_study(args.study, args.set)
    task = make_task(study.task)
    devices = ["cpu", "cuda"] if args.device == "auto" and torch.cuda.is_available() else \
        ["cpu"] if args.device == "auto" else [args.device]
    t = study.model.transformer
    print(f"load average {os.getloadavg()[0]:.2f}; {args.threads} thread(s); {study.name}: {t.n_layers} layer(s), "
          f"d_model {t.d_model}, {t.n_heads} heads, {t.positional}; batch {args.batch} × length {args.length}")
    if "cuda" not in devices:
        print("no CUDA device here: CPU only")
    print(f"{'device':>6} {'seeds':>5} {'stacked seed-steps/s':>21} {'loop seed-steps/s':>18} {'stacked / loop':>14}")
    for name in devices:
        device = torch.device(name)
        for n in args.seeds:
            gen = torch.Generator().manual_seed(n)
            x = torch.randint(0, task.n_symbols, (n, args.batch, args.length), generator=gen).to(device)  # (S, B, T)
            y = torch.randint(0, task.n_outputs, (n, args.batch, args.length), generator=gen).to(device)  # (S, B, T)
            models = [build_model(seed_study(study, s), task) for s in range(n)]
            stacked = time_stacked(models, x, y, args.steps, device)
            loop = time_loop(models, x, y, args.steps, device)
            print(f"{name:>6} {n:>5} {n / stacked:>21.0f} {n / loop:>18.0f} {loop / stacked:>14.2f}", flush=True)


if __name__ == "__main__":
    main()
