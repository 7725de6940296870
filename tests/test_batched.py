"""Many seeds as one batched model: every seed's trajectory is the one train.train gives it alone."""

import json
import shutil

import numpy as np
import pytest
import torch

from rnnautomata.batched import BatchedRecurrent, seed_dir, seed_study
from rnnautomata.config import study_from_dict
from rnnautomata.data import make_task
from rnnautomata.dynamics import track
from rnnautomata.errors import CheckpointError, TrainingError
from rnnautomata.runs import RunDir, load_checkpoint
from rnnautomata.seeds import train_seeds
from rnnautomata.train import build_model, load_model, train

from conftest import tiny_raw

SEEDS = [0, 3, 5]

# Tolerance for batched vs. single-seed weights. The batched model sums the same float32 products
# in a different order from torch.nn.RNN/GRU/LSTM (bmm/addmm vs. the fused kernels), so each step
# differs by a few ulps (~1e-7 for weights of order 0.1-1). Over the ~40 SGD steps of these tiny
# runs the observed difference stays below 2e-7; 1e-5 leaves margin for other BLAS builds while any
# real mismatch (wrong rows, wrong init, wrong seed's gradient) shows up at 1e-3 or more.
ATOL = 1e-5


def _compare_with_single(tmp_path, study, check_metrics=True):
    multi = train_seeds(study, tmp_path / "multi", progress=False)
    assert multi["seeds"] == list(study.seeds)
    for s in study.seeds:
        single = train(seed_study(study, s), tmp_path / f"single{s}", progress=False)
        assert multi["steps"] == single["steps"]
        a_run, b_run = RunDir(tmp_path / f"single{s}"), RunDir(seed_dir(tmp_path / "multi", s))
        assert a_run.study_path.read_text() == b_run.study_path.read_text()
        for step in single["steps"]:
            a, meta_a = load_checkpoint(a_run.checkpoint_path(step))
            b, meta_b = load_checkpoint(b_run.checkpoint_path(step))
            rec_a, rec_b = json.loads(meta_a.pop("metrics")), json.loads(meta_b.pop("metrics"))
            assert meta_a == meta_b  # same study, step, epoch, alphabet, format
            assert rec_a.keys() == rec_b.keys()  # the metrics copy: equal to float tolerance
            assert all(rec_b[k] == pytest.approx(rec_a[k], abs=1e-5) for k in rec_a)
            assert a.keys() == b.keys()  # same tensor names, optimizer state included
            for k in a:
                torch.testing.assert_close(b[k], a[k], rtol=0, atol=ATOL, msg=f"seed {s} step {step} {k}")
        if check_metrics:
            ma, mb = a_run.read_metrics(), b_run.read_metrics()
            assert [m.keys() for m in ma] == [m.keys() for m in mb]
            for x, y in zip(ma, mb):
                for k in x:
                    assert y[k] == pytest.approx(x[k], abs=1e-5), (s, x["step"], k)
        manifest = b_run.read_manifest()
        assert manifest["kind"] == "automata" and manifest["status"] == "complete"
    top = RunDir(tmp_path / "multi").read_manifest()
    assert top["kind"] == "seeds" and top["status"] == "complete"
    assert top["seed_dirs"] == [f"seed_{s:04d}" for s in study.seeds]
    return multi


@pytest.mark.parametrize("arch", ["elman", "gru", "lstm"])
def test_each_seed_matches_training_it_alone(tmp_path, arch):
    # elman also covers the long test length (evaluated every eval_every epochs only)
    lengths = [20, 1500] if arch == "elman" else [20]
    study = study_from_dict(tiny_raw(model={"arch": arch}, seeds=SEEDS, task={"test_lengths": lengths}))
    _compare_with_single(tmp_path, study)


@pytest.mark.parametrize(
    "sections",
    [
        # Adam, cross-entropy on every position, sampled (per-seed) training strings
        {"train": {"optimizer": "adam", "lr": 0.01, "loss": "cross_entropy", "epochs": 2},
         "task": {"target": "all", "train_set": "sample", "train_samples": 12, "test_lengths": [20]}},
        # momentum, per-seed gradient clipping, tanh, learned h0
        {"train": {"momentum": 0.9, "grad_clip": 0.05, "epochs": 2}, "task": {"test_lengths": [20]},
         "model": {"nonlinearity": "tanh", "learn_initial_state": True}},
    ],
)
def test_optimizers_losses_and_options_match_single_seed(tmp_path, sections):
    study = study_from_dict(tiny_raw(seeds=[1, 2], **sections))
    _compare_with_single(tmp_path, study)


