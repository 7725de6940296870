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

The code: this module reads the grid, plans and runs the sweep and writes its folder;
:mod:`rnnautomata.sweep_aggregate` defines the measures (per seed, per grid point);
:mod:`rnnautomata.sweep_page` draws the phase diagram and writes ``report.html``. Their public
names are importable from here too (``from rnnautomata.sweep import draw_phase_diagram``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from rnnautomata.config import _parse_value, study_from_dict
from rnnautomata.engines import Engine, LocalEngine
from rnnautomata.errors import ConfigError, RnnAutomataError
from rnnautomata.runs import RunDir, atomic_write_json, atomic_write_text
from rnnautomata.sweep_aggregate import (
    GENERALISES_ACCURACY,
    GENERALISES_MIN_LENGTH,
    MEASURES,
    aggregate_points,
    seed_summary,
    show_value,
    summary_spread,
)
from rnnautomata.sweep_page import draw_phase_diagram, write_sweep_report

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
    "summary_spread",
    "draw_phase_diagram",
    "write_sweep_report",
    "summary_table",
]

SWEEP_FORMAT = "rnnautomata.sweep/1"
SWEEP_AGGREGATE_FORMAT = "rnnautomata.sweep_aggregate/1"
_RESERVED = ("name", "seed", "seeds", "kind")  # not grid keys: seeds come from --seeds
_RECURRENT = ("elman", "gru", "lstm")  # archs whose seeds train as one batched model
_FOLDER = re.compile(r"[\w.+=@,-]+")


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
                raise ConfigError(f"--grid {key}={show_value(value)}: {err}") from None
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
        point = ",".join(f"{k}={show_value(v)}" for k, v in params.items())
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
                raise ConfigError(f"--grid {key}={show_value(value)}: {err}") from None
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
        aggregate_seeds(out, progress=False, engine=LocalEngine(1), device=device)  # tracks in this worker, on its device
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


# --- the sweep folder's aggregate and table ---------------------------------------------------------
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
        writer.writerow({k: show_value(v) if isinstance(v, (list, bool)) else ("" if v is None else v) for k, v in row.items()}
                        | {c: "" for c in columns if c not in row})
    atomic_write_text(root / "aggregate.csv", buf.getvalue())
    figures = draw_phase_diagram(rows, sweep["grid"], root / "figures", sweep_measures(sweep, rows))
    return [root / "aggregate.json", root / "aggregate.csv", *figures]


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
        lines.append(" ".join(f"{show_value(row[k]):>18}" for k in keys) + f" {row['n_done']:>6} "
                     + " ".join(f"{f(row.get(c), fmt):>10}" for c, _, fmt in columns)
                     + f"  {row['status']}" + (f": {row['error']}" if row["error"] else ""))
    return "\n".join(lines)


