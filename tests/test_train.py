import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnautomata.config import study_from_dict
from rnnautomata.data import make_task
from rnnautomata.errors import CheckpointError, TrainingError
from rnnautomata.runs import RunDir, load_checkpoint
from rnnautomata.train import build_training_set, checkpoint_steps, load_model, train

from conftest import tiny_raw


def _weights(run_dir, step):
    tensors, _ = load_checkpoint(RunDir(run_dir).checkpoint_path(step))
    return tensors


def test_paper_epoch_is_21_steps():
    s = study_from_dict({})
    ts = build_training_set(make_task(s.task), s)
    assert ts.n_strings == 2046
    assert ts.steps_per_epoch(128) == 21


def test_training_targets_are_parity_by_brute_force(tiny_study):
    ts = build_training_set(make_task(tiny_study.task), tiny_study)
    for x, y in zip(ts.inputs, ts.targets):
        np.testing.assert_array_equal(y, np.cumsum(x, axis=1) % 2)


def test_checkpoint_schedule():
    steps = checkpoint_steps(21, 10, 5, 4)
    assert steps[0] == 0 and steps[-1] == 210
    assert {105, 210} <= set(steps)
    assert all(a < b for a, b in zip(steps, steps[1:]))
    assert sum(s < 105 for s in steps) == 1 + 4


def test_same_seed_same_checkpoints_and_learning(tmp_path, tiny_study):
    a = train(tiny_study, tmp_path / "a", progress=False)
    b = train(tiny_study, tmp_path / "b", progress=False)
    assert a["steps"] == b["steps"]
    for step in a["steps"]:
        wa, wb = _weights(tmp_path / "a", step), _weights(tmp_path / "b", step)
        assert all(torch.equal(wa[k], wb[k]) for k in wa)
    metrics = RunDir(tmp_path / "a").read_metrics()
    assert [m["step"] for m in metrics] == a["steps"]
    assert metrics[-1]["train/loss"] < metrics[0]["train/loss"]  # it learns something
    # long lengths only every eval_every epochs; short lengths at every checkpoint
    assert all("eval/acc_len20" in m for m in metrics)
    assert "eval/acc_len1500" not in metrics[1]
    assert "eval/acc_len1500" in metrics[-1]
    assert RunDir(tmp_path / "a").read_manifest()["status"] == "complete"


def _killed_after(study, tmp_path, index: int) -> tuple[dict, RunDir, int]:
    """A full run, and a second one cut as by a kill after its `index`-th checkpoint (later
    checkpoints never written). Returns (the full run's result, the cut run, the kept step)."""
    full = train(study, tmp_path / "full", progress=False)
    run = RunDir(tmp_path / "cut")
    train(study, run.root, progress=False)
    keep = full["steps"][index]
    for step in run.steps():
        if step > keep:
            run.checkpoint_path(step).unlink()
    return full, run, keep


def test_resumed_run_equals_uninterrupted(tmp_path, tiny_study):
    full, run, keep = _killed_after(tiny_study, tmp_path, 4)
    run.write_manifest(status="running")
    resumed = train(tiny_study, run.root, progress=False)
    assert resumed["resumed_from"] == keep
    assert resumed["steps"] == full["steps"]
    for step in full["steps"]:
        wa, wb = _weights(tmp_path / "full", step), _weights(run.root, step)
        assert all(torch.equal(wa[k], wb[k]) for k in wa), step
    assert [m["step"] for m in run.read_metrics()] == full["steps"]


def test_different_study_in_run_dir_is_refused(tmp_path, tiny_study):
    train(tiny_study, tmp_path / "r", progress=False)
    other = study_from_dict(tiny_raw(train={"lr": 0.01}))
    with pytest.raises(CheckpointError, match="holds a different study"):
        train(other, tmp_path / "r", progress=False)


