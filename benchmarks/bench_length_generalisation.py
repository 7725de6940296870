"""The length-generalisation protocol of Delétang et al. (2022) for the transformer studies.

Run: python benchmarks/bench_length_generalisation.py [--tasks ...] [--positionals ...] [--seeds 0 1 2]
         [--epochs 20] [--samples 32] [--jobs 2] [--json runs/length_generalisation.json]

Every (task, positional encoding, seed) trains `tasks/<task>_transformer.toml` with the protocol's
overrides (:data:`PROTOCOL`): training strings of every length 1..40 (`task.train_min_length`,
`task.train_max_length`; a seeded sample of `--samples` strings per length, `task.train_set =
"sample"`, since 2^40 strings cannot be enumerated), then scores the final checkpoint on strings of
length 500. The network is causal, so its output after symbol t of a length-500 string is its
output on that string's length-t prefix: the mean accuracy over positions 41..500 of `--strings`
strings is the protocol's mean accuracy over lengths 41..500 (each length weighted alike). The
scored strings are uniformly random ("acc. beyond") and, separately, random walks that never
enter a sink state of the true machine ("live", see bench_transformer_zoo.live_strings), since a
uniformly random long string is almost surely rejected by Tomita 1/2/4/7.

The seeds of one (task, positional) train together as one stacked model (rnnautomata.stacked);
then each seed's folder is tracked (rnnautomata.dynamics.track: the ε rule's states, finiteness,
congruence; the ε-free machine against the truth with the shortest counterexample), with
`probe.depth` (default 8), 64 checking strings of length 50 and 2 refinement rounds.

Scaled to the 2-core CPU (Delétang et al. train 5-layer models for 1,000,000 steps): the shipped
model (1 layer, d_model 16, 2 heads), `--epochs` passes over 40 × `--samples` strings in batches
of 64. The table (`bench_transformer_zoo.print_table`) goes to stdout; docs/transformers.md has
the measured one (72 runs in 1,890 s with the defaults and `--jobs 2`).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_transformer_zoo import POSITIONALS, TASKS, print_table, protocol_study, score_run, summarise  # noqa: E402

TRAIN_LENGTHS = (1, 40)  # Delétang et al.: train on lengths 1..40
TEST_LENGTH = 500  # ... score the mean accuracy over lengths 41..500


def protocol_overrides(epochs: int, samples: int, depth: int) -> list[str]:
    """The study overrides of the protocol (on top of tasks/<task>_transformer.toml)."""
    return [
        f"task.train_min_length={TRAIN_LENGTHS[0]}", f"task.train_max_length={TRAIN_LENGTHS[1]}",
        'task.train_set="sample"', f"task.train_samples={samples}",
        "task.val_length=60", "task.test_lengths=[100]", "task.test_samples=32",
        f"train.epochs={epochs}", f"train.checkpoint_every={max(1, epochs // 2)}", "train.early_checkpoints=0",
        "train.batch_size=64", "train.eval_every=1", "extract.check_strings=64", "extract.refine_rounds=2",
        f"probe.depth={depth}", "extract.check_length=50",
    ]


def run_seeds(task: str, positional: str, seeds: list[int], overrides: list[str], work: str, n_strings: int) -> list[dict]:
    """Train the seeds of one (task, positional) as one stacked model (rnnautomata.stacked), then track
    and score each seed's folder; one row per seed."""
    import torch

    torch.set_num_threads(1)
    from rnnautomata.batched import seed_dir
    from rnnautomata.seeds import train_seeds

    study = protocol_study(task, positional, overrides, TEST_LENGTH, seeds=seeds)
    out = Path(work) / f"{task}_{positional}"
    t0 = time.perf_counter()
    train_seeds(study, out, progress=False)
    return [score_run(seed_dir(out, s), task, positional, s, TEST_LENGTH, n_strings, t0) for s in seeds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=TASKS, choices=TASKS)
    parser.add_argument("--positionals", nargs="+", default=POSITIONALS, choices=POSITIONALS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--samples", type=int, default=32, help="training strings per length 1..40")
    parser.add_argument("--depth", type=int, default=8, help="probe.depth of the tracked machines")
    parser.add_argument("--strings", type=int, default=64, help="scored strings of length 500 (each kind)")
    parser.add_argument("--set", action="append", default=[], help="further study override for every run")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (each on one torch thread)")
    parser.add_argument("--json", default=None, help="also write every run's row here")
    args = parser.parse_args()
    overrides = protocol_overrides(args.epochs, args.samples, args.depth) + args.set
    combos = [(t, p) for t in args.tasks for p in args.positionals]
    print(f"load average {os.getloadavg()[0]:.2f}; {len(combos)} × {len(args.seeds)} seeds (each combination's seeds "
          f"as one stacked model), {args.jobs} at once; overrides {overrides}")
    t0 = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as work, ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_seeds, t, p, args.seeds, overrides, work, args.strings) for t, p in combos]
        for r in (r for f in futures for r in f.result()):
            rows.append(r)
            print(f"  {r['task']:>16} {r['positional']:>10} seed {r['seed']}: {r['seconds']:.1f} s (its seeds' training + "
                  f"its own tracking), loss "
                  f"{r['train_loss']:.3f}, ε-free {r['robust_states']} states, = truth {r['equivalent']}, acc in "
                  f"{r['acc_in']:.3f} beyond {r['acc_beyond']:.3f} (live {r['acc_in_live']:.3f} / "
                  f"{r['acc_beyond_live']:.3f})", flush=True)
    print_table(summarise(rows))
    print(f"{len(rows)} runs in {time.perf_counter() - t0:.0f} s; load average {os.getloadavg()[0]:.2f}")
    if args.json:
        import json

        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"rows": rows, "overrides": overrides}, indent=1))


if __name__ == "__main__":
    main()
