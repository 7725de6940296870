"""Study kind ``icl``: linear attention on in-context regression, against its learning-dynamics theory.

:class:`ICLFamilyKind` is what the three kinds of :mod:`rnnautomata.icl.config` (``icl``,
``grokking``, ``icl_classification``) share: the config reader, the run folder's lock, the study read
back from study.toml for ``track``, and report.html (the measures page of
:mod:`rnnautomata.measures_report`, written by ``run`` when rendering). The work is in
:mod:`rnnautomata.icl.study`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rnnautomata.errors import CheckpointError
from rnnautomata.studies.base import StudyKind

__all__ = ["ICLFamilyKind", "ICLKind"]


class ICLFamilyKind(StudyKind):
    """A study of :mod:`rnnautomata.icl.config`; a subclass gives :meth:`train` and :meth:`measure`."""

    def load(self, raw: dict) -> Any:
        from rnnautomata.icl.config import study_from_dict

        return study_from_dict({**raw, "kind": self.name})

    def train(self, study: Any, out: Path, device: str, progress: bool) -> dict:
        """Train into ``out`` (the folder is locked); the summary."""
        raise NotImplementedError

    def measure(self, study: Any, run) -> dict:
        """The measures over a run's checkpoints (``run`` a RunDir); measures.json's content."""
        raise NotImplementedError

    def run(self, study: Any, out: Path, *, device: str | None = None, progress: bool = True, render: bool = True,
            **options) -> dict:
        from rnnautomata.runs import RunDir

        with RunDir(Path(out)).locked():
            summary = self.train(study, Path(out), device or "cpu", progress)
        if render:
            self.report(Path(out))
        return summary

    def track(self, run_dir: Path, *, device: str | None = None, progress: bool = True, **options) -> dict:
        from rnnautomata.icl.study import read_study
        from rnnautomata.runs import RunDir

        run = RunDir(Path(run_dir))
        run.read_manifest()
        return self.measure(read_study(run), run)

    def show_run(self, summary: dict, out: Path) -> None:
        print(json.dumps(summary, indent=1, default=str))


def _json(path: Path) -> dict:
    """A finished run's summary file (theory.json, summary.json)."""
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; the run has not finished (rerun `rnnautomata run` to complete it)")
    return json.loads(path.read_text())


class ICLKind(ICLFamilyKind):
    """Linear attention on in-context linear regression (Zhang et al. 2025; Mainali & Teixeira 2025)."""

    name = "icl"
    description = "linear attention on in-context regression: loss plateaus and modes against the theory"

    def train(self, study, out: Path, device: str, progress: bool) -> dict:
        from rnnautomata.icl.study import run_icl

        return run_icl(study, out, device, progress)

    def measure(self, study, run) -> dict:
        from rnnautomata.icl.study import track_icl

        return track_icl(study, run)

    def summarise(self, run_dir: Path) -> dict:
        """Final train / test / theory losses and (merged heads) the loss drop's step, from theory.json."""
        theory = _json(Path(run_dir) / "theory.json")
        row = {f"final_{k}": v for k, v in theory["final"].items()}
        drop = theory.get("drop_step")
        if drop is not None:
            row["drop_step"] = drop["simulation"]
            row["drop_step_theory"] = drop["theory_population_gd"]
        return row
