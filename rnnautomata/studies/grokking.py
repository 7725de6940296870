"""Study kind ``grokking``: modular addition learnt long after it is memorised, watched through the
weights' spectral rank and subspace stability. The work is in :mod:`rnnautomata.icl.grokking`."""

from __future__ import annotations

from pathlib import Path

from rnnautomata.studies.icl import ICLFamilyKind, _json

__all__ = ["GrokkingKind"]


class GrokkingKind(ICLFamilyKind):
    """A two-token MLP on (a + b) mod p with strong weight decay (Mainali & Teixeira 2025, Sec. 6)."""

    name = "grokking"
    description = "modular addition with weight decay: the test-accuracy jump and the weights' rank"

    def train(self, study, out: Path, device: str, progress: bool) -> dict:
        from rnnautomata.icl.grokking import run_grokking

        return run_grokking(study, out, device, progress)

    def measure(self, study, run) -> dict:
        from rnnautomata.icl.grokking import track_grokking

        return track_grokking(study, run)

    def summarise(self, run_dir: Path) -> dict:
        """Final accuracies and losses, and the steps at which train and test accuracy jump (summary.json)."""
        summary = _json(Path(run_dir) / "summary.json")
        row = {f"final_{k.replace('/', '_')}": v for k, v in summary["final"].items()}
        return {**row, "train_fit_step": summary["train_fit_step"], "test_jump_step": summary["test_jump_step"]}
