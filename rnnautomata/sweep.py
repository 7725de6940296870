"""Sweeps: a grid of study fields × seeds as one command, and the phase diagram of what generalises.

::

    rnnautomata sweep tasks/streaming_parity.toml --grid model.init_gain=0.1,0.3,1.0 \\
        --grid model.hidden_size=32,100 --seeds 0-15 [--engine local|ray] [--jobs N]

or the same in a ``[sweep]`` table of the study file (``--grid`` / ``--seeds`` replace the table's)::

    [sweep]
    seeds = "0-15"                      # or a list: [0, 1, 2]
    [sweep.grid]
    "model.init_gain" = [0.1, 0.3, 1.0]
    "model.hidden_size" = [32, 100]

Every grid value is applied to the study and checked by the study's own validation before anything
starts (:func:`plan_sweep`; a one-line :class:`ConfigError` names the key). Each grid point is one
ordinary run folder under the sweep folder: when the architecture batches seeds (recurrent archs,
no early stopping) a many-seed folder trained by :func:`rnnautomata.batched.train_seeds` and
tracked by :func:`rnnautomata.aggregate.aggregate_seeds`; otherwise one run per seed
(``POINT/seed_XXXX``), each its own job. The jobs run on an engine (:mod:`rnnautomata.engines`).

The sweep folder::

    SWEEP/
      sweep.json            format rnnautomata.sweep/1: grid, seeds, runs (status, error, summary)
      aggregate.json, aggregate.csv   one row per grid point: the measures below, over its seeds
      figures/phase_diagram.png/.svg  heatmaps over two grid axes, one panel per measure
      report.html           sortable table, the heatmaps, links to every run's report
      model.init_gain=0.1,model.hidden_size=32/   an ordinary run folder (many-seed or per seed)

Idempotent: a rerun skips complete runs, resumes incomplete ones from their last checkpoint and
retries failed ones; a failing run is recorded with its one-line error while the others go on;
Ctrl-C stops the workers (every file is written atomically) and a rerun finishes the job.

Measures per seed (:func:`seed_summary`), from the seed's ``dynamics.json``: ``finite`` (the final
ε-rule machine is finite), ``first_finite_step``, ``generalises`` (accuracy ≥ 0.99 at the longest
test length, which must be ≥ 1,000; else None), ``peak_states`` (merged), ``final_states_min``,
``final_train_loss`` / ``final_val_loss`` and ``equivalent_to_truth``. Per grid point
(:func:`aggregate_points`): the fraction finite, generalising and equivalent, the median and
quartiles of the first finite step (over the seeds that became finite), and the medians of the rest.

Other study kinds (``kind = "icl_classification"``, ...) sweep through the study-kind registry
(:mod:`rnnautomata.studies`): one run per seed (the kind's ``seed_field``, default ``train.seed``,
set from ``--seeds``), each ``kind.run(kind.load(raw), out)``, its row ``kind.summarise(out)``.
Per grid point over seeds: ``fraction_KEY`` for each boolean summary key, ``KEY_median`` /
``KEY_q25`` / ``KEY_q75`` for each numeric one (``KEY_n``: the seeds that have it, where some do
not); the phase diagram draws the kind's ``sweep_measures`` (else its first six medians and
fractions); after the runs, ``kind.sweep_figures(sweep_folder, run_folders)`` draws the kind's own
figures across the sweep (e.g. K* against N for icl_classification).
"""

from __future__ import annotations

import contextlib
import csv
import html
import io
import itertools
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from rnnautomata.config import _parse_value, study_from_dict
from rnnautomata.engines import Engine, LocalEngine
from rnnautomata.errors import ConfigError, RnnAutomataError
from rnnautomata.runs import RunDir, atomic_savefig, atomic_write_json, atomic_write_text

__all__ = [
    "SWEEP_FORMAT",
    "SWEEP_AGGREGATE_FORMAT",
    "GENERALISES_ACCURACY",
    "GENERALISES_MIN_LENGTH",
    "MEASURES",
    "parse_grid",
    "parse_seeds",
    "sweep_table",
    "plan_sweep",
    "run_sweep",
    "seed_summary",
    "aggregate_points",
    "draw_phase_diagram",
    "write_sweep_report",
    "summary_table",
]