def test_init_is_build_model_per_seed():
    study = study_from_dict(tiny_raw(model={"arch": "lstm"}))
    task = make_task(study.task)
    models = [build_model(seed_study(study, s), task) for s in SEEDS]
    batched = BatchedRecurrent(models)
    for k, m in enumerate(models):
        sd = batched.seed_state_dict(k)
        assert sd.keys() == m.state_dict().keys()
        assert all(torch.equal(sd[name], v) for name, v in m.state_dict().items())


@pytest.mark.parametrize("fused", [True, False])  # False: the GPU's inference path, run on the CPU
def test_forward_and_step_match_recurrent_model(monkeypatch, fused):
    import rnnautomata.batched as batched_mod

    monkeypatch.setattr(batched_mod, "_FUSED_CPU_INFERENCE", fused)
    for arch in ("elman", "gru", "lstm"):
        study = study_from_dict(tiny_raw(model={"arch": arch, "init_gain": 1.0}))
        task = make_task(study.task)
        models = [build_model(seed_study(study, s), task) for s in SEEDS]
        batched = BatchedRecurrent(models)
        x = torch.randint(0, 2, (len(SEEDS), 5, 7), generator=torch.Generator().manual_seed(1))  # (n, B, T)
        with torch.no_grad():
            out = batched(x)  # (n, B, T, O)
            state = batched.initial_state(5)
            for t in range(7):
                state = batched.step(state, x[:, :, t])
            for k, m in enumerate(models):
                torch.testing.assert_close(out[k], m(x[k]), rtol=1e-5, atol=1e-6)
                torch.testing.assert_close(batched.forward_last(x)[k], m.forward_last(x[k]), rtol=1e-5, atol=1e-6)
                s = m.initial_state(5)
                for t in range(7):
                    s = m.step(s, x[k, :, t])
                torch.testing.assert_close(state[k], s, rtol=1e-5, atol=1e-6)
        out_grad = batched(x)  # the autograd paths: Elman's through-time node, GRU/LSTM's step loop
        last_grad = batched.forward_last(x)
        for k, m in enumerate(models):
            with torch.no_grad():
                torch.testing.assert_close(out_grad.detach()[k], m(x[k]), rtol=1e-5, atol=1e-6)
                torch.testing.assert_close(last_grad.detach()[k], m.forward_last(x[k]), rtol=1e-5, atol=1e-6)


def test_resumed_equals_uninterrupted(tmp_path):
    study = study_from_dict(tiny_raw(seeds=SEEDS, task={"test_lengths": [20]}, train={"optimizer": "adam", "lr": 0.01}))
    full = train_seeds(study, tmp_path / "full", progress=False)
    shutil.copytree(tmp_path / "full", tmp_path / "cut")
    # a kill while writing step `keep + 1`'s checkpoints: seed 0 got further than the others
    keep = full["steps"][4]
    for s in SEEDS:
        run = RunDir(seed_dir(tmp_path / "cut", s))
        limit = full["steps"][5] if s == SEEDS[0] else keep
        for step in run.steps():
            if step > limit:
                run.checkpoint_path(step).unlink()
    RunDir(tmp_path / "cut").write_manifest(status="running")
    resumed = train_seeds(study, tmp_path / "cut", progress=False)
    assert resumed["resumed_from"] == keep
    assert resumed["steps"] == full["steps"]
    for s in SEEDS:
        a, b = RunDir(seed_dir(tmp_path / "full", s)), RunDir(seed_dir(tmp_path / "cut", s))
        for step in full["steps"]:
            wa, _ = load_checkpoint(a.checkpoint_path(step))
            wb, _ = load_checkpoint(b.checkpoint_path(step))
            assert all(torch.equal(wa[k], wb[k]) for k in wa), (s, step)
        assert [m["step"] for m in b.read_metrics()] == full["steps"]


def test_seed_dirs_are_ordinary_runs(tmp_path):
    study = study_from_dict(tiny_raw(seeds=[4, 9], task={"test_lengths": [20]}))
    train_seeds(study, tmp_path / "m", progress=False)
    model, info = load_model(seed_dir(tmp_path / "m", 9), "last")
    assert info["study"].seed == 9 and info["study"].seeds is None
    dyn = track(seed_dir(tmp_path / "m", 9), progress=False)
    assert len(dyn["checkpoints"]) == len(RunDir(seed_dir(tmp_path / "m", 9)).steps())
    top = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert top["seeds"] == [4, 9]
    with pytest.raises(CheckpointError, match="different study"):
        train_seeds(study_from_dict(tiny_raw(seeds=[4, 9], train={"lr": 0.01})), tmp_path / "m", progress=False)


