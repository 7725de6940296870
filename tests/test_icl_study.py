"""ICL / grokking studies: validation, the run directory, determinism, NaN handling, tracking."""

import json
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from rnnautomata.errors import ConfigError, TrainingError
from rnnautomata.icl.config import study_to_toml
from rnnautomata.icl.study import load_study, run_study, track_run

TASKS = Path(__file__).resolve().parents[1] / "tasks"


def tiny_icl(**sections) -> dict:
    raw = {"kind": "icl", "name": "tiny_icl",
           "data": {"x_dim": 2, "n_context": 6, "n_train": 300, "n_test": 200},
           "model": {"parametrization": "merged", "n_heads": 2, "init_scale": 1e-3},
           "train": {"lr": 0.02, "epochs": 60, "eval_every": 5, "checkpoint_every": 20, "seed": 0},
           "measures": {"top_k": 2}}
    for key, value in sections.items():
        raw[key].update(value)
    return raw


@pytest.mark.parametrize("name", ["icl_linear_merged", "icl_linear_separate", "grokking_modular_addition"])
def test_shipped_studies_load_and_round_trip(name):
    study = load_study(tomllib.loads((TASKS / f"{name}.toml").read_text()))
    assert load_study(tomllib.loads(study_to_toml(study))) == study


@pytest.mark.parametrize("raw, match", [
    ({"kind": "icl", "model": {"parametrization": "tied"}}, "model.parametrization"),
    ({"kind": "icl", "train": {"lr": -1.0}}, "train.lr must be positive"),
    ({"kind": "icl", "data": {"x_dim": 3, "spectrum": [1.0, 2.0]}}, "data.spectrum"),
    ({"kind": "icl", "data": {"n_contxt": 3}}, "unknown field data.n_contxt"),
    ({"kind": "rnn"}, "kind"),
    ({"kind": "grokking", "data": {"train_fraction": 1.5}}, "train_fraction"),
])
def test_invalid_studies_name_the_field(raw, match):
    with pytest.raises(ConfigError, match=match):
        load_study(raw)


def test_run_writes_the_run_directory_and_is_deterministic(tmp_path):
    study = load_study(tiny_icl())
    summary = run_study(study, tmp_path / "a", "cpu", progress=False)
    run_study(study, tmp_path / "b", "cpu", progress=False)
    a = tmp_path / "a"
    for f in ("study.toml", "manifest.json", "metrics.jsonl", "theory.json", "measures.json", "figures/loss.png",
              "figures/modes.svg", "figures/measures.png",
              "checkpoints/step_000000.safetensors", "checkpoints/step_000060.safetensors"):
        assert (a / f).is_file(), f
    assert json.loads((a / "manifest.json").read_text())["status"] == "complete"
    assert (a / "metrics.jsonl").read_text() == (tmp_path / "b" / "metrics.jsonl").read_text()
    assert summary["drop_step"]["simulation"] is not None
    measures = track_run(a)
    assert len(measures["steps"]) == 4 and (a / "measures.json").is_file()
    assert "effective_gamma" in measures["spectral"]


def test_separate_run_writes_the_plateau_table(tmp_path):
    raw = tiny_icl(model={"parametrization": "separate", "n_heads": 3, "init_scale": 0.05},
                   data={"spectrum": [3.0, 1.0]}, train={"epochs": 150, "lr": 0.05, "checkpoint_every": 50})
    summary = run_study(load_study(raw), tmp_path, "cpu", progress=False)
    assert [r["k"] for r in summary["plateaus"]] == list(range(len(summary["plateaus"])))
    assert (tmp_path / "plateaus.md").read_text().startswith("| k | step |")


def test_nan_loss_stops_with_training_error_and_keeps_checkpoints(tmp_path):
    study = load_study(tiny_icl(model={"init_scale": 1.0}, train={"lr": 50.0, "checkpoint_every": 1}))
    with pytest.raises(TrainingError, match=r"at step \d+; lower train.lr"):
        run_study(study, tmp_path, "cpu", progress=False)
    assert (tmp_path / "checkpoints" / "step_000000.safetensors").is_file()