SWEEP_FORMAT = "rnnautomata.sweep/1"
SWEEP_AGGREGATE_FORMAT = "rnnautomata.sweep_aggregate/1"
GENERALISES_ACCURACY = 0.99  # a seed generalises: accuracy at least this ...
GENERALISES_MIN_LENGTH = 1000  # ... at the longest test length, which must be at least this long
_RESERVED = ("name", "seed", "seeds", "kind")  # not grid keys: seeds come from --seeds
_RECURRENT = ("elman", "gru", "lstm")  # archs whose seeds train as one batched model
_FOLDER = re.compile(r"[\w.+=@,-]+")
#: the per-point measures drawn in the phase diagram: (column, title, log colour scale)
MEASURES = (
    ("fraction_generalising", "fraction generalising", False),
    ("fraction_finite", "fraction finite (final machine)", False),
    ("first_finite_step_median", "first finite step (median)", False),
    ("peak_states_median", "peak merged states (median)", True),
    ("final_states_min_median", "final minimised states (median)", True),
    ("final_train_loss_median", "final training loss (median)", True),
)

def study_kind(name: str):
    """The kind object a sweep runs ``kind = name`` studies through; None for ``automata``
    (trained, tracked and summarised by this module itself).

    Raises
    ------
    ConfigError naming the known kinds for an unknown one.
    """
    if name == "automata":
        return None
    from rnnautomata.studies import KINDS, get_kind

    if name in KINDS:
        return get_kind(name)
    known = ", ".join(dict.fromkeys(("automata", *KINDS)))
    raise ConfigError(f"kind = {name!r} is not a known study kind; choose one of: {known}")


def _seed_field(kind) -> str:
    return getattr(kind, "seed_field", None) or "train.seed"


def last_metrics(run_dir: str | Path) -> dict:
    """The numbers of a run's last metrics record (``train/loss`` -> ``train_loss``): a kind's
    default sweep summary."""
    records = RunDir(Path(run_dir)).read_metrics()
    last = records[-1] if records else {}
    return {k.replace("/", "_"): v for k, v in last.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step"} | (
        {"step": last["step"]} if "step" in last else {})


