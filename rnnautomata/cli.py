"""Command line: ``rnnautomata run | sweep | extract | track | render | report | tasks``.

This is the one module that wires the whole flow together; ``run | track | render | report`` go to the
study's kind (:mod:`rnnautomata.studies`), so a new kind needs no change here. User errors (bad study, unknown task,
corrupt checkpoint, diverging run, a bad command-line argument, an output folder that cannot be
written) print one line ``error: ...`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
from pathlib import Path
from typing import Sequence

from rnnautomata import __version__
from rnnautomata.errors import CheckpointError, ConfigError, RnnAutomataError

__all__ = ["main", "build_parser"]


def _check_out(out: Path) -> None:
    """Refuse an output folder that is, or lies under, an existing file (before any training)."""
    for path in (out, *out.parents):
        if path.exists():
            if not path.is_dir():
                where = "is" if path == out else f"lies under {path}, which is"
                raise ConfigError(f"--out {out} {where} a file, not a folder; choose another --out")
            return


def _accepted(method, options: dict) -> dict:
    """The ``options`` that a kind's ``method`` takes (all of them when it takes ``**options``)."""
    import inspect

    params = inspect.signature(method).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return options
    return {k: v for k, v in options.items() if k in params}


def _engine_options(method, options: dict, engine, what: str) -> dict:
    """``options`` plus ``engine`` (from :func:`_engine`) where the kind's ``method`` names an
    ``engine`` parameter (it dispatches per-seed jobs); a one-line error for ``--engine ray`` where
    it does not (``what``: the study or run, for the message)."""
    import inspect

    from rnnautomata.engines import no_jobs_to_spread

    if "engine" in inspect.signature(method).parameters:
        return {**options, "engine": engine}
    if engine.name != "local":
        raise no_jobs_to_spread(what)
    return options


def _engine(args):
    """The engine of ``--engine/--jobs/--address/--gpus-per-run``, checked before anything starts
    (``--address`` or ``--gpus-per-run`` without ``--engine ray``, Ray not installed: one-line errors)."""
    from rnnautomata.engines import make_engine

    return make_engine(args.engine, jobs=args.jobs, address=args.address, gpus_per_run=args.gpus_per_run or 0)


def _engine_device(args) -> str | None:
    """``--device``, or cuda when ``--gpus-per-run`` shares GPUs and no device is named (as in sweep)."""
    return args.device or ("cuda" if args.gpus_per_run else None)


def cmd_run(args) -> int:
    from rnnautomata.config import apply_overrides, check_study_name, read_toml
    from rnnautomata.studies import find_study, get_kind, kind_of, resolve_relative_paths

    engine = _engine(args)
    study_file = find_study(args.study)
    raw = apply_overrides(resolve_relative_paths(read_toml(study_file), study_file), args.set or [])
    raw.pop("sweep", None)  # a sweep's study file runs as its one base study
    raw.setdefault("name", study_file.stem)
    check_study_name(raw["name"])
    out = Path(args.out) if args.out else Path("runs") / raw["name"]
    args.out_dir = out  # named by main() when a write fails without naming its file
    _check_out(out)
    kind = get_kind(kind_of(raw, study_file))
    options = _accepted(kind.run, {"jobs": args.jobs} if args.jobs else {})
    options = _engine_options(kind.run, options, engine, f"a {kind.name!r} study")
    summary = kind.run(kind.load(raw), out, device=_engine_device(args), progress=not args.quiet,
                       render=not args.no_render, **options)
    kind.show_run(summary, out)
    return 0


