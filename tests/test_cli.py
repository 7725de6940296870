import json

import numpy as np
import pytest

from rnnautomata.cli import main
from rnnautomata.config import study_to_toml, study_from_dict

from conftest import tiny_raw


def _write(tmp_path, raw):
    p = tmp_path / "study.toml"
    p.write_text(study_to_toml(study_from_dict(raw)))
    return p


def _error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


def test_malformed_toml(tmp_path, capsys):
    p = tmp_path / "bad.toml"
    p.write_text("name = 'x'\n[train\n")
    assert main(["run", str(p), "--out", str(tmp_path / "r")]) == 2
    assert "is not valid TOML" in _error_line(capsys)


def test_unknown_task(tmp_path, capsys):
    p = tmp_path / "s.toml"
    p.write_text('[task]\nname = "no_such_task"\n')
    assert main(["run", str(p), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    line = _error_line(capsys)
    assert "unknown task 'no_such_task'" in line and "streaming_parity" in line


def test_bad_override_and_unknown_kind(tmp_path, capsys):
    p = _write(tmp_path, tiny_raw())
    assert main(["run", str(p), "--set", "train.lr=oops", "--out", str(tmp_path / "r")]) == 2
    assert "train.lr must be a number" in _error_line(capsys)
    assert main(["run", str(p), "--set", "kind=quantum", "--out", str(tmp_path / "r")]) == 2
    assert "not a known study kind" in _error_line(capsys)


def test_cuda_asked_without_gpu(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    p = _write(tmp_path, tiny_raw())
    assert main(["run", str(p), "--device", "cuda", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "no CUDA GPU" in _error_line(capsys)


def test_run_extract_track_on_tiny_study(tmp_path, capsys):
    p = _write(tmp_path, tiny_raw())
    out = tmp_path / "r"
    assert main(["run", str(p), "--out", str(out), "--quiet", "--no-render"]) == 0
    text = capsys.readouterr().out
    assert "finite from step" in text and "run directory" in text
    assert main(["extract", str(out), "--format", "json", "--quiet"]) == 0
    machine = json.loads(capsys.readouterr().out)
    assert machine["format"] == "rnnautomata.machine/1" and machine["alphabet"] == ["0", "1"]
    assert main(["extract", str(out), "--step", "0", "--format", "dot", "--minimize"]) == 0
    assert capsys.readouterr().out.lstrip().startswith("digraph")
    assert main(["track", str(out), "--quiet", "--json", "--merger", "single_linkage"]) == 0
    dyn = json.loads(capsys.readouterr().out)
    assert dyn["merger"] == "single_linkage"
    # running the same study again resumes (nothing left to do) instead of overwriting
    assert main(["run", str(p), "--out", str(out), "--quiet", "--no-render"]) == 0
    assert "resumed from step" in capsys.readouterr().err
    assert main(["extract", str(out), "--step", "999999"]) == 2
    assert "no checkpoint at step 999999" in _error_line(capsys)


def test_tasks_lists_the_registry(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "streaming_parity" in out and "mod_k_counting" in out


def test_run_and_track_many_seeds(tmp_path, capsys):
    p = _write(tmp_path, tiny_raw(seeds=[0, 1], train={"epochs": 2}))
    out = tmp_path / "r"
    assert main(["run", str(p), "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "final ε-free machines equivalent to the task's machine" in text and "ε rule's final machines equivalent" in text
    assert (out / "seed_0000" / "dynamics.json").is_file() and (out / "seed_0001" / "dynamics.json").is_file()
    assert main(["track", str(out), "--quiet", "--json"]) == 0
    agg = json.loads(capsys.readouterr().out)
    assert agg["seeds"] == [0, 1]


def test_extract_never_serves_a_machine_of_a_checkpoint_that_changed(tmp_path, capsys):
    from rnnautomata.automata import Machine
    from rnnautomata.runs import RunDir

    p = _write(tmp_path, tiny_raw())
    out = tmp_path / "r"
    assert main(["run", str(p), "--out", str(out), "--quiet", "--no-render"]) == 0
    run = RunDir(out)
    steps = run.steps()
    # the run is retrained into the same folder with a checkpoint gone (e.g. a corrupt one deleted)
    run.checkpoint_path(steps[1]).unlink()
    stale = run.automaton_path(steps[1])
    assert stale.is_file()
    assert main(["track", str(out), "--quiet"]) == 0
    assert not stale.is_file() and not run.robust_automaton_path(steps[1]).is_file()  # removed with it
    # a stored machine whose checkpoint changed since is extracted again, not served
    last = steps[-1]
    stored = Machine.load(run.automaton_path(last))
    stored.replace(meta={**stored.meta, "checkpoint_sha256": "0" * 64, "n_states": -1}).save(run.automaton_path(last))
    capsys.readouterr()
    assert main(["extract", str(out), "--method", "epsilon", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "extracting again" in captured.err
    assert json.loads(captured.out)["meta"]["n_states"] != -1


def test_shipped_studies_run_by_name_from_any_folder_and_task_path_is_beside_the_study(tmp_path, monkeypatch, capsys):
    from rnnautomata.data.regular import random_machine
    from rnnautomata.studies import find_study, shipped_studies

    monkeypatch.chdir(tmp_path)  # no tasks/ folder here
    shipped = shipped_studies()
    assert {"tomita3", "streaming_parity"} <= set(shipped)
    assert find_study("tomita3") == shipped["tomita3"] and find_study("tomita3.toml") == shipped["tomita3"]
    assert main(["tasks"]) == 0 and "tomita3" in capsys.readouterr().out
    assert main(["run", "no_such_study", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no shipped study is named 'no_such_study'" in err and "tomita3" in err
    # a study beside its machine file, run from another folder
    (tmp_path / "mine").mkdir()
    random_machine(3, 2, 2, np.random.default_rng(0)).save(tmp_path / "mine" / "m.json")
    raw = tiny_raw(task={"name": "machine", "path": "m.json", "target": "all"}, train={"epochs": 1})
    p = _write(tmp_path / "mine", raw)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["run", str(p), "--out", "r", "--quiet", "--no-render"]) == 0