# --- input ---------------------------------------------------------------------------------------
def _split_values(text: str) -> list[str]:
    """Split ``0.1,0.3,[1,2]`` at the commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_grid(items: Sequence[str]) -> dict[str, list]:
    """``["model.init_gain=0.1,0.3", "model.hidden_size=32,100"]`` -> ``{key: [values]}``.

    Values are read as TOML (numbers, booleans, arrays; bare words are strings).

    Examples
    --------
    >>> parse_grid(["model.init_gain=0.1,1.0", "model.nonlinearity=relu,tanh"])
    {'model.init_gain': [0.1, 1.0], 'model.nonlinearity': ['relu', 'tanh']}

    Raises
    ------
    ConfigError for a missing ``=``, an empty key or value, a repeated key or value.
    """
    grid: dict[str, list] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--grid {item!r} must look like section.field=V1,V2, e.g. model.init_gain=0.1,1.0")
        key, text = (s.strip() for s in item.split("=", 1))
        if not key or not all(key.split(".")):
            raise ConfigError(f"--grid {item!r}: the key is empty or has an empty part")
        if key in grid:
            raise ConfigError(f"--grid {key} is given twice; list all its values in one --grid {key}=V1,V2")
        texts = _split_values(text)
        if not text or any(not t for t in texts):
            raise ConfigError(f"--grid {key}: empty value in {text!r}; give values like {key}=V1,V2")
        grid[key] = [_parse_value(t) for t in texts]
    return _check_grid(grid)


def _check_grid(grid: Mapping[str, Any]) -> dict[str, list]:
    out = {}
    for key, values in grid.items():
        if key in _RESERVED:
            raise ConfigError(f"--grid {key}: {key} is set by the sweep itself (seeds with --seeds); sweep another field")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep grid {key} must be a non-empty list of values (got {values!r})")
        if any(isinstance(v, dict) for v in values):
            raise ConfigError(f"sweep grid {key}: a value cannot be a table")
        shown = [json.dumps(v) for v in values]
        if len(set(shown)) != len(shown):
            raise ConfigError(f"sweep grid {key} repeats a value: {', '.join(shown)}")
        out[key] = list(values)
    return out


def parse_seeds(text: str | Sequence[int]) -> list[int]:
    """``"0-15"``, ``"0,3,7"``, ``"0-3,8"`` or a list of integers -> the seeds, in order.

    Examples
    --------
    >>> parse_seeds("0-3,8")
    [0, 1, 2, 3, 8]

    Raises
    ------
    ConfigError for an empty list, a reversed range, a negative or repeated seed, or a non-integer.
    """
    if isinstance(text, (list, tuple)):
        seeds = list(text)
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise ConfigError(f"sweep seeds must be integers (got {seeds!r})")
    elif isinstance(text, str):
        seeds = []
        for part in (p.strip() for p in text.split(",")):
            m = re.fullmatch(r"(\d+)\s*-\s*(\d+)|(\d+)", part)
            if not m:
                raise ConfigError(f"--seeds {text!r}: {part!r} is not a seed or a range like 0-15")
            if m.group(3) is not None:
                seeds.append(int(m.group(3)))
                continue
            lo, hi = int(m.group(1)), int(m.group(2))
            if lo > hi:
                raise ConfigError(f"--seeds {text!r}: the range {lo}-{hi} is reversed; write {hi}-{lo}")
            seeds.extend(range(lo, hi + 1))
    else:
        raise ConfigError(f"sweep seeds must be a string like '0-15' or a list of integers (got {text!r})")
    if not seeds:
        raise ConfigError("--seeds is empty; give seeds like 0-15")
    if any(s < 0 for s in seeds):
        raise ConfigError(f"--seeds must be 0 or more (got {min(seeds)})")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {text!r} repeats a seed")
    return seeds


def sweep_table(raw: Mapping[str, Any]) -> tuple[dict, dict[str, list], list[int] | None]:
    """Split a study dict into (the study without ``[sweep]``, its grid, its seeds or None)."""
    raw = dict(raw)
    table = raw.pop("sweep", None)
    if table is None:
        return raw, {}, None
    if not isinstance(table, dict):
        raise ConfigError("[sweep] must be a table with grid and seeds")
    unknown = sorted(set(table) - {"grid", "seeds"})
    if unknown:
        raise ConfigError(f"unknown field sweep.{unknown[0]}; allowed in [sweep]: grid, seeds")
    grid = table.get("grid", {})
    if not isinstance(grid, dict):
        raise ConfigError("[sweep.grid] must be a table of key = [values]")
    seeds = parse_seeds(table["seeds"]) if "seeds" in table else None
    return raw, _check_grid(grid), seeds


def _set_dotted(raw: Mapping[str, Any], key: str, value: Any) -> dict:
    out = json.loads(json.dumps(raw))
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--grid {key}: {part!r} is a value, not a section")
        node = child
    node[parts[-1]] = value
    return out


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_show(v) for v in value) + "]"
    return str(value)


def _batches(study) -> bool:
    """Whether a point's seeds train as one batched model (recurrent archs, no early stopping)."""
    return study.kind == "automata" and study.model.arch in _RECURRENT and study.train.patience is None


def plan_sweep(raw: Mapping[str, Any], grid: Mapping[str, list], seeds: Sequence[int]) -> list[dict]:
    """Validate every grid value and every grid point; return the runs to make, in grid order.

    Each run: ``key`` (unique), ``point`` (the grid point's key), ``params``, ``seeds``,
    ``batched``, ``dir`` (relative to the sweep folder) and ``raw`` (the point's study dict).

    Raises
    ------
    ConfigError naming the grid key (or the point) whose value the study refuses.
    """
    kind = study_kind(raw.get("kind", "automata"))
    if not grid:
        raise ConfigError("the sweep has no grid: give --grid section.field=V1,V2 (or a [sweep.grid] table)")
    seeds = list(seeds)
    base = dict(raw)
    base.pop("seed", None)
    base.pop("seeds", None)
    base.setdefault("name", "sweep")
    if kind is not None:
        return _plan_kind(kind, base, grid, seeds)
    for key, values in grid.items():  # each value alone first: the error names its key
        for value in values:
            try:
                study_from_dict({**_set_dotted(base, key, value), "seed": seeds[0]})
            except ConfigError as err:
                raise ConfigError(f"--grid {key}={_show(value)}: {err}") from None
    runs: list[dict] = []
    for params, point, folder, point_raw in _points(base, grid):
        try:
            study = study_from_dict({**point_raw, "seed": seeds[0]})
        except ConfigError as err:
            raise ConfigError(f"grid point {point}: {err}") from None
        if _batches(study):
            study_from_dict({**point_raw, "seeds": seeds})
            runs.append({"key": point, "point": point, "params": params, "seeds": seeds, "batched": True,
                         "dir": folder, "raw": point_raw})
        else:
            for s in seeds:
                runs.append({"key": f"{point},seed={s}", "point": point, "params": params, "seeds": [s],
                             "batched": False, "dir": f"{folder}/seed_{s:04d}", "raw": point_raw})
    return runs


