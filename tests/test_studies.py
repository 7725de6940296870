"""The study kinds' ``summarise``: each row is read back against an independent source (the run's
metrics.jsonl or dynamics.json, not the summary file the kind reads), on tiny runs.
"""

from __future__ import annotations

import json

import pytest

from rnnautomata.runs import RunDir
from rnnautomata.studies import get_kind, run_kind

from conftest import tiny_raw

_ICL = {"kind": "icl", "name": "tiny_icl",
        "data": {"x_dim": 2, "n_context": 6, "n_train": 300, "n_test": 200},
        "model": {"parametrization": "merged", "n_heads": 2, "init_scale": 1e-3},
        "train": {"lr": 0.02, "epochs": 40, "eval_every": 5, "checkpoint_every": 20, "seed": 0}}
_GROKKING = {"kind": "grokking", "data": {"modulus": 7, "train_fraction": 0.5},
             "model": {"embed_dim": 4, "hidden_size": 8},
             "train": {"epochs": 20, "eval_every": 5, "checkpoint_every": 10, "lr": 0.01}}
_CLASSIFICATION = {"kind": "icl_classification", "name": "tiny_cls",
                   "data": {"x_dim": 6, "n_items": 40, "n_context": 5, "n_test": 100},
                   "model": {"mlp_width": 16},
                   "train": {"lr": 0.05, "batch_size": 16, "epochs": 40, "eval_every": 10, "checkpoint_every": 20}}


def _last_metrics(out):
    return RunDir(out).read_metrics()[-1]


def test_automata_summary_is_the_runs_dynamics(tmp_path):
    kind = get_kind("automata")
    out = tmp_path / "r"
    kind.run(kind.load(tiny_raw(task={"test_lengths": [20]})), out, progress=False, render=False)
    assert run_kind(out).name == "automata"
    row = kind.summarise(out)
    ck = json.loads((out / "dynamics.json").read_text())["checkpoints"]
    assert row["peak_states"] == max(c["n_states"] for c in ck)
    assert (row["final_states"], row["final_states_min"], row["finite"]) == (
        ck[-1]["n_states"], ck[-1]["n_states_min"], ck[-1]["finite"])
    assert row["final_train_loss"] == _last_metrics(out)["train/loss"]
    assert row["longest_test_length"] == 20 and row["generalises"] is None  # 20 is too short to say


@pytest.mark.parametrize("raw, keys", [
    (_ICL, {"final_train_loss": "train/loss", "final_test_loss": "test/loss"}),
    (_GROKKING, {"final_train_acc": "train/acc", "final_test_acc": "test/acc"}),
    (_CLASSIFICATION, {"acc_icl": "acc/icl", "acc_iwl": "acc/iwl", "train_loss": "train/loss"}),
], ids=["icl", "grokking", "icl_classification"])
def test_icl_family_summary_is_the_last_metrics_row(tmp_path, raw, keys):
    kind = get_kind(raw["kind"])
    kind.run(kind.load(raw), tmp_path, progress=False)
    assert run_kind(tmp_path).name == raw["kind"]
    row = kind.summarise(tmp_path)
    last = _last_metrics(tmp_path)
    assert last["step"] == raw["train"]["epochs"]
    for ours, theirs in keys.items():
        assert row[ours] == pytest.approx(last[theirs])
    assert all(isinstance(v, (int, float, bool)) or v is None for v in row.values())  # flat scalars
