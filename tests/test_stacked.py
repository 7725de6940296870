"""Many seeds of a transformer as one stacked model (torch.func): each seed = training it alone."""

import pytest
import torch

from rnnautomata.batched import seed_dir, seed_study
from rnnautomata.config import study_from_dict
from rnnautomata.data import make_task
from rnnautomata.seeds import train_seeds
from rnnautomata.stacked import StackedModel
from rnnautomata.train import build_model

from test_batched import _compare_with_single
from test_transformer import _raw


def _study(transformer=None, seeds=(0, 3, 5), **sections):
    raw = _raw({"n_layers": 1, "d_model": 8, "n_heads": 2, **(transformer or {})})
    raw["task"].update(name="tomita2", train_max_length=5, test_lengths=[20], test_samples=8, val_samples=16)
    raw["train"].update(optimizer="adam", lr=0.01, loss="cross_entropy", epochs=2, batch_size=8)
    raw["probe"] = {"depth": 4}
    for name, table in sections.items():
        raw[name].update(table)
    raw["seeds"] = list(seeds)
    return study_from_dict(raw)


@pytest.mark.parametrize("positional", ["none", "learned", "sinusoidal", "rope"])
def test_stacked_forward_equals_each_seed_alone(positional):
    study = _study({"positional": positional, "n_layers": 2})
    task = make_task(study.task)
    models = [build_model(seed_study(study, s), task) for s in study.seeds]
    stacked = StackedModel(models)
    x = torch.randint(0, 2, (3, 4, 7), generator=torch.Generator().manual_seed(1))  # (n, B, T)
    with torch.no_grad():
        out = stacked.prefix_outputs(x)  # (n, B, T + 1, O)
        for k, m in enumerate(models):
            torch.testing.assert_close(out[k], m.prefix_outputs(x[k]), rtol=1e-5, atol=1e-6)
            assert stacked.seed_state_dict(k).keys() == m.state_dict().keys()
    assert not torch.allclose(out[0], out[1])  # the seeds differ


@pytest.mark.parametrize("transformer,sections", [
    ({"positional": "rope"}, {}),  # Adam, cross-entropy after every symbol
    ({"positional": "learned", "max_length": 24, "attn_only": True},  # SGD + momentum, clipping, sampled strings, MSE, last
     {"train": {"optimizer": "sgd", "momentum": 0.9, "lr": 0.05, "grad_clip": 0.5, "loss": "mse"},
      "task": {"target": "last", "train_set": "sample", "train_samples": 6}}),
])
def test_each_seed_matches_training_it_alone(tmp_path, transformer, sections):
    """Checkpoints (weights, optimizer state), metrics and manifests equal to train.train's, seed by seed."""
    study = _study(transformer, **sections)
    multi = _compare_with_single(tmp_path, study)
    assert multi["seed_dirs"] == [str(seed_dir(tmp_path / "multi", s)) for s in study.seeds]


def test_resumed_equals_uninterrupted(tmp_path):
    import shutil

    from rnnautomata.runs import RunDir, load_checkpoint

    study = _study(seeds=(1, 2))
    full = train_seeds(study, tmp_path / "full", progress=False)
    shutil.copytree(tmp_path / "full", tmp_path / "cut")
    keep = full["steps"][3]
    for s in study.seeds:
        run = RunDir(seed_dir(tmp_path / "cut", s))
        for step in run.steps():
            if step > keep:
                run.checkpoint_path(step).unlink()
    RunDir(tmp_path / "cut").write_manifest(status="running")
    resumed = train_seeds(study, tmp_path / "cut", progress=False)
    assert resumed["resumed_from"] == keep and resumed["steps"] == full["steps"]
    for s in study.seeds:
        a, b = RunDir(seed_dir(tmp_path / "full", s)), RunDir(seed_dir(tmp_path / "cut", s))
        last = full["steps"][-1]
        ta, _ = load_checkpoint(a.checkpoint_path(last))
        tb, _ = load_checkpoint(b.checkpoint_path(last))
        for k in ta:
            torch.testing.assert_close(tb[k], ta[k], rtol=0, atol=1e-6)


def test_seeds_of_a_transformer_aggregate(tmp_path):
    """The many-seed folder is what aggregate_seeds reads; each seed's entry is that seed's own track."""
    from rnnautomata.aggregate import aggregate_seeds
    from rnnautomata.dynamics import track

    study = _study(seeds=(0, 1), train={"epochs": 1, "early_checkpoints": 0},
                   extract={"check_strings": 16, "refine_rounds": 1})
    train_seeds(study, tmp_path / "r", progress=False)
    agg = aggregate_seeds(tmp_path / "r", progress=False, jobs=1)
    assert agg["seeds"] == [0, 1] and all(c["n_seeds"] == 2 for c in agg["checkpoints"])
    for s, final in zip(study.seeds, agg["final"]["per_seed"]):
        own = track(seed_dir(tmp_path / "r", s), progress=False)["checkpoints"][-1]
        assert (final["seed"], final["n_states"], final["finite"]) == (s, own["n_states"], own["finite"])