def _points(base: Mapping[str, Any], grid: Mapping[str, list]):
    """``(params, point key, folder, point's study dict)`` for every grid point, in grid order."""
    keys = list(grid)
    for i, combo in enumerate(itertools.product(*(grid[k] for k in keys))):
        params = dict(zip(keys, combo))
        point = ",".join(f"{k}={_show(v)}" for k, v in params.items())
        folder = point if _FOLDER.fullmatch(point) and ".." not in point and len(point) < 200 else f"point_{i:04d}"
        point_raw = dict(base)
        for key, value in params.items():
            point_raw = _set_dotted(point_raw, key, value)
        point_raw["name"] = f"{base['name']},{folder}"
        yield params, point, folder, point_raw


def _plan_kind(kind, base: dict, grid: Mapping[str, list], seeds: list[int]) -> list[dict]:
    """plan_sweep for a registered (non-automata) kind: one run per seed, its seed in ``seed_field``."""
    field = _seed_field(kind)
    if field in grid:
        raise ConfigError(f"--grid {field}: {field} is set by the sweep itself (seeds with --seeds); sweep another field")
    for key, values in grid.items():  # each value alone first: the error names its key
        for value in values:
            try:
                kind.load(_set_dotted(_set_dotted(base, key, value), field, seeds[0]))
            except ConfigError as err:
                raise ConfigError(f"--grid {key}={_show(value)}: {err}") from None
    runs: list[dict] = []
    for params, point, folder, point_raw in _points(base, grid):
        try:
            kind.load(_set_dotted(point_raw, field, seeds[0]))
        except ConfigError as err:
            raise ConfigError(f"grid point {point}: {err}") from None
        for s in seeds:
            runs.append({"key": f"{point},seed={s}", "point": point, "params": params, "seeds": [s],
                         "batched": False, "dir": f"{folder}/seed_{s:04d}", "raw": _set_dotted(point_raw, field, s)})
    return runs


# --- one run (an engine's job) -------------------------------------------------------------------
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


def _run_job(job: Mapping[str, Any]) -> dict:
    """Train, track and summarise one run of a sweep (a grid point's seeds, or one seed)."""
    from rnnautomata.dynamics import track

    out, device = Path(job["out"]), job.get("device")
    started = time.perf_counter()
    kind = study_kind(job["raw"].get("kind", "automata"))
    if kind is not None:
        kind.run(kind.load(dict(job["raw"])), out, device=device, progress=False, render=bool(job.get("render")))
        (seed,) = job["seeds"]
        per_seed = [{"seed": seed, "dir": ".", **kind.summarise(out)}]
        return {"per_seed": per_seed, "elapsed_s": round(time.perf_counter() - started, 3)}
    if job["batched"]:
        from rnnautomata.aggregate import aggregate_seeds
        from rnnautomata.batched import seed_dir
        from rnnautomata.seeds import train_seeds

        study = study_from_dict({**job["raw"], "seeds": job["seeds"]})
        train_seeds(study, out, device=device, progress=False)
        aggregate_seeds(out, progress=False, engine=LocalEngine(1))  # tracks in this worker
        dyns = [json.loads(RunDir(seed_dir(out, s)).dynamics_path.read_text()) for s in job["seeds"]]
        dirs = [seed_dir(out, s).name for s in job["seeds"]]
        if job.get("render"):
            from rnnautomata.seeds_report import write_seeds_report

            write_seeds_report(out)
    else:
        from rnnautomata.train import train

        (seed,) = job["seeds"]
        study = study_from_dict({**job["raw"], "seed": seed})
        train(study, out, device=device, progress=False)
        dyns = [track(out, device=device or "cpu", progress=False)]
        dirs = ["."]
        if job.get("render"):
            from rnnautomata.report import write_report

            write_report(out, progress=False)
    per_seed = [{"seed": s, "dir": d, **seed_summary(dyn, study.task.test_lengths)}
                for s, d, dyn in zip(job["seeds"], dirs, dyns)]
    return {"per_seed": per_seed, "elapsed_s": round(time.perf_counter() - started, 3)}


