"""What a sweep measures: per seed, per grid point, and the panels of its phase diagram.

Per seed (:func:`seed_summary`, from the seed's ``dynamics.json``): ``finite``,
``first_finite_step``, ``generalises`` (accuracy ≥ :data:`GENERALISES_ACCURACY` at the longest
test length, which must be ≥ :data:`GENERALISES_MIN_LENGTH`; else None), ``peak_states``,
``final_states_min``, the final losses and ``equivalent_to_truth``. Per grid point
(:func:`aggregate_points`): fractions, medians and quartiles over the seeds of its complete runs;
for other study kinds :func:`summary_spread` of the kind's summaries. :data:`MEASURES`: the
automata sweep's phase-diagram panels. :func:`show_value`: a grid value as text.

:mod:`rnnautomata.sweep` runs the sweep and writes these; :mod:`rnnautomata.sweep_page` draws them.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

__all__ = [
    "GENERALISES_ACCURACY",
    "GENERALISES_MIN_LENGTH",
    "MEASURES",
    "show_value",
    "seed_summary",
    "aggregate_points",
    "summary_spread",
]

GENERALISES_ACCURACY = 0.99  # a seed generalises: accuracy at least this ...
GENERALISES_MIN_LENGTH = 1000  # ... at the longest test length, which must be at least this long
#: the per-point measures drawn in the phase diagram: (column, title, log colour scale)
MEASURES = (
    ("fraction_generalising", "fraction generalising", False),
    ("fraction_finite", "fraction finite (final machine)", False),
    ("first_finite_step_median", "first finite step (median)", False),
    ("peak_states_median", "peak merged states (median)", True),
    ("final_states_min_median", "final minimised states (median)", True),
    ("final_train_loss_median", "final training loss (median)", True),
)


def show_value(value: Any) -> str:
    """A grid value as the sweep writes it (point keys, folder names, tables, figure ticks).

    Examples
    --------
    >>> show_value(True), show_value([1, 2.5]), show_value("relu")
    ('true', '[1,2.5]', 'relu')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(show_value(v) for v in value) + "]"
    return str(value)


def seed_summary(dyn: Mapping[str, Any], test_lengths: Sequence[int]) -> dict:
    """One seed's measures from its dynamics dict (see the module docstring).

    Examples
    --------
    >>> dyn = {"checkpoints": [{"step": 0, "n_states": 9, "n_states_min": 5, "finite": False, "train_loss": 1.0,
    ...        "val_loss": 1.0, "acc_by_length": {}}, {"step": 5, "n_states": 4, "n_states_min": 2, "finite": True,
    ...        "train_loss": 0.5, "val_loss": 0.6, "acc_by_length": {"1000": 1.0}}],
    ...        "finite_from_step": 5, "final": {"equivalent_to_truth": True}}
    >>> s = seed_summary(dyn, [100, 1000])
    >>> s["generalises"], s["peak_states"], s["first_finite_step"]
    (True, 9, 5)
    """
    ck = dyn["checkpoints"]
    last = ck[-1]
    longest = max(test_lengths) if test_lengths else None
    acc = None if longest is None else (last.get("acc_by_length") or {}).get(str(longest))
    measurable = longest is not None and longest >= GENERALISES_MIN_LENGTH and acc is not None
    return {
        "step": last["step"],
        "finite": bool(last["finite"]),
        "first_finite_step": dyn["finite_from_step"],
        "longest_test_length": longest,
        "acc_longest": acc,
        "generalises": bool(acc >= GENERALISES_ACCURACY) if measurable else None,
        "peak_states": max(c["n_states"] for c in ck),
        "final_states": last["n_states"],
        "final_states_min": last["n_states_min"],
        "final_train_loss": last.get("train_loss"),
        "final_val_loss": last.get("val_loss"),
        "equivalent_to_truth": (dyn.get("final") or {}).get("equivalent_to_truth"),
    }


def _median(values) -> float | None:
    x = [float(v) for v in values if v is not None and np.isfinite(v)]
    return float(np.median(x)) if x else None


def _fraction(values) -> float | None:
    x = [bool(v) for v in values if v is not None]
    return float(np.mean(x)) if x else None


