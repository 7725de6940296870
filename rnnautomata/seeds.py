"""Many seeds of one study trained as one model: the entry point for every architecture.

Recurrent networks go through :mod:`rnnautomata.batched` (a fused stacked recurrence); any other
sequence model (a transformer) through :mod:`rnnautomata.stacked` (``torch.func`` stacked
parameters). Both write ``out_dir/seed_XXXX/`` run folders with the same manifests.
"""

from __future__ import annotations

from pathlib import Path

from rnnautomata.config import Study

__all__ = ["train_seeds"]


def train_seeds(study: Study, out_dir: str | Path, device: str | None = None, progress: bool = True) -> dict:
    """Train every seed of ``study.seeds`` together into ``out_dir/seed_XXXX/``; see
    :func:`rnnautomata.batched.train_seeds` for the arguments, result and errors."""
    from rnnautomata.models.rnn import ARCHS as RECURRENT_ARCHS

    if study.model.arch in RECURRENT_ARCHS:
        from rnnautomata.batched import train_seeds as train_recurrent

        return train_recurrent(study, out_dir, device, progress)
    from rnnautomata.stacked import train_stacked

    return train_stacked(study, out_dir, device, progress)