def _is_complete(root: Path, run: Mapping[str, Any], automata: bool = True) -> bool:
    """A run that sweep.json calls complete and whose folder still says so (automata: every seed tracked)."""
    if run.get("status") != "complete" or not run.get("summary"):
        return False
    folder = RunDir(root / run["dir"])
    try:
        if folder.read_manifest().get("status") != "complete":
            return False
    except RnnAutomataError:
        return False
    return not automata or all((folder.root / s["dir"] / "dynamics.json").is_file() for s in run["summary"]["per_seed"])


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return text if isinstance(err, RnnAutomataError) else f"{type(err).__name__}: {text}".rstrip(": ")


# --- the sweep -----------------------------------------------------------------------------------
def run_sweep(raw: Mapping[str, Any], grid: Mapping[str, list], seeds: Sequence[int], out: str | Path,
              engine: Engine | None = None, device: str | None = None, render: bool = True,
              progress: bool = True) -> dict:
    """Run (or finish) a sweep into ``out``; returns the sweep dict also written to ``out/sweep.json``.

    Parameters
    ----------
    raw : the base study dict (TOML, without ``[sweep]``); grid values are set on it.
    grid : ``{dotted key: [values]}``; seeds: the seeds of every grid point.
    out : the sweep folder. A rerun into it skips complete runs, resumes the others.
    engine : where the runs execute (default :class:`~rnnautomata.engines.LocalEngine`, all CPUs).
    device : every run's device (default: the study's).
    render : write each run's report.html (many-seed folders: the seeds page) and the sweep page.

    Raises
    ------
    ConfigError for a bad grid or seeds (before anything is written), or a folder holding another
    sweep. KeyboardInterrupt after stopping the workers (sweep.json is up to date).
    """
    grid = _check_grid(dict(grid))
    seeds = list(seeds)
    runs = plan_sweep(raw, grid, seeds)
    engine = engine if engine is not None else LocalEngine()
    root = Path(out)
    identity = {"study": json.loads(json.dumps(dict(raw))), "grid": grid, "seeds": seeds}
    old = _read_sweep(root)
    if old is not None and {k: old.get(k) for k in identity} != identity:
        raise ConfigError(f"{root} holds another sweep (another study, grid or seeds); use another --out")
    with engine:  # connects (Ray) before anything is written: a dead --address writes nothing
        with RunDir(root).locked("sweep"):
            return _run_locked(root, identity, runs, old, engine, device, render, progress)


def _read_sweep(root: Path) -> dict | None:
    path = root / "sweep.json"
    if not path.is_file():
        if root.exists() and any(not p.name.startswith(".") for p in root.iterdir()):  # .sweep.lock alone: a kill
            raise ConfigError(f"{root} is not empty and holds no sweep.json; use another --out")
        return None
    try:
        sweep = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise ConfigError(f"{path} is not valid JSON; the sweep folder is damaged (delete sweep.json to rebuild it)") from None
    if sweep.get("format") != SWEEP_FORMAT:
        raise ConfigError(f"{path} has format {sweep.get('format')!r}, expected {SWEEP_FORMAT!r}")
    return sweep


def _run_locked(root: Path, identity: dict, runs: list[dict], old: dict | None, engine: Engine,
                device: str | None, render: bool, progress: bool) -> dict:
    previous = {r["key"]: r for r in (old or {}).get("runs", [])}
    entries = []
    for run in runs:
        before = previous.get(run["key"], {})
        entries.append({k: run[k] for k in ("key", "point", "params", "seeds", "batched", "dir")} | {
            "status": before.get("status", "pending"), "error": before.get("error"),
            "summary": before.get("summary"), "elapsed_s": before.get("elapsed_s")})
    sweep = {"format": SWEEP_FORMAT, "name": identity["study"].get("name", "sweep"), **identity,
             "engine": engine.name, "runs": entries}
    automata = identity["study"].get("kind", "automata") == "automata"
    todo = [k for k, e in enumerate(entries) if not _is_complete(root, e, automata)]
    for k in todo:
        entries[k].update(status="running", error=None, summary=None, elapsed_s=None)
    atomic_write_json(root / "sweep.json", sweep)
    jobs = [{"out": str(root / entries[k]["dir"]), "raw": runs[k]["raw"], "seeds": runs[k]["seeds"],
             "batched": runs[k]["batched"], "device": device, "render": render} for k in todo]
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=f"sweep {len(todo)} runs on {engine.name}", unit="run", file=sys.stderr,
                   dynamic_ncols=True)
    try:
        with contextlib.closing(engine.map(_run_job, jobs)) as results:  # Ctrl-C anywhere here stops the workers
            for i, result, error in results:
                entry = entries[todo[i]]
                if error is None:
                    entry.update(status="complete", error=None, summary=result, elapsed_s=result.pop("elapsed_s"))
                else:
                    entry.update(status="failed", error=_one_line(error), summary=None)
                atomic_write_json(root / "sweep.json", sweep)
                if bar is not None:
                    bar.update(1)
    except BaseException:
        for entry in entries:
            if entry["status"] == "running":
                entry["status"] = "interrupted"
        atomic_write_json(root / "sweep.json", sweep)
        raise
    finally:
        if bar is not None:
            bar.close()
    write_aggregate(root, sweep)
    kind = study_kind(identity["study"].get("kind", "automata"))
    if kind is not None:
        done = [root / e["dir"] for e in entries if e["status"] == "complete"]
        kind.sweep_figures(root, done)
    if render:
        write_sweep_report(root)
    return sweep


