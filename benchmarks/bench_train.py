"""Training throughput: many seeds as one batched model vs. a plain single-seed torch.nn.RNN loop.

Run: .venv/bin/python benchmarks/bench_train.py [--device cuda] [--seeds 1 8 64 256 1024] [--threads N]

Task: streaming parity, H = 128, batch 128, strings of length T = 10, MSE on the last output,
SGD. One *model-step* is one SGD step of one seed's model, so a batched step over n seeds counts n.

- baseline ("plain nn.RNN loop"): ``torch.nn.RNN(relu) + torch.nn.Linear``, one-hot input, the
  textbook loop (forward, loss, zero_grad, backward, step), one seed;
- ours: :class:`rnnautomata.batched.BatchedRecurrent` with n seeds, the step train_seeds takes
  (per-seed batches, loss = sum over seeds of each seed's mean loss, one SGD step for all).

Each configuration runs for at least ``--seconds`` (after warm-up steps) and reports the mean.
Goals (issue 5): on the CPU, 1 seed no slower than the plain loop; on one H100, >= 200x.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from torch import nn
from torch.nn import functional as F

from rnnautomata.batched import BatchedRecurrent, per_seed_loss
from rnnautomata.config import ModelConfig
from rnnautomata.models import build_recurrent

H, BATCH, T, A, O = 128, 128, 10, 2, 2  # noqa: E741 (O: outputs, the shape letter)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _data(n: int, n_batches: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, A, (n_batches, n, BATCH, T), generator=g)  # (K, n, B, T)
    y = x.sum(-1) % 2  # (K, n, B): parity after the last bit
    return x.to(device), y.to(device)


def _timed(step, n_models: int, device: torch.device, seconds: float, warmup: int = 3) -> tuple[float, int]:
    """Model-steps per second of ``step(k)`` and the number of timed steps."""
    for k in range(warmup):
        step(k)
    _sync(device)
    k, start = 0, time.perf_counter()
    while True:
        step(k)
        k += 1
        if k >= 3 and k % 3 == 0:
            _sync(device)
            if time.perf_counter() - start >= seconds:
                break
    elapsed = time.perf_counter() - start
    return n_models * k / elapsed, k


def plain_rnn(device: torch.device, seconds: float) -> tuple[float, int]:
    """The named baseline: a single-seed torch.nn.RNN + Linear SGD loop."""
    torch.manual_seed(0)
    rnn = nn.RNN(A, H, nonlinearity="relu", batch_first=True).to(device)
    head = nn.Linear(H, O).to(device)
    opt = torch.optim.SGD(list(rnn.parameters()) + list(head.parameters()), lr=0.02)
    x, y = _data(1, 8, device)
    xs = F.one_hot(x[:, 0], A).float()  # (K, B, T, A)
    targets = F.one_hot(y[:, 0], O).float()  # (K, B, O)
    h0 = torch.ones(1, BATCH, H, device=device)

    def step(k: int) -> None:
        out, _ = rnn(xs[k % 8], h0)  # (B, T, H)
        loss = F.mse_loss(head(out[:, -1]), targets[k % 8])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return _timed(step, 1, device, seconds)


def batched(n: int, device: torch.device, seconds: float) -> tuple[float, int]:
    cfg = ModelConfig(arch="elman", hidden_size=H, nonlinearity="relu")
    models = [build_recurrent(cfg, A, O, torch.Generator().manual_seed(s)) for s in range(n)]
    model = BatchedRecurrent(models).to(device)
    del models
    opt = torch.optim.SGD(model.ordered_parameters(), lr=0.02)
    x, y = _data(n, 2, device)

    def step(k: int) -> None:
        out = model.forward_last(x[k % 2])  # (n, B, O)
        loss = per_seed_loss(out, y[k % 2], "mse", O).sum()  # sum of per-seed means
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return _timed(step, n, device, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 8, 64, 256, 1024])
    parser.add_argument("--seconds", type=float, default=3.0, help="minimum timed seconds per configuration")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats (best kept), seeds <= 64")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    print(f"# training throughput, streaming parity H={H} batch={BATCH} T={T}; device {device} ({name}); "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load avg {os.getloadavg()[0]:.1f}")
    # a shared CPU is noisy: interleave the configurations and keep each one's best of --repeats
    best: dict = {}
    for r in range(args.repeats):
        runs = [("plain", 0)] + [("batched", n) for n in args.seeds if r == 0 or n <= 64]
        for kind, n in runs:
            if (kind, n) in best and best[(kind, n)] is None:
                continue
            try:
                rate, k = plain_rnn(device, args.seconds) if kind == "plain" else batched(n, device, args.seconds)
            except (RuntimeError, MemoryError) as err:  # out of memory: report, skip later repeats
                print(f"# batched, {n} seeds failed: {str(err).splitlines()[0][:80]}")
                best[(kind, n)] = None
                continue
            if best.get((kind, n)) is None or rate > best[(kind, n)][0]:
                best[(kind, n)] = (rate, k)
    base = best[("plain", 0)][0]
    print(f"{'configuration':<34s} {'model-steps/s':>14s} {'timed steps':>12s} {'vs plain':>9s}")
    print(f"{'plain nn.RNN loop (1 seed)':<34s} {base:14.1f} {best[('plain', 0)][1]:12d} {1.0:8.2f}x")
    for n in args.seeds:
        if best.get(("batched", n)) is None:
            print(f"{f'batched, {n} seeds':<34s} {'failed (see above)':>14s}")
            continue
        rate, k = best[("batched", n)]
        print(f"{f'batched, {n} seeds':<34s} {rate:14.1f} {k:12d} {rate / base:8.2f}x", flush=True)
    print(f"# best of {args.repeats} interleaved repeats for <= 64 seeds, one run above")
    print(f"# load avg after: {os.getloadavg()[0]:.1f} (shared CPU: compare ratios within one run)")


if __name__ == "__main__":
    main()