def test_grokking_pipeline_runs(tmp_path):
    raw = {"kind": "grokking", "data": {"modulus": 7, "train_fraction": 0.5},
           "model": {"embed_dim": 4, "hidden_size": 8},
           "train": {"epochs": 20, "eval_every": 5, "checkpoint_every": 10, "lr": 0.01}}
    summary = run_study(load_study(raw), tmp_path, "cpu", progress=False)
    assert set(summary["final"]) == {"train/acc", "test/acc", "train/loss", "test/loss"}
    out = track_run(tmp_path)
    assert out["steps"] == [0, 10, 20] and set(out["spectral"]) == {"embed", "w_in", "w_out"}


GROKKING = {"kind": "grokking", "data": {"modulus": 7, "train_fraction": 0.5},
            "model": {"embed_dim": 4, "hidden_size": 8},
            "train": {"epochs": 20, "eval_every": 5, "checkpoint_every": 5, "lr": 0.01}}


def _checkpoint_files(run: Path) -> dict:
    """Every checkpoint's tensors (as bytes) and metadata (safetensors orders the header's
    metadata arbitrarily, so file bytes are compared through load_checkpoint)."""
    from rnnautomata.runs import load_checkpoint

    out = {}
    for p in sorted((run / "checkpoints").iterdir()):
        tensors, meta = load_checkpoint(p)
        out[p.name] = ({k: v.numpy().tobytes() for k, v in tensors.items()}, meta)
    return out


@pytest.mark.parametrize("raw", [tiny_icl(), GROKKING], ids=["icl", "grokking"])
def test_interrupted_run_resumes_to_the_uninterrupted_run(tmp_path, monkeypatch, raw):
    """Killed after its second checkpoint, a rerun resumes from it (weights, AdamW moments,
    metrics) and ends with checkpoints and metrics byte-identical to a run never interrupted."""
    from rnnautomata import loop as mod  # full_batch_descent, the loop of both kinds

    study = load_study(raw)
    run_study(study, tmp_path / "whole", "cpu", progress=False)
    real = mod.record_checkpoint
    calls = []

    def record_then_die(*args, **kwargs):
        real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(mod, "record_checkpoint", record_then_die)
    with pytest.raises(TrainingError, match=r"interrupted; checkpoints up to step \d+ are kept: rerun"):
        run_study(study, tmp_path / "cut", "cpu", progress=False)
    kept = _checkpoint_files(tmp_path / "cut")
    assert len(kept) == 2
    monkeypatch.setattr(mod, "record_checkpoint", real)
    run_study(study, tmp_path / "cut", "cpu", progress=False)
    whole, cut = _checkpoint_files(tmp_path / "whole"), _checkpoint_files(tmp_path / "cut")
    assert cut.keys() == whole.keys() and all(cut[k] == kept[k] for k in kept)  # kept files untouched
    assert cut == whole
    assert (tmp_path / "cut" / "metrics.jsonl").read_text() == (tmp_path / "whole" / "metrics.jsonl").read_text()
    assert json.loads((tmp_path / "cut" / "manifest.json").read_text())["status"] == "complete"


def test_a_different_study_in_the_folder_is_refused_and_left_alone(tmp_path):
    from rnnautomata.errors import CheckpointError

    run_study(load_study(tiny_icl()), tmp_path, "cpu", progress=False)
    before = _checkpoint_files(tmp_path)
    with pytest.raises(CheckpointError, match=r"holds a different study: train.lr \(.*\); only more train.epochs"):
        run_study(load_study(tiny_icl(train={"lr": 0.01})), tmp_path, "cpu", progress=False)
    with pytest.raises(CheckpointError, match="holds a different kind of run"):
        run_study(load_study(GROKKING), tmp_path, "cpu", progress=False)
    assert _checkpoint_files(tmp_path) == before
