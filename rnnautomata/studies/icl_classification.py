"""Study kind ``icl_classification``: in-context vs in-weights classification (Nguyen & Reddy 2024).
The work is in :mod:`rnnautomata.icl.classification`."""

from __future__ import annotations

from pathlib import Path

from rnnautomata.studies.icl import ICLFamilyKind, _json

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
        """Final acc/icl, acc/iwl and losses, t_ICL and t_IWL, the ICL peak and whether ICL was transient
        (summary.json)."""
        s = _json(Path(run_dir) / "summary.json")
        row = {f"final_{k.replace('/', '_')}": v for k, v in s["final"].items()}
        return {**row, "t_icl": s["t_icl"], "t_iwl": s["t_iwl"], "peak_icl_acc": s["peak_icl"]["acc"],
                "peak_icl_step": s["peak_icl"]["step"], "icl_transient": s["icl_transient"]}
