"""The transformer study table: task × positional encoding × seeds → states, finiteness, congruence,
length generalisation, and the ε-free machine against the truth.

Run: python benchmarks/bench_transformer_zoo.py [--tasks tomita1 ...] [--positionals none rope ...]
         [--seeds 0 1 2] [--set train.epochs=40] [--jobs 2] [--json runs/transformer_zoo.json]

For every combination: train `tasks/<task>_transformer.toml` with `model.transformer.positional`
and `seed` overridden (and `--set`), track its checkpoints (rnnautomata.dynamics.track), and score
the final checkpoint:

- the ε rule's final machine: merged states, minimised states, finite, congruence
  (rnnautomata.congruence);
- the ε-free machine: states, congruence, equivalent to the task's machine or the shortest
  counterexample;
- the length-generalisation protocol of Delétang et al. (2022), scaled down: training sees every
  string of length 1..L (L = task.train_max_length, 10 in the shipped files); the network reads
  `--strings` random strings of `--test-length` symbols, and the accuracy of its output after every
  symbol is averaged over positions 1..L ("in") and L+1..test-length ("beyond"). (Delétang et al.:
  train 1-40, score lengths 41-500.)

One row per (task, positional) aggregates the seeds: per-seed values joined by "/", accuracies as
the mean over seeds. Each run uses one torch thread; `--jobs` runs that many at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
TASKS = ["streaming_parity", "mod3_counting", "tomita1", "tomita2", "tomita4", "tomita7"]
POSITIONALS = ["none", "learned", "sinusoidal", "rope"]


def protocol_study(task: str, positional: str, overrides: list[str], test_length: int, seeds: list[int] | None = None,
                   seed: int = 0):
    """`tasks/<task>_transformer.toml` with the positional encoding, seed(s) and overrides set (a learned
    positional table long enough for the scored strings)."""
    from rnnautomata.config import load_study

    sets = [f'model.transformer.positional="{positional}"', f"seed={seed}", *overrides]
    if seeds is not None:
        sets.append(f"seeds={list(seeds)}")
    if positional == "learned":
        sets.append(f"model.transformer.max_length={max(64, test_length)}")
    return load_study(ROOT / "tasks" / f"{task}_transformer.toml", sets)


def run_one(task: str, positional: str, seed: int, overrides: list[str], work: str, test_length: int,
            n_strings: int, lstar: bool = False) -> dict:
    """Train, track and score one (task, positional, seed); returns one row of the table."""
    import torch

    torch.set_num_threads(1)
    from rnnautomata.train import train

    study = protocol_study(task, positional, overrides, test_length, seed=seed)
    out = Path(work) / f"{task}_{positional}_{seed}"
    t0 = time.perf_counter()
    train(study, out, progress=False)
    return score_run(out, task, positional, seed, test_length, n_strings, t0, lstar)


def score_run(out: Path, task: str, positional: str, seed: int, test_length: int, n_strings: int, t0: float,
              lstar: bool = False) -> dict:
    """Track a trained run folder and score its final checkpoint: one row of the table. With
    `lstar`, also AALpy's L* on the final network against its ε-free machine (rnnautomata.lstar.cross_check)."""
    from rnnautomata.dynamics import track
    from rnnautomata.extract import network_outputs
    from rnnautomata.train import load_model

    dyn = track(out, progress=False)
    seconds = time.perf_counter() - t0
    model, info = load_model(out)
    study = info["study"]
    truth = info["task"].machine
    rng = np.random.default_rng((seed, 7_000_003))
    symbols = rng.integers(0, truth.n_symbols, size=(n_strings, test_length))  # (B, T)
    correct = network_outputs(model, symbols) == truth.output_sequence(symbols)  # (B, T) after each symbol
    live = live_strings(truth, rng, n_strings, test_length)  # (B, T) never entering a sink state
    correct_live = network_outputs(model, live) == truth.output_sequence(live)  # (B, T)
    L = study.task.train_max_length
    last, final = dyn["checkpoints"][-1], dyn["final"]
    checked = {}
    if lstar:
        from rnnautomata.automata import Machine
        from rnnautomata.lstar import cross_check
        from rnnautomata.runs import RunDir

        white = Machine.load(RunDir(out).robust_automaton_path(final["step"]))
        c = cross_check(model, white, oracle="state_prefix", oracle_params={"walks_per_state": 50, "walk_len": 15},
                        max_seconds=60, max_learning_rounds=10)
        checked = {"lstar_states": c.lstar.n_states, "lstar_agrees": c.agree,
                   "lstar_disagreement": None if c.agree else "".join(c.shortest_disagreement),
                   "lstar_network_sides_with": c.network_sides_with,
                   "lstar_equivalent_to_truth": c.lstar.machine.equivalent(truth)[0]}
    return {**checked,
        "task": task, "positional": positional, "seed": seed, "seconds": seconds,
        "train_loss": last["train_loss"], "epsilon_states": last["n_states"], "epsilon_states_min": last["n_states_min"],
        "finite": last["finite"], "congruence": last["congruence"],
        "robust_states": last["robust"]["n_states"], "robust_congruence": last["robust"]["congruence"],
        "robust_finite": last["robust"]["finite"], "agreement": last["robust"]["agreement"],
        "equivalent": final["equivalent_to_truth"], "counterexample": final["counterexample"],
        "first_equivalent_step": (dyn.get("verdicts") or {}).get("first_equivalent_step"),
        "acc_in": float(correct[:, :L].mean()), "acc_beyond": float(correct[:, L:].mean()),
        "acc_in_live": float(correct_live[:, :L].mean()), "acc_beyond_live": float(correct_live[:, L:].mean()),
        "train_max_length": L, "test_length": test_length,
    }