def cmd_sweep(args) -> int:
    from rnnautomata.config import apply_overrides, check_study_name, read_toml
    from rnnautomata.studies import find_study, resolve_relative_paths
    from rnnautomata.sweep import parse_grid, parse_seeds, plan_sweep, run_sweep, sweep_table

    study_file = find_study(args.study)
    raw, grid, seeds = sweep_table(resolve_relative_paths(read_toml(study_file), study_file))
    raw = apply_overrides(raw, args.set or [])
    raw.setdefault("name", study_file.stem)
    check_study_name(raw["name"])
    if args.grid:
        grid = parse_grid(args.grid)
    if args.seeds is not None:
        seeds = parse_seeds(args.seeds)
    if seeds is None:
        raise ConfigError("the sweep has no seeds: give --seeds 0-15 (or seeds in the [sweep] table)")
    runs = plan_sweep(raw, grid, seeds)  # every grid value checked before anything starts
    out = Path(args.out) if args.out else Path("runs") / raw["name"]
    args.out_dir = out
    _check_out(out)
    sweep = run_sweep(raw, grid, seeds, out, engine=_engine(args), device=_engine_device(args), render=not args.no_render,
                      progress=not args.quiet)
    from rnnautomata.sweep import summary_table

    print(summary_table(sweep))
    failed = [r for r in sweep["runs"] if r["status"] == "failed"]
    print(f"{len(runs) - len(failed)} of {len(runs)} runs complete" + (f", {len(failed)} failed (rerun to retry)" if failed else ""))
    print(f"sweep directory: {out} (sweep.json, aggregate.csv, figures/phase_diagram.png"
          + ("" if args.no_render else ", report.html") + ")")
    return 0 if not failed else 1


def _one_run(path: str, command: str, verb: str, automata_only: bool = True):
    """The RunDir at ``path``, refusing a many-seed folder (and, with ``automata_only``, icl and
    grokking runs) with a one-line error that names what to do."""
    from rnnautomata.runs import RunDir

    run = RunDir(Path(path))
    kind = run.read_manifest().get("kind", "automata")
    if kind == "seeds":
        raise CheckpointError(f"{run.root} holds many seeds; {verb} one of them, e.g. "
                              f"`rnnautomata {command} {run.root / 'seed_0000'}`")
    if automata_only and kind != "automata":
        raise CheckpointError(f"{run.root} is a {kind!r} run; `{command}` reads automata runs")
    return run


def cmd_extract(args) -> int:
    from rnnautomata.automata import Machine

    run = _one_run(args.run, "extract", "extract from")
    step = run.resolve_step(args.step)
    robust = getattr(args, "method", "robust") == "robust"
    path = run.robust_automaton_path(step) if robust else run.automaton_path(step)
    from rnnautomata.dynamics import read_dynamics, stored_machine_is_current, track

    if path.is_file():
        epsilon = None
        if not robust:
            try:
                epsilon = read_dynamics(run.root)["epsilon"]
            except CheckpointError:
                epsilon = float("nan")  # no dynamics.json to vouch for it: extract again
        if not stored_machine_is_current(run, path, step, epsilon):
            print(f"the stored machine {path} was made from another checkpoint or ε; extracting again",
                  file=sys.stderr)
            path.unlink()
    if not path.is_file():
        track(run.root, progress=not args.quiet, robust=True if robust else None)
    if not path.is_file():
        raise CheckpointError(f"{path} was not written; rerun `rnnautomata track {run.root}`")
    machine = Machine.load(path)
    if args.minimize:
        machine = machine.minimize()
    if args.format == "dot":
        print(machine.to_dot())
    else:
        print(json.dumps(machine.to_json(), indent=1))
    return 0


def cmd_track(args) -> int:
    from rnnautomata.studies import run_kind

    engine = _engine(args)
    kind = run_kind(args.run)
    given = {"merger": args.merger, "epsilon_scale": args.epsilon_scale, "nerode": args.nerode or None,
             "robust": False if args.no_robust else None, "out_dir": args.out, "jobs": args.jobs}
    options = _accepted(kind.track, {k: v for k, v in given.items() if v is not None})
    options = _engine_options(kind.track, options, engine, f"{args.run} (one {kind.name!r} run)")
    result = kind.track(Path(args.run), device=_engine_device(args), progress=not args.quiet, **options)
    options.pop("engine", None)
    kind.show_track(result, Path(args.run), as_json=args.json, **options)
    return 0


