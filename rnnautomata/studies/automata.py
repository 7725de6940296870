"""Study kind ``automata``: train a network on a regular language and extract its machine at every
checkpoint; and the many-seed folder it writes when the study sets ``seeds`` (folder kind ``seeds``).

The work is done elsewhere (``train``, ``batched``, ``dynamics``, ``render``, ``report``,
``aggregate``, ``seeds_report``); this file adapts it to the :class:`StudyKind` contract and holds
what ``rnnautomata run | track`` print for these runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Sequence

from rnnautomata.engines import Engine, no_jobs_to_spread
from rnnautomata.errors import CheckpointError
from rnnautomata.studies.base import StudyKind

__all__ = ["AutomataKind", "SeedsKind"]


class AutomataKind(StudyKind):
    """A network (RNN or transformer) on a regular language; its machine at every checkpoint."""

    name = "automata"
    description = "a network on a regular language: merged states and the extracted machine at every checkpoint"

    def load(self, raw: dict):
        from rnnautomata.config import study_from_dict

        return study_from_dict(raw)

    def run(self, study, out: Path, *, device: str | None = None, progress: bool = True, render: bool = True,
            engine: Engine | None = None, **options) -> dict:
        """Train, track and (``render``) draw and report; with ``study.seeds``, every seed as one
        batched model into ``out/seed_XXXX``, tracked as jobs on ``engine`` (:class:`SeedsKind`).
        A large study gets a warning first.

        Raises
        ------
        ConfigError if ``engine`` is not local and the study has no ``seeds`` (one network: no jobs
        to spread), before anything is trained.
        """
        from rnnautomata.data import make_task
        from rnnautomata.train import size_warning

        if study.seeds is None and engine is not None and engine.name != "local":
            raise no_jobs_to_spread(f"study {study.name!r} (one network: it sets no seeds)")
        warning = size_warning(study, make_task(study.task).n_symbols)
        if warning is not None:
            print(f"warning: {warning}", file=sys.stderr)
        if study.seeds is not None:
            return SeedsKind().run(study, out, device=device, progress=progress, render=render, engine=engine,
                                   **options)
        from rnnautomata.dynamics import track
        from rnnautomata.train import train

        result = train(study, out, device=device, progress=progress)
        if result["resumed_from"] is not None:
            print(f"resumed from step {result['resumed_from']}", file=sys.stderr)
        dyn = track(out, device=device or study.train.device, progress=progress)
        written = [str(p) for p in self._draw(Path(out))] if render else []
        return {"kind": self.name, "run_dir": str(out), "resumed_from": result["resumed_from"], "dynamics": dyn,
                "written": written}

    def _draw(self, out: Path) -> list[Path]:
        from rnnautomata.report import write_report

        return [*self.render(out), write_report(out)]

    def track(self, run_dir: Path, *, device: str | None = None, progress: bool = True, merger: str | None = None,
              epsilon_scale: float | None = None, nerode: bool | None = None, robust: bool | None = None,
              out_dir: str | Path | None = None, **options) -> dict:
        """:func:`rnnautomata.dynamics.track` (the dynamics dict, also written to dynamics.json)."""
        from rnnautomata.dynamics import track

        return track(run_dir, merger=merger, epsilon_scale=epsilon_scale, device=device or "cpu", progress=progress,
                     nerode=nerode, robust=robust, out_dir=out_dir)

    def render(self, run_dir: Path, steps: Sequence[int | str] | None = None) -> list[Path]:
        from rnnautomata.render import render_run
        from rnnautomata.runs import RunDir

        if steps is not None:
            steps = [RunDir(Path(run_dir)).resolve_step(s) for s in steps]
        return render_run(Path(run_dir), steps=steps)

    def report(self, run_dir: Path) -> Path:
        from rnnautomata.report import write_report

        return write_report(Path(run_dir))

    def summarise(self, run_dir: Path) -> dict:
        """The run's row of a sweep: :func:`rnnautomata.sweep.seed_summary` of its dynamics.json."""
        from rnnautomata.config import load_study
        from rnnautomata.dynamics import read_dynamics
        from rnnautomata.runs import RunDir
        from rnnautomata.sweep import seed_summary

        study = load_study(RunDir(Path(run_dir)).study_path)
        return seed_summary(read_dynamics(run_dir), study.task.test_lengths)

    def show_run(self, summary: dict, out: Path) -> None:
        if summary["kind"] == SeedsKind.name:  # the study set `seeds`
            return SeedsKind().show_run(summary, out)
        _print_dynamics_summary(summary["dynamics"])
        for path in summary["written"]:
            print(f"wrote {path}")
        print(f"run directory: {out}")

    def show_track(self, result: dict, run_dir: Path, *, as_json: bool = False, out_dir=None, **options) -> None:
        if as_json:
            print(json.dumps(result, indent=1))
        else:
            _print_dynamics_summary(result)
            print(f"wrote {Path(out_dir or run_dir) / 'dynamics.json'}")