def live_strings(machine, rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    """(n, length) random strings that never enter a sink state of `machine` (a state every symbol
    leaves in place): at each step a symbol is drawn uniformly among those that keep the walk out of
    the sinks (any symbol if none does). On Tomita 1/2/4/7 a uniformly random long string is almost
    surely in the dead state, so its per-position accuracy says little; these strings keep the
    accept/reject question open. For parity and mod-k (no sink) they are uniform strings."""
    trans = np.asarray(machine.transitions)  # (Q, A)
    sink = (trans == np.arange(len(trans))[:, None]).all(1)  # (Q,)
    out = np.empty((n, length), dtype=np.int64)
    state = np.full(n, machine.start, dtype=np.int64)  # (n,)
    for t in range(length):
        ok = ~sink[trans[state]]  # (n, A) symbols that keep each walk live
        ok[~ok.any(1)] = True
        weights = ok / ok.sum(1, keepdims=True)  # (n, A)
        out[:, t] = (weights.cumsum(1) < rng.random((n, 1))).sum(1)  # (n,) one draw per row
        state = trans[state, out[:, t]]
    return out


def summarise(rows: list[dict]) -> list[dict]:
    """One row per (task, positional): per-seed values joined, accuracies averaged."""
    out = []
    keys = sorted({(r["task"], r["positional"]) for r in rows}, key=lambda k: (TASKS.index(k[0]) if k[0] in TASKS else 99,
                                                                              POSITIONALS.index(k[1])))
    for task, pos in keys:
        rs = sorted((r for r in rows if r["task"] == task and r["positional"] == pos), key=lambda r: r["seed"])

        def join(key, fmt="{}"):
            return "/".join(fmt.format(r[key]) for r in rs)

        cex = [r["counterexample"] for r in rs if not r["equivalent"]]
        out.append({
            "task": task, "positional": pos, "seeds": len(rs),
            "states": join("epsilon_states"), "min": join("epsilon_states_min"),
            "finite": sum(r["finite"] for r in rs), "congruence": join("congruence", "{:.2f}"),
            "robust": join("robust_states"), "robust_congruence": join("robust_congruence", "{:.2f}"),
            "acc_in": float(np.mean([r["acc_in"] for r in rs])), "acc_beyond": float(np.mean([r["acc_beyond"] for r in rs])),
            "acc_in_live": float(np.mean([r["acc_in_live"] for r in rs])),
            "acc_beyond_live": float(np.mean([r["acc_beyond_live"] for r in rs])),
            "equivalent": sum(r["equivalent"] for r in rs),
            "shortest_counterexample": min(cex, key=lambda w: (len(w), w)) if cex else None,
        })
    return out


def print_table(summary: list[dict]) -> None:
    print("| task | positional | seeds | ε states → min | finite | congruence (ε) | ε-free states | congruence (ε-free) "
          "| acc. in (1–L) | acc. beyond | live: in / beyond | ε-free = truth | shortest counterexample |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in summary:
        cex = "—" if s["shortest_counterexample"] is None else f"`{s['shortest_counterexample'] or 'ε'}`"
        print(f"| {s['task']} | {s['positional']} | {s['seeds']} | {s['states']} → {s['min']} | {s['finite']}/{s['seeds']} "
              f"| {s['congruence']} | {s['robust']} | {s['robust_congruence']} | {s['acc_in']:.3f} | {s['acc_beyond']:.3f} "
              f"| {s['acc_in_live']:.3f} / {s['acc_beyond_live']:.3f} | {s['equivalent']}/{s['seeds']} | {cex} |")


def print_lstar(rows: list[dict]) -> None:
    """One line per run: L* (black box) against the ε-free machine (white box)."""
    print("| task | positional | seed | ε-free states | ε-free = truth | L* states | L* = truth | L* = ε-free | "
          "shortest disagreement | network sides with |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cex = "—" if r["lstar_agrees"] else f"`{r['lstar_disagreement'] or 'ε'}`"
        print(f"| {r['task']} | {r['positional']} | {r['seed']} | {r['robust_states']} | {'yes' if r['equivalent'] else 'no'} "
              f"| {r['lstar_states']} | {'yes' if r['lstar_equivalent_to_truth'] else 'no'} "
              f"| {'yes' if r['lstar_agrees'] else 'no'} | {cex} | {r['lstar_network_sides_with'] or '—'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=TASKS, choices=TASKS)
    parser.add_argument("--positionals", nargs="+", default=POSITIONALS, choices=POSITIONALS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--set", action="append", default=[], help="study override for every run, e.g. train.epochs=40")
    parser.add_argument("--test-length", type=int, default=50, help="length of the scored strings")
    parser.add_argument("--strings", type=int, default=256, help="scored strings per run")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (each on one torch thread)")
    parser.add_argument("--work", default=None, help="folder for the runs (default: a temporary one)")
    parser.add_argument("--json", default=None, help="also write every run's row here")
    parser.add_argument("--lstar", action="store_true", help="also cross-check each final network with L* (AALpy)")
    args = parser.parse_args()
    combos = [(t, p, s) for t in args.tasks for p in args.positionals for s in args.seeds]
    print(f"load average {os.getloadavg()[0]:.2f}; {len(combos)} runs, {args.jobs} at once; overrides {args.set}")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or tmp
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(run_one, t, p, s, args.set, work, args.test_length, args.strings, args.lstar)
                       for t, p, s in combos]
            rows = []
            for f in futures:
                r = f.result()
                rows.append(r)
                print(f"  {r['task']:>16} {r['positional']:>10} seed {r['seed']}: {r['seconds']:.1f} s, ε-free "
                      f"{r['robust_states']} states, = truth {r['equivalent']}, acc in {r['acc_in']:.3f} "
                      f"beyond {r['acc_beyond']:.3f}", flush=True)
    summary = summarise(rows)
    print_table(summary)
    if args.lstar:
        print_lstar(rows)
    print(f"{len(rows)} runs in {time.perf_counter() - t0:.0f} s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"rows": rows, "summary": summary, "overrides": args.set}, indent=1))


if __name__ == "__main__":
    main()
