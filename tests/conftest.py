"""Shared fixtures: tiny seeded studies that train in well under a second.

Test tiers: unit (default, fast), `slow` (runs a whole shipped study; `make test` includes them),
`browser` (drives headless Chromium; skipped when it is absent).
"""

from __future__ import annotations

import pytest

from rnnautomata.config import study_from_dict


def tiny_raw(**sections) -> dict:
    raw = {
        "name": "tiny",
        "seed": 0,
        "task": {"name": "streaming_parity", "train_max_length": 4, "val_length": 12, "val_samples": 16,
                 "test_lengths": [20, 1500], "test_samples": 4},
        "model": {"hidden_size": 12},
        "train": {"epochs": 4, "batch_size": 8, "checkpoint_every": 1, "early_checkpoints": 3, "lr": 0.05, "eval_every": 2},
        "probe": {"depth": 4},
    }
    for key, value in sections.items():
        if isinstance(value, dict):
            raw.setdefault(key, {}).update(value)
        else:
            raw[key] = value
    return raw


@pytest.fixture
def tiny_study():
    return study_from_dict(tiny_raw())


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny test models run faster and with stable timings on one thread (CI has 2 cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