class SeedsKind(StudyKind):
    """A many-seed folder: an ``automata`` study with ``seeds``, one run per seed in ``seed_XXXX/``."""

    name = "seeds"
    description = "many seeds of an automata study, trained as one batched model"

    def load(self, raw: dict):
        return AutomataKind().load(raw)

    def run(self, study, out: Path, *, device: str | None = None, progress: bool = True, render: bool = True,
            jobs: int | None = None, engine: Engine | None = None, **options) -> dict:
        """Train every seed as one batched model (in this process), track each seed as a job on
        ``engine`` (default ``LocalEngine(jobs)``), and (``render``) write the seeds' report.

        The engine connects before training starts, so a Ray ``--address`` that does not answer
        fails before anything is written."""
        from rnnautomata.aggregate import aggregate_seeds
        from rnnautomata.engines import LocalEngine
        from rnnautomata.seeds import train_seeds

        engine = engine if engine is not None else LocalEngine(jobs)
        with engine:
            train_seeds(study, out, device=device, progress=progress)
            agg = aggregate_seeds(out, progress=progress, engine=engine, device=device)
        report = None
        if render:
            from rnnautomata.seeds_report import write_seeds_report

            report = str(write_seeds_report(out))
        return {"kind": self.name, "run_dir": str(out), "aggregate": agg, "report": report}

    def track(self, run_dir: Path, *, device: str | None = None, progress: bool = True, jobs: int | None = None,
              engine: Engine | None = None, **options) -> dict:
        """:func:`rnnautomata.aggregate.aggregate_seeds`: every seed tracked (a job each on ``engine``,
        default ``LocalEngine(jobs)``; seeds already tracked are read), the spread across seeds."""
        from rnnautomata.aggregate import aggregate_seeds

        return aggregate_seeds(Path(run_dir), progress=progress, jobs=jobs, engine=engine, device=device)

    def render(self, run_dir: Path, steps: Sequence[int | str] | None = None) -> list[Path]:
        from rnnautomata.aggregate import aggregate_seeds

        run_dir = Path(run_dir)
        if steps:
            raise CheckpointError(f"{run_dir} holds many seeds; draw one seed's machine with "
                                  f"`rnnautomata render {run_dir / 'seed_0000'} --step {steps[0]}`")
        aggregate_seeds(run_dir, progress=False)  # redraws figures/seeds_timeline.*
        return [run_dir / "figures" / f"seeds_timeline.{ext}" for ext in ("svg", "png")]

    def report(self, run_dir: Path) -> Path:
        from rnnautomata.aggregate import aggregate_seeds
        from rnnautomata.seeds_report import write_seeds_report

        aggregate_seeds(Path(run_dir), progress=False)
        return write_seeds_report(Path(run_dir))

    def show_run(self, summary: dict, out: Path) -> None:
        _print_aggregate_summary(summary["aggregate"])
        if summary["report"] is not None:
            print(f"wrote {summary['report']} (one seed's own report: rnnautomata report {Path(out) / 'seed_0000'})")
        print(f"run directory: {out} (one run per seed in {out}/seed_XXXX)")

    def show_track(self, result: dict, run_dir: Path, *, as_json: bool = False, **options) -> None:
        if as_json:
            print(json.dumps(result, indent=1))
        else:
            _print_aggregate_summary(result)