def test_nan_loss_stops_with_clear_error_and_keeps_checkpoints(tmp_path):
    study = study_from_dict(tiny_raw(train={"lr": 1e6, "epochs": 6}, model={"init_gain": 3.0, "nonlinearity": "relu"}))
    with pytest.raises(TrainingError, match=r"loss became (nan|inf) at step \d+ .*lower train.lr") as info:
        train(study, tmp_path / "r", progress=False)
    assert "\n" not in str(info.value)
    run = RunDir(tmp_path / "r")
    assert run.steps() and run.steps()[0] == 0
    assert run.read_manifest()["status"] == "failed"
    load_checkpoint(run.checkpoint_path(run.steps()[-1]))  # finished checkpoints are intact


def test_load_model_round_trip(tmp_path, tiny_study):
    train(tiny_study, tmp_path / "r", progress=False)
    model, info = load_model(tmp_path / "r", "last")
    x = torch.randint(0, 2, (4, 9), generator=torch.Generator().manual_seed(0))
    model2, _ = load_model(tmp_path / "r", info["step"])
    torch.testing.assert_close(model(x), model2(x), rtol=0, atol=0)
    assert info["study"] == tiny_study


def test_corrupt_and_foreign_checkpoints_are_one_line_errors(tmp_path, tiny_study):
    train(tiny_study, tmp_path / "r", progress=False)
    run = RunDir(tmp_path / "r")
    last = run.steps()[-1]
    path = run.checkpoint_path(last)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(CheckpointError, match="corrupt or not a safetensors file") as info:
        load_model(run.root, last)
    assert "\n" not in str(info.value)
    path.write_bytes(b"\x80\x04K\x01." + b"pickle? no thanks" * 10)  # a pickle, say
    with pytest.raises(CheckpointError, match="corrupt or not a safetensors file"):
        load_model(run.root, last)
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(3)}, str(path))  # valid safetensors, not ours
    with pytest.raises(CheckpointError, match="not an rnnautomata checkpoint"):
        load_model(run.root, last)
    with pytest.raises(CheckpointError, match="no checkpoint at step 12345"):
        load_model(run.root, 12345)
    with pytest.raises(CheckpointError, match="not an rnnautomata run directory"):
        load_model(tmp_path, "last")


def test_run_dir_rejects_foreign_manifest(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CheckpointError, match="expected 'rnnautomata.run/1'"):
        RunDir(tmp_path).read_manifest()


def test_all_positions_supervise_the_empty_prefix_too():
    from rnnautomata.train import supervised

    study = study_from_dict(tiny_raw(task={"target": "all", "name": "mod_k_counting", "k": 3}))
    task = make_task(study.task)
    from rnnautomata.train import build_model, start_output

    model = build_model(study, task)
    x = torch.tensor([[1, 1, 0, 1]])
    out, tgt = supervised(model, x, torch.as_tensor(task.targets(x.numpy())), "all", start_output(task))
    assert out.shape == (1, 5, 3)
    assert tgt.tolist() == [[0, 1, 2, 2, 0]]  # empty prefix first: 0 ones mod 3
    torch.testing.assert_close(out[:, 0], model.readout(model.initial_state(1)))


def test_patience_stops_when_validation_accuracy_is_flat_and_resume_keeps_the_stop(tmp_path):
    # streaming parity on strings up to length 4 with a big lr: validation (length 12) saturates or stalls
    # quickly; with patience 2 the run must stop 2 regular checkpoints after its best, not at epoch 30
    study = study_from_dict(tiny_raw(train={"epochs": 30, "patience": 2, "checkpoint_every": 1}))
    result = train(study, tmp_path / "run", progress=False)
    metrics = RunDir(tmp_path / "run").read_metrics()
    spe = result["steps_per_epoch"]
    regular = [m for m in metrics if m["step"] >= spe]
    accs = [m["val/acc"] for m in regular]
    # brute force over the recorded accuracies: the last checkpoint is the first at which the best
    # so far was reached (or 1.0 first held) exactly `patience` checkpoints earlier
    best_at = max(range(len(accs)), key=lambda i: (accs[i], -i))
    assert result["stopped_early_at"] == regular[-1]["step"] < 30 * spe
    assert len(regular) - 1 - best_at == 2
    assert RunDir(tmp_path / "run").read_manifest()["stopped_early_at"] == result["stopped_early_at"]
    # rerunning resumes into a run that had already stopped: nothing new is trained
    again = train(study, tmp_path / "run", progress=False)
    assert again["steps"] == result["steps"] and again["stopped_early_at"] == result["stopped_early_at"]


