"""Across seeds: how the state count, finiteness and loss of many seed runs spread over training.

:func:`aggregate_seeds` takes the folder written by :func:`rnnautomata.batched.train_seeds`
(``manifest.json`` of kind ``"seeds"`` and one ordinary run per seed), runs
:func:`rnnautomata.dynamics.track` on every seed that has no up-to-date ``dynamics.json`` yet, and
writes ``aggregate.json`` (format ``rnnautomata.aggregate/1``)::

    {"format": "rnnautomata.aggregate/1", "name": "...", "seeds": [0, 1, ...],
     "checkpoints": [{"step": 0, "epoch": 0.0, "n_seeds": 8,
                      "n_states": {"median": 9.0, "q25": 7.0, "q75": 11.0},
                      "n_states_min": {...}, "val_loss": {...}, "train_loss": {...},
                      "fraction_finite": 1.0}, ...],
     "finite_from_step": {"per_seed": [11340, null, ...], "median": 11340.0, "n_never": 1},
     "peak": {"per_seed": [{"seed": 0, "n_states": 353, "n_states_min": 136, "step": 11130}, ...],
              "n_states": {"median": ..., "q25": ..., "q75": ..., "n": 8}, "step": {...}},
     "final": {"step": 21000, "per_seed": [{"seed": 0, "n_states": 27, "n_states_min": 2,
               "finite": true, "equivalent_to_truth": true, "machine": "robust",
               "epsilon_rule_equivalent": true, "robust": {...}, "verdicts": {...},
               "acc_by_length": {"100": 1.0}}, ...]},
     "verdicts": {"n_seeds": 8, "n_ever_equivalent": 8, "n_final_equivalent": 8,
                  "first_equivalent_step": {"median": ..., ...}, "best_step": {...}}}

Per seed, ``equivalent_to_truth`` is that of the final machine dynamics.json names in ``machine``
("robust": the ε-free extractor, the default; "epsilon": the ε rule), ``epsilon_rule_equivalent``
that of the ε rule's, and ``robust`` / ``verdicts`` are copied from the seed's dynamics.json
(see docs/formats.md). ``verdicts`` (None when no seed has them) counts the seeds.

Medians and quartiles are numpy's (linear interpolation) over the seeds that have the checkpoint;
``finite_from_step.median`` is over the seeds that became finite, ``n_never`` counts the others.
The figure ``figures/seeds_timeline.png`` / ``.svg`` shows the median and the 25-75 % band of the
state counts and of the losses against the training step (drawn by
``rnnautomata.render.plot_timeline_seeds``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from pathlib import Path

import numpy as np

from rnnautomata.dynamics import DYNAMICS_FORMAT, track
from rnnautomata.engines import Engine, LocalEngine
from rnnautomata.errors import CheckpointError
from rnnautomata.runs import RunDir, atomic_write_json

__all__ = ["AGGREGATE_FORMAT", "aggregate_seeds", "spread"]

AGGREGATE_FORMAT = "rnnautomata.aggregate/1"


def spread(values) -> dict | None:
    """Median and quartiles of the finite numbers in ``values`` (None entries skipped).

    Examples
    --------
    >>> spread([1, 2, 3, 4, None])
    {'median': 2.5, 'q25': 1.75, 'q75': 3.25, 'n': 4}
    """
    x = np.asarray([v for v in values if v is not None], dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return None
    q25, median, q75 = np.percentile(x, [25, 50, 75])
    return {"median": float(median), "q25": float(q25), "q75": float(q75), "n": int(x.size)}


def _current_dynamics(run: RunDir) -> dict | None:
    """The run's dynamics.json if it covers every checkpoint on disk, else None."""
    if not run.dynamics_path.is_file():
        return None
    try:
        dyn = json.loads(run.dynamics_path.read_text())
    except json.JSONDecodeError:
        return None
    if dyn.get("format") == DYNAMICS_FORMAT and [c["step"] for c in dyn.get("checkpoints", [])] == run.steps():
        return dyn
    return None


def _track_quietly(run_dir: str, device: str | None = None) -> dict:
    """track() with no progress bars (an engine's job: many run at once), on ``device`` (default cpu)."""
    return track(run_dir, device=device or "cpu", progress=False)


def _track_all(runs: list[RunDir], progress: bool, engine: Engine, device: str | None = None) -> list[dict]:
    """Every run's dynamics: read where up to date, else tracked by ``engine``, many seeds at once."""
    dyns: list[dict | None] = [_current_dynamics(run) for run in runs]
    todo = [k for k, d in enumerate(dyns) if d is None]
    if not todo:
        return dyns  # type: ignore[return-value]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        jobs = getattr(engine, "jobs", None) or os.cpu_count() or 1
        bar = tqdm(total=len(todo), desc=f"track {len(todo)} seeds ×{min(jobs, len(todo))}", unit="seed",
                   file=sys.stderr, dynamic_ncols=True)
    try:
        # closing(): an error raised here stops the engine's other jobs at once, not at garbage collection
        # absolute paths: a Ray worker need not share this process's working directory
        job = functools.partial(_track_quietly, device=device)
        with contextlib.closing(engine.map(job, [str(runs[k].root.absolute()) for k in todo])) as results:
            for i, dyn, error in results:
                if error is not None:
                    raise error  # a worker's RnnAutomataError, re-raised here
                dyns[todo[i]] = dyn
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return dyns  # type: ignore[return-value]