# --- aggregation ---------------------------------------------------------------------------------
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


def sweep_measures(sweep: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> tuple:
    """The phase diagram's panels ``(column, title, log scale)``: :data:`MEASURES` for automata,
    the kind's ``sweep_measures`` else, or its first six fractions and medians."""
    kind = study_kind(sweep.get("study", {}).get("kind", "automata"))
    if kind is None:
        return MEASURES
    own = getattr(kind, "sweep_measures", None)
    if own:
        return tuple(own)
    columns = list(dict.fromkeys(c for r in rows for c in r if c.startswith("fraction_") or c.endswith("_median")))
    return tuple((c, c.replace("_", " "), False) for c in columns[:6])


def write_aggregate(root: str | Path, sweep: Mapping[str, Any] | None = None) -> list[Path]:
    """Write ``aggregate.json``, ``aggregate.csv`` and the phase diagram(s) of a sweep folder."""
    root = Path(root)
    sweep = sweep if sweep is not None else json.loads((root / "sweep.json").read_text())
    rows = aggregate_points(sweep)
    atomic_write_json(root / "aggregate.json", {"format": SWEEP_AGGREGATE_FORMAT, "name": sweep.get("name"),
                                                "grid": sweep["grid"], "seeds": sweep["seeds"], "points": rows})
    buf = io.StringIO()
    columns = list(dict.fromkeys(c for r in rows for c in r if c != "error")) + ["error"]  # union: seeds differ
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _show(v) if isinstance(v, (list, bool)) else ("" if v is None else v) for k, v in row.items()}
                        | {c: "" for c in columns if c not in row})
    atomic_write_text(root / "aggregate.csv", buf.getvalue())
    figures = draw_phase_diagram(rows, sweep["grid"], root / "figures", sweep_measures(sweep, rows))
    return [root / "aggregate.json", root / "aggregate.csv", *figures]