def test_no_patience_trains_every_epoch(tmp_path, tiny_study):
    result = train(tiny_study, tmp_path / "run", progress=False)
    assert result["stopped_early_at"] is None
    assert result["steps"][-1] == tiny_study.train.epochs * result["steps_per_epoch"]


def test_size_warning_counts_strings_and_prefixes():
    from rnnautomata.train import size_warning, study_size

    ternary = study_from_dict(tiny_raw(task={"train_max_length": 10}, probe={"depth": 10}))
    size = study_size(ternary, 3)
    assert size["train_strings"] == sum(3**L for L in range(1, 11)) == 88_572
    assert size["probe_prefixes"] == sum(3**d for d in range(11))
    assert "88,572 strings" in size_warning(ternary, 3)
    assert size_warning(study_from_dict(tiny_raw()), 2) is None
    sampled = study_from_dict(tiny_raw(task={"train_max_length": 10, "train_set": "sample", "train_samples": 100}))
    assert study_size(sampled, 3)["train_strings"] == 3 + 9 + 27 + 81 + 100 * 6


def test_a_second_writer_of_one_run_folder_gets_a_one_line_error(tmp_path, tiny_study):
    import multiprocessing as mp

    run = RunDir(tmp_path / "run")
    # another process holds the folder (as a second `rnnautomata run` would see it)
    ready, release = mp.Event(), mp.Event()
    holder = mp.get_context("fork").Process(target=_hold_lock, args=(str(run.root), ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(CheckpointError, match="already being written") as info:
            train(tiny_study, run.root, progress=False)
        assert "\n" not in str(info.value) and f"pid {holder.pid}" in str(info.value)
        assert not (run.root / "metrics.jsonl").exists()  # nothing was written by the refused writer
    finally:
        release.set()
        holder.join(30)
    train(tiny_study, run.root, progress=False)  # free again once the holder is gone
    steps = [m["step"] for m in run.read_metrics()]
    assert steps == sorted(set(steps))  # each checkpoint's metrics once


def _hold_lock(root, ready, release):
    with RunDir(Path(root)).locked():
        ready.set()
        release.wait(30)


def test_editing_the_machine_file_behind_task_path_refuses_the_resume(tmp_path):
    from rnnautomata.data.regular import random_machine

    mfile = tmp_path / "m.json"
    random_machine(3, 2, 2, np.random.default_rng(0)).save(mfile)
    raw = tiny_raw(task={"name": "machine", "path": str(mfile), "target": "all"}, train={"epochs": 2})
    train(study_from_dict(raw), tmp_path / "run", progress=False)
    train(study_from_dict(raw), tmp_path / "run", progress=False)  # same file: resumes (nothing left to do)
    random_machine(3, 2, 2, np.random.default_rng(1)).save(mfile)  # same path, another task
    with pytest.raises(CheckpointError, match="task.path changed") as info:
        train(study_from_dict(raw), tmp_path / "run", progress=False)
    assert "\n" not in str(info.value)


def test_same_seed_checkpoints_are_byte_identical_across_processes(tmp_path, tiny_study):
    import subprocess
    import sys

    from rnnautomata.config import study_to_toml

    (tmp_path / "s.toml").write_text(study_to_toml(tiny_study))
    code = ("import sys, torch; torch.set_num_threads(1); from rnnautomata.config import load_study; "
            "from rnnautomata.train import train; train(load_study(sys.argv[1]), sys.argv[2], progress=False)")
    for name in ("a", "b"):  # separate processes: a hash-ordered header would differ between them
        subprocess.run([sys.executable, "-c", code, str(tmp_path / "s.toml"), str(tmp_path / name)], check=True)
    files = sorted(p.name for p in (tmp_path / "a" / "checkpoints").iterdir())
    assert files and files == sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir())
    for f in files:
        assert (tmp_path / "a" / "checkpoints" / f).read_bytes() == (tmp_path / "b" / "checkpoints" / f).read_bytes()
    tensors, meta = load_checkpoint(tmp_path / "a" / "checkpoints" / files[-1])  # still a valid safetensors file
    assert tensors and meta["format"]


def test_a_kill_between_a_checkpoint_and_its_metrics_line_loses_no_line(tmp_path, tiny_study):
    _, run, keep = _killed_after(tiny_study, tmp_path, 4)
    # the kill came after checkpoint `keep` was written but before its metrics line was appended
    run.rewrite_metrics([m for m in run.read_metrics() if m["step"] < keep])
    run.write_manifest(status="running")
    train(tiny_study, run.root, progress=False)
    assert run.read_metrics() == RunDir(tmp_path / "full").read_metrics()  # every line, identical


def test_the_advice_for_a_corrupt_checkpoint_restores_it(tmp_path, tiny_study):
    train(tiny_study, tmp_path / "r", progress=False)
    run = RunDir(tmp_path / "r")
    steps = run.steps()
    originals = {s: run.checkpoint_path(s).read_bytes() for s in steps}
    # a middle checkpoint: resuming would never rewrite it; the advice is a new folder
    middle = steps[len(steps) // 2]
    run.checkpoint_path(middle).write_bytes(originals[middle][:100])
    with pytest.raises(CheckpointError, match="resuming cannot recreate a middle checkpoint") as info:
        load_model(run.root, middle)
    assert "--out NEW" in str(info.value)
    train(tiny_study, tmp_path / "new", progress=False)  # what the advice says
    assert RunDir(tmp_path / "new").checkpoint_path(middle).read_bytes() == originals[middle]
    # the last checkpoint: delete it and rerun in place
    run.checkpoint_path(middle).write_bytes(originals[middle])
    last = steps[-1]
    run.checkpoint_path(last).write_bytes(originals[last][:100])
    with pytest.raises(CheckpointError, match="delete it and rerun"):
        load_model(run.root, last)
    run.checkpoint_path(last).unlink()
    train(tiny_study, run.root, progress=False)
    assert run.checkpoint_path(last).read_bytes() == originals[last]


def test_more_epochs_on_a_finished_run_continue_it_and_other_changes_are_named(tmp_path, tiny_study):
    short = study_from_dict(tiny_raw(train={"epochs": 2}))
    train(short, tmp_path / "run", progress=False)
    longer = train(tiny_study, tmp_path / "run", progress=False)  # tiny_study: 4 epochs
    full = train(tiny_study, tmp_path / "full", progress=False)
    assert longer["resumed_from"] == 2 * longer["steps_per_epoch"]
    assert set(full["steps"]) <= set(longer["steps"])
    for step in full["steps"]:  # continuing = having trained 4 epochs from the start
        wa, wb = _weights(tmp_path / "full", step), _weights(tmp_path / "run", step)
        assert all(torch.equal(wa[k], wb[k]) for k in wa), step
    with pytest.raises(CheckpointError, match=r"train.lr \(0.05 there, 0.01 now\)") as info:
        train(study_from_dict(tiny_raw(train={"lr": 0.01})), tmp_path / "run", progress=False)
    assert "\n" not in str(info.value)
    with pytest.raises(CheckpointError, match="train.epochs"):  # fewer epochs: not a continuation
        train(short, tmp_path / "run", progress=False)