def aggregate_points(sweep: Mapping[str, Any]) -> list[dict]:
    """One row per grid point, over the seeds of its complete runs (flat: the CSV's columns).

    Columns: the grid keys, ``point``, ``status`` (complete / failed / incomplete), ``n_seeds``
    (planned), ``n_done``, ``fraction_finite``, ``fraction_generalising``, ``fraction_equivalent``,
    ``first_finite_step_median`` / ``_q25`` / ``_q75``, ``n_never_finite``, ``peak_states_median``,
    ``final_states_min_median``, ``final_train_loss_median``, ``final_val_loss_median``, ``error``.
    """
    from rnnautomata.aggregate import spread

    rows: dict[str, dict] = {}
    per_seed: dict[str, list[dict]] = {}
    for run in sweep["runs"]:
        row = rows.setdefault(run["point"], {**run["params"], "point": run["point"], "status": "complete",
                                             "n_seeds": 0, "error": None})
        row["n_seeds"] += len(run["seeds"])
        if run["status"] == "complete" and run.get("summary"):
            per_seed.setdefault(run["point"], []).extend(run["summary"]["per_seed"])
        elif run["status"] == "failed":
            row["status"], row["error"] = "failed", row["error"] or run.get("error")
        elif row["status"] != "failed":
            row["status"] = "incomplete"
    out = []
    if sweep.get("study", {}).get("kind", "automata") != "automata":
        for point, row in rows.items():
            seeds = per_seed.get(point, [])
            row.update({"n_done": len(seeds), **summary_spread(seeds)})
            row["error"] = row.pop("error")  # last column
            out.append(row)
        return out
    for point, row in rows.items():
        seeds = per_seed.get(point, [])
        first = [s["first_finite_step"] for s in seeds if s["first_finite_step"] is not None]
        ff = spread(first) or {}
        row.update({
            "n_done": len(seeds),
            "fraction_finite": _fraction([s["finite"] for s in seeds]),
            "fraction_generalising": _fraction([s["generalises"] for s in seeds]),
            "fraction_equivalent": _fraction([s["equivalent_to_truth"] for s in seeds]),
            "first_finite_step_median": ff.get("median"),
            "first_finite_step_q25": ff.get("q25"),
            "first_finite_step_q75": ff.get("q75"),
            "n_never_finite": len(seeds) - len(first),
            "peak_states_median": _median([s["peak_states"] for s in seeds]),
            "final_states_min_median": _median([s["final_states_min"] for s in seeds]),
            "final_train_loss_median": _median([s["final_train_loss"] for s in seeds]),
            "final_val_loss_median": _median([s["final_val_loss"] for s in seeds]),
        })
        row["error"] = row.pop("error")  # last column
        out.append(row)
    return out


def summary_spread(per_seed: Sequence[Mapping[str, Any]]) -> dict:
    """A grid point's columns from its seeds' summaries (any kind): ``fraction_KEY`` for boolean
    keys, ``KEY_median`` / ``_q25`` / ``_q75`` for numeric ones, ``KEY_n`` where some seeds lack
    a value (None); ``seed`` and ``dir`` are skipped.

    Examples
    --------
    >>> summary_spread([{"seed": 0, "acc": 0.5, "ok": True, "t": None}, {"seed": 1, "acc": 1.0, "ok": False, "t": 40}])
    {'acc_median': 0.75, 'acc_q25': 0.625, 'acc_q75': 0.875, 'fraction_ok': 0.5, 't_median': 40.0, 't_q25': 40.0, 't_q75': 40.0, 't_n': 1}
    """
    from rnnautomata.aggregate import spread

    keys = list(dict.fromkeys(k for s in per_seed for k in s if k not in ("seed", "dir")))
    out: dict[str, Any] = {}
    for key in keys:
        values = [s.get(key) for s in per_seed]
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, bool) for v in present):
            out[f"fraction_{key}"] = _fraction(values)
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
            sp = spread(present) or {}
            out.update({f"{key}_median": sp.get("median"), f"{key}_q25": sp.get("q25"), f"{key}_q75": sp.get("q75")})
            if len(present) < len(values):
                out[f"{key}_n"] = sp.get("n", 0)
    return out

