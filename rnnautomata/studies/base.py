"""What a study kind is: one class with load / run / track / render / report / summarise.

A study kind is one file holding a :class:`StudyKind` subclass, plus one line in
``rnnautomata.studies.KINDS``; ``rnnautomata run | track | render | report | sweep`` dispatch
through it. Only ``load`` and ``run`` are required; the other commands answer with a one-line
error naming what the kind does instead.
"""

from __future__ import annotations

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
            render: bool = True) -> dict:
        """Train (resuming a finished prefix in ``out``), measure, and write figures; a JSON-able summary."""
        raise NotImplementedError

    def track(self, run_dir: Path, *, device: str | None = None, progress: bool = True, **options) -> dict:
        """Recompute the per-checkpoint measures of a run from its checkpoints; JSON-able."""
        raise CheckpointError(f"{run_dir} is a {self.name!r} run; `rnnautomata track` does not apply to it")

    def render(self, run_dir: Path, steps: Sequence[int] | None = None) -> list[Path]:
        """Draw the run's figures; the paths written."""
        raise CheckpointError(f"{run_dir} is a {self.name!r} run; `rnnautomata render` does not apply to it")

    def report(self, run_dir: Path) -> Path:
        """Write the run's HTML report; its path."""
        raise CheckpointError(f"{run_dir} is a {self.name!r} run; `rnnautomata report` does not apply to it")

    def summarise(self, run_dir: Path) -> dict:
        """Flat scalars describing a finished run (one row of a sweep's aggregate.csv)."""
        raise CheckpointError(f"{run_dir} is a {self.name!r} run; sweeps do not summarise it yet")

    def sweep_figures(self, sweep_dir: Path, run_dirs: Sequence[Path]) -> list[Path]:
        """Figures across a sweep's finished runs of this kind (e.g. a joint trajectory PCA, K* vs N),
        written under ``sweep_dir / "figures"``; the paths written. Default: none."""
        return []
