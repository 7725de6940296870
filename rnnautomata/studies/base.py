"""What a study kind is: one class with load / run / track / render / report / summarise.

A study kind is one file holding a :class:`StudyKind` subclass, plus one line in
``rnnautomata.studies.KINDS``; ``rnnautomata run | track | render | report | sweep`` dispatch
through it (docs/contracts.md, "Study kinds", has a worked example). Only ``load`` and ``run`` are
required; ``report`` writes the measures page (:mod:`rnnautomata.measures_report`: the kind's
summary, its figures and its metrics) for a kind with ``summarise``, and the other commands answer with a one-line error naming
what the kind does instead.

The ``show_*`` methods print a command's result for the command line; the defaults print it as
JSON, so a kind that has nothing better to say needs none of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from rnnautomata.errors import CheckpointError

__all__ = ["StudyKind"]


class StudyKind:
    """One kind of study (``kind = "..."`` in a study file).

    Attributes
    ----------
    name : the ``kind`` value in study files and in a run's manifest.
    description : one line for ``rnnautomata tasks``.
    """

    name: str = ""
    description: str = ""

    def load(self, raw: dict) -> Any:
        """The study's frozen config from a TOML dict; ``ConfigError`` (one line, naming the field) if bad."""
        raise NotImplementedError

    def run(self, study: Any, out: Path, *, device: str | None = None, progress: bool = True,
            render: bool = True, **options) -> dict:
        """Train (resuming a finished prefix in ``out``), measure, and write figures; a JSON-able summary.

        ``options`` are command-line extras a kind may read (``jobs``: processes for tracking many
        seeds); a kind ignores the ones it does not know. A kind that spreads per-seed work names an
        ``engine`` parameter (an :class:`rnnautomata.engines.Engine`); the cli passes ``--engine`` only
        to such a method and refuses ``--engine ray`` for the others (docs/contracts.md).
        ``device`` None means the study's own or cpu.
        """
        raise NotImplementedError

    def track(self, run_dir: Path, *, device: str | None = None, progress: bool = True, **options) -> dict:
        """Recompute the per-checkpoint measures of a run from its checkpoints; JSON-able.

        ``options``: the ``rnnautomata track`` flags the user gave (``merger``, ``epsilon_scale``,
        ``nerode``, ``robust``, ``out_dir``, ``jobs``, and ``engine`` for a method that names it, as in
        :meth:`run`); a kind ignores the ones it does not know."""
        raise CheckpointError(f"{run_dir} is a {self.name!r} run; `rnnautomata track` does not apply to it")

    def render(self, run_dir: Path, steps: Sequence[int | str] | None = None) -> list[Path]:
        """Draw the run's figures; the paths written. ``steps``: draw only these checkpoints (a step,
        ``"last"`` or ``"@K"``, as :meth:`rnnautomata.runs.RunDir.resolve_step` reads them), where the
        kind draws per checkpoint."""
        raise CheckpointError(f"{run_dir} is a {self.name!r} run; `rnnautomata render` does not apply to it")

    def report(self, run_dir: Path) -> Path:
        """Write the run's HTML report; its path. Default: the measures page of
        :func:`rnnautomata.measures_report.write_measures_report` (the :meth:`summarise` row, every
        figure in ``RUN/figures``, the metrics.jsonl rows); a one-line ``CheckpointError`` for an
        unfinished run. :meth:`run` writes it too when ``render``. A kind without :meth:`summarise`
        has no report (one-line ``CheckpointError``)."""
        from rnnautomata.measures_report import write_measures_report

        if type(self).summarise is StudyKind.summarise:
            raise CheckpointError(f"{run_dir} is a {self.name!r} run; `rnnautomata report` does not apply to it")

        return write_measures_report(Path(run_dir), self)

    def summarise(self, run_dir: Path) -> dict:
        """Flat scalars describing a finished run (one row of a sweep's aggregate.csv)."""
        raise CheckpointError(f"{run_dir} is a {self.name!r} run; sweeps do not summarise it yet")

    def sweep_figures(self, sweep_dir: Path, run_dirs: Sequence[Path]) -> list[Path]:
        """Figures across a sweep's finished runs of this kind (e.g. a joint trajectory PCA, K* vs N),
        written under ``sweep_dir / "figures"``; the paths written. Default: none."""
        return []

    # --- the command line's view of the results ---------------------------------------------------
    def show_run(self, summary: dict, out: Path) -> None:
        """Print what ``rnnautomata run`` says after :meth:`run` returned ``summary``."""
        print(json.dumps(summary, indent=1, default=str))
        print(f"run directory: {out}")

    def show_track(self, result: dict, run_dir: Path, *, as_json: bool = False, **options) -> None:
        """Print what ``rnnautomata track`` says after :meth:`track` returned ``result``
        (``as_json``: the user asked for ``--json``; ``options`` as given to :meth:`track`)."""
        print(json.dumps(result, indent=1, default=str))
