"""The central experiment of van Rossem & Saxe (2025), end to end (slow: ~2-4 minutes on 2 cores).

Asserts the phenomenon itself, measured on the shipped study, against the ground truth:
the merged-state count grows to hundreds while the network fits the training strings, then falls by
an order of magnitude; the machine becomes finite, minimises to the 2-state parity machine; the
network then generalises to strings of length 100, 1,000 and 10,000.
"""

from pathlib import Path

import pytest

from rnnautomata.config import load_study
from rnnautomata.dynamics import track
from rnnautomata.train import train

STUDY = Path(__file__).parents[1] / "tasks" / "streaming_parity.toml"


@pytest.mark.slow
def test_streaming_parity_tree_then_merge(tmp_path):
    study = load_study(STUDY)
    train(study, tmp_path / "run", progress=False)
    dyn = track(tmp_path / "run", progress=False)
    ck = dyn["checkpoints"]
    peak_i = max(range(len(ck)), key=lambda i: ck[i]["n_states"])
    peak = ck[peak_i]
    final = ck[-1]
    # tree phase: hundreds of states, training loss falling ahead of validation loss
    assert peak["n_states"] >= 100, peak
    assert peak["train_loss"] < 0.5 * peak["val_loss"], peak
    # merge: an order of magnitude fewer states, finite, minimal = the parity machine
    assert final["n_states"] * 10 <= peak["n_states"]
    assert dyn["finite_from_step"] is not None and dyn["finite_from_step"] > peak["step"]
    assert final["n_states_min"] == 2
    assert dyn["final"]["equivalent_to_truth"] is True
    # behaviour: validation loss drops with the merge, and length generalisation is perfect
    assert final["val_loss"] < 1e-3 < peak["val_loss"]
    assert final["acc_by_length"] == {"100": 1.0, "1000": 1.0, "10000": 1.0}
    assert [p["name"] for p in dyn["phases"]][-3:] == ["tree", "merging", "finite"]
