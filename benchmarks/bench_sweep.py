"""Sweep engines: the local engine's throughput against one worker, and each engine's overhead per run.

Run: .venv/bin/python benchmarks/bench_sweep.py [--points 8] [--epochs 100] [--jobs 2] [--no-ray]

1. Throughput on a CPU-bound sweep: ``--points`` grid points (``model.init_gain``) × one seed of a
   small streaming-parity study (train + track each), run by ``run_sweep`` with one worker (in this
   process, one torch thread) and with ``LocalEngine(jobs)`` (worker processes, one thread each).
   Goal (issue 13): ≥ 1.7× one worker on the 2-core CPU. The workers' start-up (spawned processes
   importing torch: seconds, once per sweep) is timed apart and the speed-up also shown without it.
2. Overhead per run: ``--overhead-runs`` jobs that do nothing (``abs``) through ``LocalEngine(jobs)``
   and, when Ray is installed, ``RayEngine`` on a local Ray (start-up timed apart).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, not an installed one

from rnnautomata.engines import LocalEngine
from rnnautomata.sweep import run_sweep


def tiny_study(epochs: int, hidden: int) -> dict:
    return {
        "name": "bench_sweep",
        "task": {"name": "streaming_parity", "train_max_length": 6, "val_length": 20, "val_samples": 32,
                 "test_lengths": [50, 1000], "test_samples": 8},
        "model": {"hidden_size": hidden},
        "train": {"epochs": epochs, "batch_size": 16, "checkpoint_every": max(1, epochs // 10), "early_checkpoints": 4,
                  "eval_every": max(1, epochs // 2)},
        "probe": {"depth": 6},
    }


def sweep_seconds(raw: dict, grid: dict, engine, work: Path) -> float:
    start = time.perf_counter()
    sweep = run_sweep(raw, grid, [0], work, engine=engine, render=False, progress=False)
    elapsed = time.perf_counter() - start
    failed = [r["error"] for r in sweep["runs"] if r["status"] != "complete"]
    if failed:
        raise SystemExit(f"a benchmark run failed: {failed[0]}")
    return elapsed


def overhead(engine, n: int) -> float:
    start = time.perf_counter()
    list(engine.map(abs, list(range(n))))
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=8, help="grid points (one run each)")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--overhead-runs", type=int, default=20)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray engine even where it is installed")
    args = parser.parse_args()

    torch.set_num_threads(1)  # one worker = one process with one thread, like each pool worker
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, torch {torch.__version__}")
    raw = tiny_study(args.epochs, args.hidden)
    grid = {"model.init_gain": [round(0.1 + 0.2 * k, 3) for k in range(args.points)]}
    with tempfile.TemporaryDirectory() as tmp:
        one = sweep_seconds(raw, grid, LocalEngine(1), Path(tmp) / "one")
        many = sweep_seconds(raw, grid, LocalEngine(args.jobs), Path(tmp) / "many")
    start = time.perf_counter()
    list(LocalEngine(args.jobs).map(abs, list(range(args.jobs))))  # start the workers, nothing else
    spawn = time.perf_counter() - start
    print(f"CPU-bound sweep of {args.points} runs (H={args.hidden}, {args.epochs} epochs, train + track each):")
    print(f"  one worker        {one:7.2f} s  {args.points / one:6.3f} runs/s")
    print(f"  local ×{args.jobs:<2}         {many:7.2f} s  {args.points / many:6.3f} runs/s  "
          f"= {one / many:.2f}× one worker (goal ≥ 1.7× on 2 cores)")
    print(f"  local ×{args.jobs:<2} less the workers' start-up ({spawn:.1f} s once per sweep): "
          f"{one / max(many - spawn, 1e-9):.2f}× one worker")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    local = overhead(LocalEngine(args.jobs), args.overhead_runs)
    print(f"overhead per run (a job that does nothing, {args.overhead_runs} jobs):")
    print(f"  local ×{args.jobs:<2}         {1000 * local:8.1f} ms  (spawning {args.jobs} workers included)")
    if args.no_ray:
        return
    try:
        import ray
    except ImportError:
        print("  ray               not installed (pip install 'rnnautomata[ray]')")
        return
    from rnnautomata.engines import RayEngine

    engine = RayEngine(jobs=args.jobs)
    start = time.perf_counter()
    with engine:
        started = time.perf_counter() - start
        list(engine.map(abs, [0]))  # the first task starts the worker processes
        per_run = overhead(engine, args.overhead_runs)
    print(f"  ray (local)       {1000 * per_run:8.1f} ms  (after start-up {started:.1f} s and a first task; "
          f"ray {ray.__version__})")


if __name__ == "__main__":
    main()
