"""A small synthetic but valid automata run directory, for the render and report tests.

It tells streaming parity's story without training anything: the machines come from the real
extraction code (``extract_machine`` on the full prefix tree of depth ``depth``) applied to
hand-made partitions of the prefixes, and dynamics.json from the real ``dynamics`` helpers.

Phases over the checkpoints (fractions of ``n_checkpoints``):
- initial (first 10%): prefixes merged by parity, the network outputs 0 everywhere; finite.
- tree (to 40%): prefixes up to depth g are all distinct (g grows to ``depth``), deeper ones
  merged by (depth, parity); open at the deepest level, so not finite.
- merging (to 70%): the same with g falling back to 1.
- finite (the rest): prefixes merged by parity: the 2-state parity machine; accuracy 100%.

Written: study.toml, manifest.json, metrics.jsonl (``eval/acc_len10000`` only on every 5th line),
automata/step_XXXXXX.json, dynamics.json. No weights (checkpoints/ stays empty).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rnnautomata.config import study_from_dict, study_to_toml
from rnnautomata.dynamics import finite_from, merge_events, phases, successor_map
from rnnautomata.extract import extract_machine
from rnnautomata.probe import ProbeResult, prefix_tree
from rnnautomata.runs import RunDir, atomic_write_json, atomic_write_text

__all__ = ["write_synthetic_run", "synthetic_dynamics"]

STEPS_PER_EPOCH = 21


def _study_raw(name: str, depth: int) -> dict:
    return {
        "name": name,
        "seed": 0,
        "task": {"name": "streaming_parity", "train_max_length": depth, "val_length": 50,
                 "val_samples": 16, "test_lengths": [100, 1000, 10000], "test_samples": 4},
        "model": {"hidden_size": 16},
        "train": {"epochs": 10, "batch_size": 8, "checkpoint_every": 1, "early_checkpoints": 2},
        "probe": {"depth": depth},
    }


def _labels(tree, parity: np.ndarray, phase: str, g: int) -> np.ndarray:
    """A partition of the prefixes: (N,) cluster ids."""
    if phase in ("initial", "finite"):
        return parity.copy()
    ids = np.arange(tree.n_nodes)
    tail = tree.n_nodes + 2 * tree.depth + parity  # merged by (depth, parity) beyond depth g
    return np.where(tree.depth <= g, ids, tail)


def _schedule(i: int, n: int, depth: int) -> tuple[str, int]:
    """Phase name and distinct depth g of checkpoint i of n."""
    f = i / max(n - 1, 1)
    if f < 0.1:
        return "initial", 0
    if f < 0.4:
        return "tree", int(round((f - 0.1) / 0.3 * depth))
    if f < 0.7:
        return "merging", max(1, int(round((0.7 - f) / 0.3 * depth)))
    return "finite", 0


def write_synthetic_run(root: str | Path, n_checkpoints: int = 40, depth: int = 6,
                        name: str = "synthetic", step_every: int = 25) -> Path:
    """Write the run directory ``root`` and return its path.

    Parameters
    ----------
    n_checkpoints : int
        Checkpoints at steps ``0, step_every, 2 * step_every, ...``.
    depth : int
        Probe depth: the tree phase peaks at ``2 ** (depth + 1) - 1`` states.
    """
    root = Path(root)
    run = RunDir(root)
    root.mkdir(parents=True, exist_ok=True)
    run.automata_dir.mkdir(exist_ok=True)
    run.checkpoints_dir.mkdir(exist_ok=True)
    atomic_write_text(run.study_path, study_to_toml(study_from_dict(_study_raw(name, depth))))

    tree = prefix_tree(2, depth)
    parity = np.array([sum(tree.string(i)) % 2 for i in range(tree.n_nodes)], dtype=np.int64)
    states = np.zeros((tree.n_nodes, 1), dtype=np.float32)
    steps = [i * step_every for i in range(n_checkpoints)]
    checkpoints, metrics = [], []
    prev_labels, prev_n = None, 0
    for i, step in enumerate(steps):
        phase, g = _schedule(i, n_checkpoints, depth)
        outputs = np.zeros_like(parity) if phase == "initial" else parity
        ext = extract_machine(ProbeResult(tree, states, outputs), _labels(tree, parity, phase, g),
                              ("0", "1"), ("0", "1"))
        f = i / max(n_checkpoints - 1, 1)
        train_loss = 0.5 if f < 0.1 else 0.25 if f < 0.4 else 0.25 * 10 ** (-3 * (f - 0.4) / 0.3) if f < 0.7 else 2e-4
        val_loss = 0.5 if f < 0.6 else 0.5 * 10 ** (-3 * (f - 0.6) / 0.1) if f < 0.7 else 4e-4
        acc = 1.0 if phase == "finite" else 0.5 + 0.02 * (i % 3)
        record = {"step": step, "epoch": step / STEPS_PER_EPOCH, "train/loss": train_loss, "val/loss": val_loss,
                  "eval/acc_len100": acc, "eval/acc_len1000": acc}
        if i % 5 == 0 or i == n_checkpoints - 1:
            record["eval/acc_len10000"] = acc
        metrics.append(record)
        minimal = ext.machine.minimize()
        entry = {"step": step, "epoch": step / STEPS_PER_EPOCH, "n_states": int(ext.n_states),
                 "n_states_min": int(minimal.n_states), "finite": bool(ext.finite),
                 "train_loss": train_loss, "val_loss": val_loss,
                 "acc_by_length": {k.split("len", 1)[1]: v for k, v in record.items() if k.startswith("eval/acc_len")},
                 "successor": None, "merged": []}
        if prev_labels is not None:
            entry["successor"] = successor_map(prev_labels, ext.labels, prev_n)
            entry["merged"] = merge_events(entry["successor"])
        meta = dict(ext.machine.meta, step=step, epoch=entry["epoch"], n_states=entry["n_states"],
                    n_states_min=entry["n_states_min"], finite=entry["finite"])
        ext.machine.replace(meta=meta).save(run.automaton_path(step))
        checkpoints.append(entry)
        prev_labels, prev_n = ext.labels, ext.n_states

    atomic_write_text(run.metrics_path, "".join(json.dumps(r) + "\n" for r in metrics))
    finite = [c["finite"] for c in checkpoints]
    dynamics = {
        "format": "rnnautomata.dynamics/1", "task": "streaming_parity", "merger": "leader",
        "epsilon": 0.01, "depth": depth, "n_prefixes": int(tree.n_nodes),
        "checkpoints": checkpoints,
        "phases": phases(steps, [c["n_states"] for c in checkpoints], finite),
        "finite_from_step": finite_from(steps, finite),
        "peak_states": max(c["n_states"] for c in checkpoints),
        "final": {"step": steps[-1], "n_states": checkpoints[-1]["n_states"],
                  "n_states_min": checkpoints[-1]["n_states_min"], "finite": finite[-1],
                  "truth_states": 2, "equivalent_to_truth": checkpoints[-1]["n_states_min"] == 2,
                  "counterexample": None},
    }
    atomic_write_json(run.dynamics_path, dynamics)
    run.write_manifest(kind="automata", status="complete", name=name, steps_per_epoch=STEPS_PER_EPOCH,
                       schedule=steps, steps=steps)
    return root


def synthetic_dynamics(root: str | Path) -> dict:
    """The dynamics.json of a run written by :func:`write_synthetic_run`."""
    return json.loads((Path(root) / "dynamics.json").read_text())