def cmd_steps(args) -> int:
    run = _one_run(args.run, "steps", "list the steps of", automata_only=False)
    metrics = {m.get("step"): m for m in run.read_metrics()}
    states = {}
    if run.dynamics_path.is_file():
        from rnnautomata.dynamics import read_dynamics

        states = {c["step"]: c for c in read_dynamics(run.root)["checkpoints"]}
    rows = []
    for i, step in enumerate(run.steps()):
        m, c = metrics.get(step, {}), states.get(step, {})
        rows.append({"index": i, "step": step, "epoch": m.get("epoch"), "val_acc": m.get("val/acc"),
                     "n_states": c.get("n_states"), "n_states_min": c.get("n_states_min"),
                     "robust_states": (c.get("robust") or {}).get("n_states"), "congruence": c.get("congruence")})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0

    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    print(f"{'@':>4} {'step':>8} {'epoch':>8} {'val acc':>8} {'ε states':>9} {'minimised':>9} {'ε-free':>7} {'congruence':>10}")
    for r in rows:
        print(f"{'@' + str(r['index']):>4} {r['step']:>8} {f(r['epoch'], '.4g'):>8} {f(r['val_acc'], '.4f'):>8} "
              f"{f(r['n_states'], 'd'):>9} {f(r['n_states_min'], 'd'):>9} {f(r['robust_states'], 'd'):>7} {f(r['congruence'], '.3f'):>10}")
    if not states:
        print(f"(states appear after `rnnautomata track {run.root}`)")
    return 0


def cmd_render(args) -> int:
    from rnnautomata.studies import run_kind

    steps = None if args.step is None else [args.step]
    for path in run_kind(args.run).render(Path(args.run), steps=steps):
        print(f"wrote {path}")
    return 0


def cmd_report(args) -> int:
    from rnnautomata.studies import run_kind

    print(f"wrote {run_kind(args.run).report(Path(args.run))}")
    return 0


def cmd_tasks(args) -> int:
    from rnnautomata.data import describe, task_names

    print("tasks (task.name in a study):")
    for name in task_names():
        print(f"  {name:<22} {describe(name)}")
    from rnnautomata.studies import get_kind, kind_names, shipped_studies

    print("study kinds (kind in a study):")
    for name in kind_names():
        print(f"  {name:<22} {get_kind(name).description}")
    studies = shipped_studies()
    if studies:
        print("shipped studies (`rnnautomata run NAME` from any folder):")
        for name, p in studies.items():
            print(f"  {name:<28} {p}")
    return 0


