"""Time probe + merge + extract of a transformer checkpoint, and the one-pass probe against a pass per prefix.

Run: .venv/bin/python benchmarks/bench_transformer.py [--study tasks/tomita1_transformer.toml] [--depth 12]

Trains the study (its `--set` overrides applied) into a temporary folder, then, for every
checkpoint, times the one-pass probe of all prefixes up to `--depth`, and the ε-free extraction
(consistent merging, extraction, the refinement checks) on those states. The baseline is the naive
probe: one forward pass per prefix (batched by length). Goal (issue 11): ≤ 1 s per checkpoint at
depth 12 on the 2-core CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnnautomata.config import load_study  # noqa: E402
from rnnautomata.probe import prefix_tree, probe  # noqa: E402
from rnnautomata.robust import RefineBudget, extract_robust  # noqa: E402
from rnnautomata.train import load_model, train  # noqa: E402


def naive_probe(model, tree) -> np.ndarray:
    """(N, S) states, one forward pass per prefix, prefixes of one length in one batch."""
    matrix = tree.symbols_matrix()  # (N, D)
    states = np.empty((tree.n_nodes, model.state_size), dtype=np.float32)
    with torch.no_grad():
        for d in range(tree.max_depth + 1):
            nodes = tree.level(d)
            x = torch.as_tensor(matrix[nodes, :d])  # (n_d, d)
            states[nodes] = model.prefix_states(x)[:, -1].numpy()  # (n_d, S)
    return states


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="tasks/tomita1_transformer.toml")
    parser.add_argument("--set", action="append", default=[], help="study override, e.g. train.epochs=5")
    parser.add_argument("--depth", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    study = load_study(args.study, args.set)
    print(f"load average {os.getloadavg()[0]:.2f}; study {study.name}; probe depth {args.depth}")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = train(study, tmp, progress=False)
        print(f"training: {time.perf_counter() - t0:.2f} s, {len(result['steps'])} checkpoints")
        tree = prefix_tree(2, args.depth)
        cfg = study.extract
        budget = RefineBudget(cfg.refine_rounds, cfg.check_strings, cfg.check_length, cfg.tolerance)
        rows = []
        for step in result["steps"]:
            model, info = load_model(tmp, step)
            task = info["task"]
            t0 = time.perf_counter()
            pr = probe(model, tree)
            t_probe = time.perf_counter() - t0
            t0 = time.perf_counter()
            naive = naive_probe(model, tree)
            t_naive = time.perf_counter() - t0
            assert np.allclose(naive, pr.states, atol=1e-4)
            t0 = time.perf_counter()
            r = extract_robust(model, tree, task.alphabet, task.outputs, probe_result=pr, budget=budget,
                               rng=np.random.default_rng(step))
            t_extract = time.perf_counter() - t0
            rows.append((step, t_probe, t_naive, t_extract, r.machine.n_states))
        print(f"{'step':>6} {'probe s':>8} {'naive s':>8} {'extract s':>9} {'total s':>8} {'states':>6}")
        for step, tp, tn, te, n in rows:
            print(f"{step:6d} {tp:8.3f} {tn:8.3f} {te:9.3f} {tp + te:8.3f} {n:6d}")
        worst = max(tp + te for _, tp, _, te, _ in rows)
        speedup = np.median([tn / tp for _, tp, tn, _, _ in rows])
        print(f"{tree.n_nodes} prefixes; worst probe + extract per checkpoint {worst:.3f} s (goal ≤ 1 s); "
              f"one-pass probe {speedup:.1f}× the pass-per-length baseline (median)")


if __name__ == "__main__":
    main()
