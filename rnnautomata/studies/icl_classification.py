"""Study kind ``icl_classification``: in-context vs in-weights classification (Nguyen & Reddy 2024).
The work is in :mod:`rnnautomata.icl.classification`."""

from __future__ import annotations

from pathlib import Path

from rnnautomata.studies.icl import ICLFamilyKind

__all__ = ["ICLClassificationKind"]


class ICLClassificationKind(ICLFamilyKind):
    """One attention head and an MLP on bursty item sequences: when does it read labels off the context?"""

    name = "icl_classification"
    description = "in-context vs in-weights classification: acc/icl, acc/iwl and t_ICL (Nguyen & Reddy 2024)"

    def train(self, study, out: Path, device: str, progress: bool) -> dict:
        from rnnautomata.icl.classification import run_classification

        return run_classification(study, out, device, progress)

    def measure(self, study, run) -> dict:
        from rnnautomata.icl.classification import track_classification

        return track_classification(study, run)

    def summarise(self, run_dir: Path) -> dict:
        """Final acc/icl and acc/iwl, t_ICL, whether ICL appeared and whether it was transient
        (:func:`rnnautomata.icl.classification.summarise_run`)."""
        from rnnautomata.icl.classification import summarise_run

        return summarise_run(run_dir)

    def sweep_figures(self, sweep_dir: Path, run_dirs) -> list[Path]:
        """K* per N, its spread and the log K* vs log N slope (:mod:`rnnautomata.icl.threshold`)."""
        from rnnautomata.icl.classification import sweep_figures

        return sweep_figures(sweep_dir, run_dirs)

    @property
    def sweep_measures(self):
        from rnnautomata.icl.classification import SWEEP_MEASURES

        return SWEEP_MEASURES