def _positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer of at least 1 (got {text!r})") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer of at least 1 (got {value})")
    return value


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, ``error: ...`` and exit status 2, like the rest."""

    def error(self, message: str):
        self.exit(2, f"error: {message}; see `{self.prog} --help`\n")


def _add_engine_options(p: argparse.ArgumentParser, job: str, jobs_help: str) -> None:
    """The engine flags, one definition for ``sweep`` (a ``job`` is a run) and ``run | track`` (a
    ``job`` is one seed's tracking): :func:`rnnautomata.engines.make_engine` reads them."""
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (default): processes on this machine; ray: Ray tasks (pip install 'rnnautomata[ray]')")
    p.add_argument("--address", help="--engine ray: join the Ray cluster at this address (default: start a local Ray)")
    p.add_argument("--jobs", type=_positive_int, metavar="N", help=jobs_help)
    p.add_argument("--gpus-per-run", type=float, metavar="F",
                   help=f"--engine ray: GPUs per {job}, e.g. 0.25 puts four {job}s on a GPU (each capped to its share of "
                        "memory; --device defaults to cuda)")


_JOBS_HELP = ("many-seed folders: seeds tracked at once, one process each (default: the number of CPUs; "
              "--engine ray: the local Ray's CPUs)")
_SEED_JOB = "seed"  # run | track: a job is one seed's tracking


def build_parser() -> argparse.ArgumentParser:
    from rnnautomata.merge_registry import MERGERS  # the names only: no scikit-learn import

    parser = _Parser(prog="rnnautomata", description="Extract automata from networks as they train.")
    parser.add_argument("--version", action="version", version=f"rnnautomata {__version__}")
    parser.add_argument("--threads", type=_positive_int, metavar="N",
                        help="torch CPU threads (default: torch's choice; 1 is often faster for small models "
                             "and on a busy machine)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="train a study, extract automata at every checkpoint, render and report")
    p.add_argument("study", help="a study TOML file, or a shipped study's name (e.g. tomita3; `rnnautomata tasks` lists them)")
    p.add_argument("--out", help="run directory (default runs/<study name>); an existing run of the same study resumes")
    p.add_argument("--device", help="cpu (default; cuda with --gpus-per-run), cuda, cuda:N")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a study field, e.g. train.lr=0.05")
    p.add_argument("--no-render", action="store_true", help="skip drawings and the HTML report")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_engine_options(p, _SEED_JOB, _JOBS_HELP)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("sweep", help="a grid of study fields × seeds: every run, then the phase diagram")
    p.add_argument("study", help="a study TOML file (its [sweep] table gives the grid and seeds) or a shipped study's name")
    p.add_argument("--grid", action="append", metavar="KEY=V1,V2",
                   help="a study field and its values, e.g. model.init_gain=0.1,0.3,1.0 (repeat for more axes; "
                        "replaces the file's [sweep.grid])")
    p.add_argument("--seeds", metavar="SEEDS", help="every grid point's seeds: 0-15, 0,3,7 or 0-3,8")
    _add_engine_options(p, "run", "runs at once (default: the number of CPUs; --engine ray: the local Ray's CPUs)")
    p.add_argument("--out", help="sweep directory (default runs/<study name>); rerunning into it finishes the sweep")
    p.add_argument("--device", help="every run's device: cpu (default), cuda, cuda:N")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a field of the base study")
    p.add_argument("--no-render", action="store_true", help="skip the runs' and the sweep's HTML pages")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("extract", help="print the machine extracted at a checkpoint")
    p.add_argument("run")
    p.add_argument("--step", default="last", help="a checkpoint step, 'last' (default) or @K (the K-th checkpoint; @-1 = last)")
    p.add_argument("--format", choices=("json", "dot"), default="json")
    p.add_argument("--minimize", action="store_true", help="print the minimised machine (the ε-free one always is)")
    p.add_argument("--method", choices=("robust", "epsilon"), default="robust",
                   help="robust (default): the ε-free machine chosen from the network's behaviour; "
                        "epsilon: the ε rule's machine (the paper's merged states)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("track", help="extract at every checkpoint; write and print dynamics.json")
    p.add_argument("run")
    p.add_argument("--merger", choices=tuple(MERGERS), help="override the study's merger")
    p.add_argument("--epsilon-scale", type=float, help="override extract.epsilon_scale")
    p.add_argument("--device", help="cpu (default; cuda with --gpus-per-run), cuda, cuda:N")
    p.add_argument("--json", action="store_true", help="print the whole dynamics JSON")
    p.add_argument("--nerode", action="store_true",
                   help="also measure merge precision/recall against the task's Nerode classes at every checkpoint")
    p.add_argument("--no-robust", action="store_true",
                   help="skip the ε-free machine at every checkpoint (only the ε rule; faster)")
    p.add_argument("--out", metavar="DIR",
                   help="write dynamics.json and automata/ into DIR instead of the run folder (nothing there is overwritten)")
    p.add_argument("--quiet", action="store_true")
    _add_engine_options(p, _SEED_JOB, _JOBS_HELP)
    p.set_defaults(func=cmd_track)

    p = sub.add_parser("render", help="draw machines and the merge timeline into RUN/figures")
    p.add_argument("run")
    p.add_argument("--step", help="draw only this checkpoint's machine (a step, 'last' or @K)")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("report", help="write RUN/report.html")
    p.add_argument("run")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("tasks", help="list the known tasks and shipped studies")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("steps", help="list a run's checkpoints: index (@K), step, epoch, accuracy, states")
    p.add_argument("run")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_steps)
    return parser


def _os_error_message(err: OSError, args) -> str:
    """One line for a failed file operation: the path, the OS's reason, and what to do."""
    folder = getattr(args, "out_dir", None) or getattr(args, "run", None)
    path = err.filename if err.filename is not None else f"writing under {folder}" if folder else "a file"
    if err.filename2 is not None:
        path = f"{path} -> {err.filename2}"
    reason = err.strerror or str(err) or type(err).__name__
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        advice = "free some space or choose --out on another disk"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        advice = "choose an --out folder you can write to"
    elif err.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        advice = "a file or folder is in the way; choose another --out"
    else:
        advice = "check the path and the disk"
    return f"{path}: {reason}; {advice}"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a bad argument (one line, status 2)
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    try:
        return args.func(args)
    except RnnAutomataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: {_os_error_message(err, args)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; finished checkpoints are kept, rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