# --- what `rnnautomata run | track` print ------------------------------------------------------------
def _print_dynamics_summary(dyn: dict) -> None:
    ck = dyn["checkpoints"]
    robust = any("robust" in c for c in ck)
    head = f"{'step':>7} {'epoch':>7} {'states':>6} {'min':>4} {'finite':>6} {'congr':>5} {'train':>9} {'val':>9}"
    print(head + (f" {'robust':>6} {'agree':>6} {'=truth':>6}" if robust else "") + "  acc_by_length")
    stride = max(1, len(ck) // 25)
    shown = set(range(0, len(ck), stride)) | {len(ck) - 1}
    for i, c in enumerate(ck):
        if i not in shown:
            continue
        acc = " ".join(f"{k}:{v:.2f}" for k, v in c["acc_by_length"].items())
        tl = "" if c["train_loss"] is None else f"{c['train_loss']:.2e}"
        vl = "" if c["val_loss"] is None else f"{c['val_loss']:.2e}"
        ner = ""
        if "nerode" in c:
            ner = f"  P/R {c['nerode']['precision'] or 0:.2f}/{c['nerode']['recall'] or 0:.2f}"
        cg = "" if c.get("congruence") is None else f"{c['congruence']:.2f}"
        rob = ""
        if robust and "robust" in c:
            r = c["robust"]
            rob = f" {r['n_states']:>6} {r['agreement']:>6.4f} {str(r['equivalent_to_truth']):>6}"
        print(f"{c['step']:>7} {c['epoch']:>7.1f} {c['n_states']:>6} {c['n_states_min']:>4} {str(c['finite']):>6} {cg:>5} {tl:>9} {vl:>9}{rob}  {acc}{ner}")
    print("phases: " + ", ".join(f"{p['name']} {p['start_step']}-{p['end_step']}" for p in dyn["phases"]))
    f = dyn["final"]
    eps = f.get("epsilon_rule", f)
    print(
        f"ε rule ({dyn['merger']}, ε = {dyn['epsilon']:.3g}): peak states {dyn['peak_states']}; finite from step "
        f"{dyn['finite_from_step']}; final machine {f['n_states']} states -> {f['n_states_min']} minimised; "
        f"equivalent to the task's {f['truth_states']}-state machine: {eps['equivalent_to_truth']}"
        + (f" (counterexample {eps['counterexample']!r})" if eps["counterexample"] is not None else "")
    )
    if "robust" in f:
        r, v = f["robust"], dyn.get("verdicts", {})
        print(
            f"ε-free machine (the run's answer): {r['n_states']} states, agrees with the network on "
            f"{r['agreement']:.4f} of checked positions; equivalent to the truth: {f['equivalent_to_truth']}"
            + (f" (counterexample {f['counterexample']!r})" if f["counterexample"] is not None else "")
        )
        print(
            f"verdicts: equivalent to the truth at {v.get('n_equivalent', 0)} of {v.get('n_checkpoints', 0)} checkpoints"
            + (f" (first step {v['first_equivalent_step']}, last {v['last_equivalent_step']})" if v.get("n_equivalent") else "")
            + f"; matches the network at {v.get('n_faithful', 0)}"
            + (f" (first step {v['first_faithful_step']}, last {v['last_faithful_step']})" if v.get("n_faithful") else "")
            + f"; best checkpoint: step {v.get('best_step')} ({v.get('best_reason')})"
        )
    fid = f.get("fidelity")
    if fid:
        agree = ", ".join(f"len {k}: {v:.3f}" for k, v in fid["network_agreement"].items())
        print(
            f"fidelity of the minimised machine to the network: every string up to length {fid['brute_force_depth']}"
            f" {'agrees' if fid['network_witness'] is None else 'disagrees at ' + repr(fid['network_witness'])}; {agree}"
        )


def _print_aggregate_summary(agg: dict) -> None:
    ck = agg["checkpoints"]
    print(f"{'step':>7} {'seeds':>5} {'states median [q25, q75]':>26} {'min median':>10} {'finite':>7}")
    stride = max(1, len(ck) // 25)
    for i, c in enumerate(ck):
        if i % stride and i != len(ck) - 1:
            continue
        st, mn = c["n_states"], c["n_states_min"]
        band = f"{st['median']:.0f} [{st['q25']:.0f}, {st['q75']:.0f}]"
        print(f"{c['step']:>7} {c['n_seeds']:>5} {band:>26} {mn['median']:>10.0f} {c['fraction_finite']:>7.2f}")
    ff = agg["finite_from_step"]
    final = agg["final"]["per_seed"]
    n_eq = sum(bool(s.get("equivalent_to_truth")) for s in final)
    print(f"finite from step: median {ff['median']} over {len(ff['per_seed']) - ff['n_never']} seeds; never finite: {ff['n_never']}")
    peak = agg.get("peak")
    if peak and peak["n_states"]:
        n, s = peak["n_states"], peak["step"]
        print(f"peak merged states (end of the tree phase): median {n['median']:.0f} [{n['q25']:.0f}, {n['q75']:.0f}] "
              f"at step median {s['median']:.0f} [{s['q25']:.0f}, {s['q75']:.0f}]")
    which = "ε-free machines" if any(s.get("machine") == "robust" for s in final) else "machines"
    print(f"final {which} equivalent to the task's machine: {n_eq} of {len(final)} seeds")
    v = agg.get("verdicts")
    if v:
        eps_eq = sum(bool(s.get("epsilon_rule_equivalent")) for s in final)
        first = v["first_equivalent_step"]
        print(f"ε rule's final machines equivalent: {eps_eq} of {len(final)}; ε-free machine ever equivalent: "
              f"{v['n_ever_equivalent']} of {v['n_seeds']} seeds"
              + ("" if first is None else f", first at step median {first['median']:.0f} [{first['q25']:.0f}, {first['q75']:.0f}]"))