def _verdict_summary(final: list[dict]) -> dict | None:
    """Across seeds: how many ever / finally extract to the truth, and when first."""
    with_v = [f for f in final if f.get("verdicts")]
    if not with_v:
        return None
    first = [f["verdicts"]["first_equivalent_step"] for f in with_v]
    ever = [s for s in first if s is not None]
    return {
        "n_seeds": len(with_v),
        "n_ever_equivalent": len(ever),
        "n_final_equivalent": sum(bool(f.get("equivalent_to_truth")) for f in with_v),
        "first_equivalent_step": spread(ever) if ever else None,
        "best_step": spread([f["verdicts"]["best_step"] for f in with_v]),
    }


def aggregate_seeds(out_dir: str | Path, progress: bool = True, jobs: int | None = None,
                    engine: Engine | None = None, device: str | None = None) -> dict:
    """Track every seed run of a multi-seed folder and summarise the spread across seeds.

    Parameters
    ----------
    out_dir : a folder written by :func:`rnnautomata.batched.train_seeds`.
    progress : show a progress bar over the seeds being tracked.
    jobs : seeds tracked at once, each in its own process with one torch thread (default: the
        number of CPUs); shorthand for ``engine=LocalEngine(jobs)``. Seeds whose ``dynamics.json``
        already covers every checkpoint are read, not tracked again.
    engine : where the seeds are tracked (:mod:`rnnautomata.engines`, e.g. a ``RayEngine``);
        overrides ``jobs``.
    device : where each seed is tracked (default cpu; ``cuda`` with a Ray engine's GPU shares).

    Returns
    -------
    The aggregate dict, also written to ``out_dir/aggregate.json``; the figure goes to
    ``out_dir/figures/seeds_timeline.png`` and ``.svg``.

    Raises
    ------
    CheckpointError if ``out_dir`` is not a multi-seed folder or a seed run has no checkpoints.
    """
    top = RunDir(Path(out_dir))
    manifest = top.read_manifest()
    if manifest.get("kind") != "seeds":
        raise CheckpointError(
            f"{top.root} is a {manifest.get('kind')!r} run, not a multi-seed folder; use `rnnautomata track` on it"
        )
    seeds = list(manifest["seeds"])
    runs = [RunDir(top.root / d) for d in manifest["seed_dirs"]]
    for seed, run in zip(seeds, runs):
        if not run.steps():
            raise CheckpointError(f"{run.root} (seed {seed}) has no checkpoints; rerun `rnnautomata run` to train it")
    dyns = _track_all(runs, progress, engine if engine is not None else LocalEngine(jobs), device)

    by_step: dict[int, list[dict]] = {}
    for dyn in dyns:
        for c in dyn["checkpoints"]:
            by_step.setdefault(c["step"], []).append(c)
    checkpoints = []
    for step in sorted(by_step):
        cs = by_step[step]
        checkpoints.append({
            "step": step,
            "epoch": cs[0]["epoch"],
            "n_seeds": len(cs),
            "n_states": spread([c["n_states"] for c in cs]),
            "n_states_min": spread([c["n_states_min"] for c in cs]),
            "train_loss": spread([c.get("train_loss") for c in cs]),
            "val_loss": spread([c.get("val_loss") for c in cs]),
            "fraction_finite": float(np.mean([bool(c["finite"]) for c in cs])),
        })
    finite_from = [d["finite_from_step"] for d in dyns]
    became = [f for f in finite_from if f is not None]
    final, peaks = [], []
    for seed, dyn in zip(seeds, dyns):
        last = dyn["checkpoints"][-1]
        peak = max(dyn["checkpoints"], key=lambda c: c["n_states"])  # the first checkpoint at the peak
        peaks.append({"seed": seed, "n_states": peak["n_states"], "n_states_min": peak["n_states_min"], "step": peak["step"]})
        final.append({
            "seed": seed,
            "step": last["step"],
            "n_states": last["n_states"],
            "n_states_min": last["n_states_min"],
            "finite": last["finite"],
            "equivalent_to_truth": dyn["final"].get("equivalent_to_truth"),
            "machine": dyn["final"].get("machine", "epsilon"),
            "epsilon_rule_equivalent": (dyn["final"].get("epsilon_rule") or {}).get("equivalent_to_truth"),
            "robust": dyn["final"].get("robust"),
            "verdicts": dyn.get("verdicts"),
            "acc_by_length": last.get("acc_by_length", {}),
        })
    agg = {
        "format": AGGREGATE_FORMAT,
        "name": manifest.get("name"),
        "seeds": seeds,
        "seed_dirs": [r.root.name for r in runs],
        "checkpoints": checkpoints,
        "finite_from_step": {
            "per_seed": finite_from,
            "median": float(np.median(became)) if became else None,
            "n_never": len(finite_from) - len(became),
        },
        "peak": {
            "per_seed": peaks,
            "n_states": spread([p["n_states"] for p in peaks]),
            "step": spread([p["step"] for p in peaks]),
        },
        "final": {"step": max(f["step"] for f in final), "per_seed": final},
        "verdicts": _verdict_summary(final),
    }
    atomic_write_json(top.root / "aggregate.json", agg)
    from rnnautomata.render import plot_timeline_seeds

    plot_timeline_seeds(dyns, top.figures_dir / "seeds_timeline",
                        title=f"{agg['name'] or 'study'}: {len(seeds)} seeds, median and interquartile range")
    return agg