def draw_phase_diagram(rows: Sequence[Mapping[str, Any]], grid: Mapping[str, list], folder: str | Path,
                       measures: Sequence[tuple[str, str, bool]] = MEASURES) -> list[Path]:
    """Heatmaps of ``measures`` (default :data:`MEASURES`; ``(column, title, log colour scale)``) over
    the two grid axes with most values (rows: the first, columns: the second; one axis: a single row),
    one figure per setting of any further axes: ``folder/phase_diagram.png`` / ``.svg``
    (``phase_diagram,KEY=V.png`` for the further axes). Panels whose title names a fraction or an
    accuracy are coloured on [0, 1]."""
    from matplotlib.colors import LogNorm

    from rnnautomata import plotting

    keys = list(grid)
    axes = sorted(keys, key=lambda k: -len(grid[k]))[:2]
    axes = [k for k in keys if k in axes]  # grid order
    y_key, x_key = (axes[0], axes[1]) if len(axes) == 2 else (None, axes[0])
    rest = [k for k in keys if k not in axes]
    written = []
    for fixed in itertools.product(*(grid[k] for k in rest)):
        fixed_params = dict(zip(rest, fixed))
        ys = grid[y_key] if y_key else [None]
        xs = grid[x_key]
        lookup = {}
        for row in rows:
            if all(row[k] == v for k, v in fixed_params.items()):
                lookup[(row[y_key] if y_key else None, json.dumps(row[x_key]))] = row
        n_rows = max(1, -(-len(measures) // 3))
        fig, panels = plotting.subplots(n_rows, 3, figsize=(13, (1.6 + 0.45 * len(ys)) * n_rows), constrained_layout=True,
                                   squeeze=False)
        for ax in panels.flat[len(measures):]:
            ax.set_axis_off()
        for ax, (column, title, log) in zip(panels.flat, measures):
            data = np.full((len(ys), len(xs)), np.nan)
            for i, y in enumerate(ys):
                for j, x in enumerate(xs):
                    row = lookup.get((y, json.dumps(x)))
                    if row is not None and row.get(column) is not None:
                        data[i, j] = row[column]
            finite = data[np.isfinite(data)]
            norm = LogNorm(vmin=max(finite.min(), 1e-12), vmax=max(finite.max(), 1e-12)) if log and finite.size and (finite > 0).all() else None
            kwargs = {"vmin": 0.0, "vmax": 1.0} if "fraction" in title or "accuracy" in title else {}
            image = ax.imshow(np.ma.masked_invalid(data), aspect="auto", cmap="viridis", norm=norm,
                              **({} if norm is not None else kwargs))
            for i, y in enumerate(ys):
                for j in range(len(xs)):
                    v = data[i, j]
                    failed = (lookup.get((y, json.dumps(xs[j]))) or {}).get("status") == "failed"
                    text = ("failed" if failed else "—") if not np.isfinite(v) else f"{v:.2g}" if abs(v) < 100 else f"{v:,.0f}"
                    r, g, b, _ = image.cmap(float(np.ravel(np.ma.filled(image.norm(v), 0.0))[0])) if np.isfinite(v) else (1, 1, 1, 1)
                    dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5  # white text on a dark cell
                    ax.text(j, i, text, ha="center", va="center", fontsize=8, color="w" if dark else "k")
            ax.set_xticks(range(len(xs)), [_show(x) for x in xs])
            ax.set_yticks(range(len(ys)), [_show(y) for y in ys] if y_key else [""])
            ax.set_xlabel(x_key)
            if y_key:
                ax.set_ylabel(y_key)
            ax.set_title(title, fontsize=10)
            fig.colorbar(image, ax=ax, shrink=0.85)
        suffix = "".join(f",{k}={_show(v)}" for k, v in fixed_params.items())
        if fixed_params:
            fig.suptitle(", ".join(f"{k} = {_show(v)}" for k, v in fixed_params.items()))
        stem = Path(folder) / f"phase_diagram{suffix}"
        for ext in ("png", "svg"):
            written.append(atomic_savefig(fig, stem.with_suffix(f".{ext}") if not suffix else Path(f"{stem}.{ext}"), dpi=110))
    return written


# --- the sweep page ------------------------------------------------------------------------------
def write_sweep_report(root: str | Path) -> Path:
    """Write ``root/report.html``: the sweep's table (sortable), its heatmaps, links to every run's report."""
    from rnnautomata.seeds_report import _SORT, _STYLE, _cell

    root = Path(root)
    sweep = json.loads((root / "sweep.json").read_text())
    agg = json.loads((root / "aggregate.json").read_text())
    keys = list(sweep["grid"])
    runs_by_point: dict[str, list[dict]] = {}
    for run in sweep["runs"]:
        runs_by_point.setdefault(run["point"], []).append(run)
    automata = sweep.get("study", {}).get("kind", "automata") == "automata"
    columns = [("fraction_generalising", "generalising", "{:.2f}"), ("fraction_finite", "finite", "{:.2f}"),
               ("fraction_equivalent", "= truth", "{:.2f}"), ("first_finite_step_median", "first finite step", "{:,.0f}"),
               ("n_never_finite", "never finite", "{}"), ("peak_states_median", "peak states", "{:,.0f}"),
               ("final_states_min_median", "final minimised", "{:,.1f}"), ("final_train_loss_median", "final loss", "{:.3g}")]
    if not automata:  # every fraction and median of the kind's summaries
        found = dict.fromkeys(c for r in agg["points"] for c in r if c.startswith("fraction_") or c.endswith("_median"))
        columns = [(c, c.removeprefix("fraction_").removesuffix("_median").replace("_", " "), "{:.3g}") for c in found]
    head = keys + ["seeds done", "status"] + [c[1] for c in columns] + ["runs"]
    body = []
    for row in agg["points"]:
        cells = [_cell(html.escape(_show(row[k])), json.dumps(row[k]).strip('"')) for k in keys]
        cells.append(_cell(f"{row['n_done']} of {row['n_seeds']}", row["n_done"]))
        status = row["status"] + (f": {row['error']}" if row.get("error") else "")
        cells.append(_cell(html.escape(status), row["status"], None if row["status"] == "complete" else "no"))
        for column, _, fmt in columns:
            v = row.get(column)
            cells.append(_cell("—" if v is None else fmt.format(v), -1 if v is None else v))
        links = []
        for run in runs_by_point[row["point"]]:
            report = root / run["dir"] / "report.html"
            label = run["dir"].split("/")[-1] if not run["batched"] else "seeds"
            if report.is_file():
                links.append(f'<a href="{html.escape(run["dir"])}/report.html">{html.escape(label)}</a>')
        cells.append(_cell(" ".join(links) or "—", len(links)))
        body.append("<tr>" + "".join(cells) + "</tr>")
    figures = []
    for svg_path in sorted((root / "figures").glob("*.svg"), key=lambda p: (not p.name.startswith("phase_diagram"), p.name)):
        svg = svg_path.read_text()
        if svg.startswith("<?xml"):
            svg = svg[svg.index("?>") + 2:]
        figures.append(f'<div class="figure">{svg}</div>')
    n_done = sum(r["status"] == "complete" for r in sweep["runs"])
    n_failed = sum(r["status"] == "failed" for r in sweep["runs"])
    name = html.escape(str(sweep.get("name") or root.name))
    grid_text = "; ".join(f"{html.escape(k)} ∈ {{{html.escape(', '.join(_show(v) for v in vs))}}}" for k, vs in sweep["grid"].items())
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{name}: sweep</title>
<style>{_STYLE}</style></head>
<body>
<h1>{name}: sweep of {len(agg['points'])} grid points × {len(sweep['seeds'])} seeds</h1>
<ul><li>grid: {grid_text}</li><li>seeds: {html.escape(_seed_text(sweep['seeds']))}</li>
<li>runs: {n_done} complete, {n_failed} failed, {len(sweep['runs']) - n_done - n_failed} to do (rerun the sweep to finish)</li>
<li>{_MEANING if automata else "fractions and medians over the seeds of each point of each run's summary"}</li></ul>
{''.join(figures)}
<h2>Every grid point</h2>
<p>Click a column header to sort.</p>
<table><thead><tr>{''.join(f'<th>{html.escape(h)}</th>' for h in head)}</tr></thead>
<tbody>{''.join(body)}</tbody></table>
<script>{_SORT}</script>
</body></html>
"""
    path = root / "report.html"
    atomic_write_text(path, page)
    return path


_MEANING = (f"a seed generalises when its accuracy at the longest test length (≥ {GENERALISES_MIN_LENGTH:,}) is "
            f"≥ {GENERALISES_ACCURACY}; finite: its final extracted machine (ε rule) is finite; medians over the seeds "
            "of the point")


def summary_table(sweep: Mapping[str, Any]) -> str:
    """The sweep's per-point table as plain text (what ``rnnautomata sweep`` prints)."""
    rows = aggregate_points(sweep)
    keys = list(sweep["grid"])

    def f(v, fmt):
        return "—" if v is None else format(v, fmt)

    if sweep.get("study", {}).get("kind", "automata") == "automata":
        columns = [("fraction_generalising", "general.", ".2f"), ("fraction_finite", "finite", ".2f"),
                   ("first_finite_step_median", "1st finite", ",.0f"), ("peak_states_median", "peak", ".0f"),
                   ("final_states_min_median", "min", ".0f")]
    else:
        columns = [(c, c.removeprefix("fraction_").removesuffix("_median")[:10], ".3g")
                   for c, _, _ in sweep_measures(sweep, rows)]
    lines = [" ".join(f"{k:>18}" for k in keys) + f" {'seeds':>6} " + " ".join(f"{t:>10}" for _, t, _ in columns) + "  status"]
    for row in rows:
        lines.append(" ".join(f"{_show(row[k]):>18}" for k in keys) + f" {row['n_done']:>6} "
                     + " ".join(f"{f(row.get(c), fmt):>10}" for c, _, fmt in columns)
                     + f"  {row['status']}" + (f": {row['error']}" if row["error"] else ""))
    return "\n".join(lines)


def _seed_text(seeds: Sequence[int]) -> str:
    """``[0, 1, 2, 3, 8]`` -> ``"0-3, 8"``."""
    parts, start = [], None
    for i, s in enumerate(seeds):
        if start is None:
            start = s
        if i + 1 == len(seeds) or seeds[i + 1] != s + 1:
            parts.append(str(start) if start == s else f"{start}-{s}")
            start = None
    return ", ".join(parts)