def test_nan_names_the_seed_and_step_and_keeps_checkpoints(tmp_path):
    study = study_from_dict(tiny_raw(seeds=[0, 1], train={"lr": 1e6, "epochs": 6},
                                     model={"init_gain": 3.0}, task={"test_lengths": [20]}))
    with pytest.raises(TrainingError, match=r"non-finite at step \d+ .* in seeds? [01]") as info:
        train_seeds(study, tmp_path / "r", progress=False)
    assert "\n" not in str(info.value)
    assert RunDir(tmp_path / "r").read_manifest()["status"] == "failed"
    for s in (0, 1):
        run = RunDir(seed_dir(tmp_path / "r", s))
        assert run.steps() and run.steps()[0] == 0
        load_model(run.root, run.steps()[-1])  # finished checkpoints load


def test_per_seed_data_order_differs_but_lengths_agree():
    from rnnautomata.batched import _epoch_rows
    from rnnautomata.train import build_training_set

    study = study_from_dict(tiny_raw())
    ts = build_training_set(make_task(study.task), study)
    steps = _epoch_rows(ts, 8, SEEDS, 2, torch.device("cpu"))
    for k, s in enumerate(SEEDS):
        own = ts.epoch_batches(8, s, 2)
        assert [i for i, _ in own] == [i for i, _ in steps]
        for (_, rows), (_, mine) in zip(own, steps):
            np.testing.assert_array_equal(mine[k].numpy(), rows)


@pytest.mark.parametrize("every_position", [True, False])
@pytest.mark.parametrize("per_seed", [True, False])
@pytest.mark.parametrize("relu", [True, False])
def test_through_time_gradients_match_autograd(monkeypatch, relu, per_seed, every_position):
    """Hand-written BPTT (seed by seed as on the CPU, or all seeds per step as on a GPU) against
    autograd through each seed's own RecurrentModel (torch's recurrent kernels), h0 learnable."""
    import rnnautomata.batched as batched_mod
    from rnnautomata.batched import per_seed_loss

    monkeypatch.setattr(batched_mod, "_PER_SEED_LOOPS", {"cpu"} if per_seed else set())
    study = study_from_dict(tiny_raw(model={"init_gain": 1.0, "learn_initial_state": True,
                                            "nonlinearity": "relu" if relu else "tanh"}))
    task = make_task(study.task)
    models = [build_model(seed_study(study, s), task) for s in SEEDS]
    batched = BatchedRecurrent(models)
    x = torch.randint(0, 2, (len(SEEDS), 6, 9), generator=torch.Generator().manual_seed(2))  # (n, B, T)
    y = torch.randint(0, 2, (len(SEEDS), 6, 9), generator=torch.Generator().manual_seed(3))
    if every_position:
        per_seed_loss(batched(x), y, "mse", 2).sum().backward()
    else:
        per_seed_loss(batched.forward_last(x), y[:, :, -1], "mse", 2).sum().backward()
    for k, m in enumerate(models):
        out = m(x[k]) if every_position else m(x[k])[:, -1]
        per_seed_loss(out[None], (y[k] if every_position else y[k, :, -1])[None], "mse", 2).sum().backward()
        for name, p in m.named_parameters():
            torch.testing.assert_close(batched.tensor(name).grad[k], p.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
def test_many_seed_long_string_inference_matches_each_model(nonlinearity):
    """From 4 seeds on, CPU inference of Elman's last output takes all seeds per step (its own
    loop, in chunks of TIME_CHUNK symbols); it must give each seed's own RecurrentModel output."""
    from rnnautomata.batched import _FUSED_CPU_MAX_SEEDS
    from rnnautomata.models.rnn import TIME_CHUNK

    seeds = list(range(_FUSED_CPU_MAX_SEEDS + 2))
    study = study_from_dict(tiny_raw(model={"init_gain": 1.0, "nonlinearity": nonlinearity}))
    task = make_task(study.task)
    models = [build_model(seed_study(study, s), task) for s in seeds]
    batched = BatchedRecurrent(models)
    x = torch.randint(0, 2, (len(seeds), 3, TIME_CHUNK + 77), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        out = batched.forward_last(x)  # (n, B, O)
        for k, m in enumerate(models):
            torch.testing.assert_close(out[k], m.forward_last(x[k]), rtol=1e-4, atol=1e-5)


def test_patience_with_seeds_is_a_clear_error(tmp_path):
    from rnnautomata.batched import train_seeds
    from rnnautomata.config import study_from_dict
    from rnnautomata.errors import ConfigError

    from conftest import tiny_raw

    study = study_from_dict(tiny_raw(seeds=[0, 1], train={"patience": 2}))
    with pytest.raises(ConfigError, match="patience"):
        train_seeds(study, tmp_path / "run", progress=False)
