"""Sweeps: grid validation, sweep.json / aggregate.csv against each seed's own files, idempotent
reruns, a failing run among good ones, an interrupted sweep finished by a rerun, engines.

Tiers: unit (the grid and seeds parsers, errors), integration (tiny sweeps in this process or in two
worker processes, ~10-30 s), slow (a real SIGINT to a running sweep; a real local Ray).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnautomata import sweep as sweep_mod
from rnnautomata.cli import main
from rnnautomata.engines import LocalEngine, make_engine
from rnnautomata.errors import ConfigError
from rnnautomata.runs import RunDir
from rnnautomata.sweep import SWEEP_FORMAT, parse_grid, parse_seeds, plan_sweep, run_sweep

from conftest import tiny_raw

ROOT = Path(__file__).resolve().parents[1]
GRID = {"model.init_gain": [0.1, 1.0]}
SEEDS = [0, 1]


# --- input -----------------------------------------------------------------------------------------
def test_grid_and_seeds_parse():
    assert parse_grid(["model.init_gain=0.1,0.3", "task.test_lengths=[20,1500],[30]"]) == {
        "model.init_gain": [0.1, 0.3], "task.test_lengths": [[20, 1500], [30]]}
    assert parse_seeds("0-3,8") == [0, 1, 2, 3, 8]
    assert parse_seeds([4, 2]) == [4, 2]


@pytest.mark.parametrize("items, words", [
    (["model.init_gain=0.1,"], "empty value"),
    (["model.init_gain="], "empty value"),
    (["model.init_gain"], "must look like"),
    (["model.init_gain=0.1,0.1"], "repeats a value"),
    (["seed=1,2"], "set by the sweep"),
    ([".x=1"], "empty part"),
])
def test_bad_grid_items_are_one_line_errors(items, words):
    with pytest.raises(ConfigError, match=words) as err:
        parse_grid(items)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text, words", [("5-2", "reversed"), ("", "not a seed"), ("0,0", "repeats"), ("a", "not a seed")])
def test_bad_seeds_are_one_line_errors(text, words):
    with pytest.raises(ConfigError, match=words):
        parse_seeds(text)


@pytest.mark.parametrize("grid, words", [
    ({"model.hidden_siz": [4]}, r"--grid model.hidden_siz=4: unknown field model.hidden_siz"),
    ({"model.hidden_size": [4, -1]}, r"--grid model.hidden_size=-1: model.hidden_size must be positive"),
    ({"model.nonlinearity": ["relu", "sigmoid"]}, r"--grid model.nonlinearity=sigmoid: .* not allowed"),
    ({"task.train_min_length": [9]}, r"--grid task.train_min_length=9: .*exceeds"),
    ({"task.train_min_length": [3], "task.train_max_length": [2]},  # each fine alone, not together
     r"grid point task.train_min_length=3,task.train_max_length=2: .*exceeds"),
])
def test_grid_values_are_checked_by_the_study_before_anything_starts(grid, words):
    with pytest.raises(ConfigError, match=words):
        plan_sweep(tiny_raw(), grid, SEEDS)


def test_cli_errors_write_nothing(tmp_path, capsys, monkeypatch):
    study = tmp_path / "tiny.toml"
    study.write_text(_toml(tiny_raw()))
    out = tmp_path / "out"
    cases = [
        ["--grid", "model.hidden_siz=4,8", "--seeds", "0-1"],
        ["--grid", "model.hidden_size=4,", "--seeds", "0-1"],
        ["--grid", "model.hidden_size=4", "--seeds", "3-1"],
        ["--grid", "model.hidden_size=4"],
        ["--seeds", "0-1"],
    ]
    for extra in cases:
        assert main(["sweep", str(study), "--out", str(out), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err, err
        assert not out.exists()
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray absent (even where it is installed)
    assert main(["sweep", str(study), "--out", str(out), "--grid", "model.hidden_size=4", "--seeds", "0",
                 "--engine", "ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert "rnnautomata[ray]" in err and "\n" not in err and not out.exists()


def test_an_address_that_does_not_answer_is_a_one_line_error(tmp_path, capsys):
    pytest.importorskip("ray")
    study = tmp_path / "tiny.toml"
    study.write_text(_toml(tiny_raw()))
    out = tmp_path / "out"
    assert main(["sweep", str(study), "--out", str(out), "--grid", "model.hidden_size=4", "--seeds", "0",
                 "--engine", "ray", "--address", "127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip()
    assert "127.0.0.1:9" in err and "no Ray cluster answers" in err and "\n" not in err and not out.exists()


def test_make_engine_refuses_ray_only_options_locally():
    with pytest.raises(ConfigError, match="--engine ray"):
        make_engine("local", address="127.0.0.1:6379")
    with pytest.raises(ConfigError, match="--engine ray"):
        make_engine("local", gpus_per_run=0.5)


# --- a tiny sweep -----------------------------------------------------------------------------------
def _toml(raw: dict) -> str:
    from rnnautomata.config import dict_to_toml

    return dict_to_toml(raw)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "s"
    sweep = run_sweep(tiny_raw(), GRID, SEEDS, out, engine=LocalEngine(1), progress=False)
    return out, sweep


def _expected_point(point_dir: Path) -> dict:
    """The per-point measures computed here from each seed's own files (dynamics.json, metrics.jsonl)."""
    rows = []
    for s in SEEDS:
        run = point_dir / f"seed_{s:04d}"
        dyn = json.loads((run / "dynamics.json").read_text())
        last_metrics = RunDir(run).read_metrics()[-1]
        rows.append({
            "finite": dyn["checkpoints"][-1]["finite"],
            "first": dyn["finite_from_step"],
            "generalises": last_metrics["eval/acc_len1500"] >= 0.99,  # longest test length of tiny_raw
            "peak": max(c["n_states"] for c in dyn["checkpoints"]),
            "final_min": dyn["checkpoints"][-1]["n_states_min"],
            "loss": last_metrics["train/loss"],
        })
    firsts = [r["first"] for r in rows if r["first"] is not None]
    return {
        "fraction_finite": sum(r["finite"] for r in rows) / len(rows),
        "fraction_generalising": sum(r["generalises"] for r in rows) / len(rows),
        "first_finite_step_median": statistics.median(firsts) if firsts else None,
        "n_never_finite": len(rows) - len(firsts),
        "peak_states_median": statistics.median(r["peak"] for r in rows),
        "final_states_min_median": statistics.median(r["final_min"] for r in rows),
        "final_train_loss_median": statistics.median(r["loss"] for r in rows),
    }


def test_sweep_json_and_aggregate_match_each_seeds_own_files(swept):
    out, sweep = swept
    on_disk = json.loads((out / "sweep.json").read_text())
    assert on_disk == sweep and on_disk["format"] == SWEEP_FORMAT
    assert on_disk["grid"] == GRID and on_disk["seeds"] == SEEDS
    assert [r["status"] for r in on_disk["runs"]] == ["complete", "complete"]
    assert all(r["batched"] and r["seeds"] == SEEDS and r["error"] is None for r in on_disk["runs"])
    with open(out / "aggregate.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["model.init_gain"]) for r in rows] == GRID["model.init_gain"]
    agg = json.loads((out / "aggregate.json").read_text())["points"]
    for run, row, point in zip(on_disk["runs"], rows, agg):
        expected = _expected_point(out / run["dir"])
        assert RunDir(out / run["dir"]).read_manifest()["kind"] == "seeds"  # an ordinary many-seed folder
        for key, value in expected.items():
            if value is None:
                assert point[key] is None and row[key] == ""
            else:
                assert point[key] == pytest.approx(value) and float(row[key]) == pytest.approx(value), key
        assert int(row["n_done"]) == len(SEEDS)


def test_sweep_page_and_phase_diagram(swept):
    out, sweep = swept
    page = (out / "report.html").read_text()
    assert page.count("<tr>") == 1 + len(GRID["model.init_gain"])
    for run in sweep["runs"]:
        assert f'href="{run["dir"]}/report.html"' in page and (out / run["dir"] / "report.html").is_file()
    assert "<svg" in page
    for ext in ("png", "svg"):
        assert (out / "figures" / f"phase_diagram.{ext}").stat().st_size > 1000


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")}


def test_rerun_is_a_no_op(swept, monkeypatch):
    out, sweep = swept
    runs_before = {k: v for k, v in _snapshot(out).items() if "/" in k and not k.startswith("figures")}
    monkeypatch.setattr(sweep_mod, "_run_job", lambda job: pytest.fail(f"reran {job['out']}"))
    again = run_sweep(tiny_raw(), GRID, SEEDS, out, engine=LocalEngine(1), progress=False)
    assert again == sweep
    after = {k: v for k, v in _snapshot(out).items() if "/" in k and not k.startswith("figures")}
    assert after == runs_before  # no file of any run rewritten


def test_another_sweep_in_the_same_folder_is_refused(swept):
    out, _ = swept
    with pytest.raises(ConfigError, match="another sweep"):
        run_sweep(tiny_raw(), {"model.init_gain": [0.3]}, SEEDS, out, engine=LocalEngine(1), progress=False)


def test_interrupted_sweep_resumes_and_completes_every_run_once(swept, tmp_path):
    """A kill leaves a run with its last checkpoints missing and 'running' everywhere: the rerun
    trains only what is missing, and ends with the same summaries as the uninterrupted sweep."""
    src, sweep = swept
    out = tmp_path / "s"
    shutil.copytree(src, out)
    on_disk = json.loads((out / "sweep.json").read_text())
    killed = on_disk["runs"][1]
    point = RunDir(out / killed["dir"])
    schedule = point.read_manifest()["schedule"]
    for s in SEEDS:
        run = RunDir(out / killed["dir"] / f"seed_{s:04d}")
        for step in schedule[-3:]:
            run.checkpoint_path(step).unlink()
        run.write_manifest(status="running")
    point.write_manifest(status="running")
    killed["status"] = "running"
    (out / "sweep.json").write_text(json.dumps(on_disk))
    untouched = {k: v for k, v in _snapshot(out).items() if k.startswith(on_disk["runs"][0]["dir"] + "/")}

    again = run_sweep(tiny_raw(), GRID, SEEDS, out, engine=LocalEngine(1), progress=False)
    assert [r["status"] for r in again["runs"]] == ["complete", "complete"]
    assert [r["summary"]["per_seed"] for r in again["runs"]] == [r["summary"]["per_seed"] for r in sweep["runs"]]
    for s in SEEDS:
        run = RunDir(out / killed["dir"] / f"seed_{s:04d}")
        assert run.steps() == schedule  # every checkpoint once, none lost
        assert [m["step"] for m in run.read_metrics()] == schedule  # no duplicated records
    assert {k: v for k, v in _snapshot(out).items() if k in untouched} == untouched


def test_ctrl_c_stops_cleanly_and_a_rerun_finishes(tmp_path, monkeypatch):
    out = tmp_path / "s"
    real = sweep_mod._run_job
    calls = []

    def interrupted_second(job):
        calls.append(job["out"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(sweep_mod, "_run_job", interrupted_second)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(tiny_raw(), GRID, [0], out, engine=LocalEngine(1), render=False, progress=False)
    assert [r["status"] for r in json.loads((out / "sweep.json").read_text())["runs"]] == ["complete", "interrupted"]
    monkeypatch.setattr(sweep_mod, "_run_job", real)
    done = run_sweep(tiny_raw(), GRID, [0], out, engine=LocalEngine(1), render=False, progress=False)
    assert [r["status"] for r in done["runs"]] == ["complete", "complete"]
    assert len(calls) == 2  # the first run was not trained again


def test_a_failing_run_is_recorded_and_the_others_complete(tmp_path, capsys):
    """A huge learning rate makes the loss non-finite: that run fails with its one-line error;
    the other grid point completes (two worker processes: the local engine's pool)."""
    study = tmp_path / "tiny.toml"
    study.write_text(_toml(tiny_raw()))
    out = tmp_path / "s"
    code = main(["sweep", str(study), "--grid", "train.lr=0.05,1e6", "--seeds", "0", "--out", str(out),
                 "--jobs", "2", "--quiet", "--no-render"])
    assert code == 1
    runs = json.loads((out / "sweep.json").read_text())["runs"]
    assert [r["status"] for r in runs] == ["complete", "failed"]
    assert "non-finite" in runs[1]["error"] and "\n" not in runs[1]["error"] and runs[1]["summary"] is None
    with open(out / "aggregate.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["status"] == "complete" and rows[1]["status"] == "failed" and rows[1]["fraction_finite"] == ""
    assert "1 of 2 runs complete, 1 failed" in capsys.readouterr().out


def test_a_sweep_table_in_the_study_file(tmp_path):
    raw = tiny_raw(train={"epochs": 2})
    text = _toml(raw) + '[sweep]\nseeds = "0"\n[sweep.grid]\n"model.hidden_size" = [4, 6]\n'
    study = tmp_path / "tiny.toml"
    study.write_text(text)
    out = tmp_path / "s"
    assert main(["--threads", "1", "sweep", str(study), "--out", str(out), "--quiet", "--no-render", "--jobs", "1"]) == 0
    sweep = json.loads((out / "sweep.json").read_text())
    assert sweep["grid"] == {"model.hidden_size": [4, 6]} and sweep["seeds"] == [0]
    assert [r["dir"] for r in sweep["runs"]] == ["model.hidden_size=4", "model.hidden_size=6"]


def test_a_transformer_point_runs_one_run_per_seed(tmp_path):
    raw = tiny_raw(model={"arch": "transformer", "transformer": {"d_model": 8, "n_heads": 2, "positional": "rope"}},
                   train={"epochs": 1}, extract={"robust": False})
    raw["model"].pop("hidden_size")
    runs = plan_sweep(raw, {"train.lr": [0.01]}, [0, 1])
    assert [(r["batched"], r["dir"]) for r in runs] == [(False, "train.lr=0.01/seed_0000"), (False, "train.lr=0.01/seed_0001")]


# --- a real kill, a real Ray -----------------------------------------------------------------------
@pytest.mark.slow
def test_sigint_to_a_running_sweep_then_rerun(tmp_path):
    study = tmp_path / "tiny.toml"
    study.write_text(_toml(tiny_raw(train={"epochs": 30})))
    out = tmp_path / "s"
    cmd = [sys.executable, "-m", "rnnautomata", "sweep", str(study), "--grid", "model.init_gain=0.1,0.5,1.0",
           "--seeds", "0-1", "--out", str(out), "--jobs", "2", "--quiet", "--no-render"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not any((out / d).is_dir() and any((out / d).rglob("step_*.safetensors"))
                                             for d in ("model.init_gain=0.1", "model.init_gain=0.5")):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole process group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()[-2000:]
    assert subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=300).returncode == 0
    sweep = json.loads((out / "sweep.json").read_text())
    assert [r["status"] for r in sweep["runs"]] == ["complete"] * 3
    for r in sweep["runs"]:
        for s in (0, 1):
            run = RunDir(out / r["dir"] / f"seed_{s:04d}")
            assert run.steps() == run.read_manifest()["schedule"]
            assert [m["step"] for m in run.read_metrics()] == run.steps()


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}})
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_engine_gives_the_local_engines_summaries(local_ray, swept, tmp_path):
    from rnnautomata.engines import RayEngine

    _, local = swept
    out = tmp_path / "ray"
    on_ray = run_sweep(tiny_raw(), GRID, SEEDS, out, engine=RayEngine(), progress=False)
    assert on_ray["engine"] == "ray" and local_ray.is_initialized()  # a Ray started by the caller stays up
    assert [r["summary"]["per_seed"] for r in on_ray["runs"]] == [r["summary"]["per_seed"] for r in local["runs"]]
    assert json.loads((out / "aggregate.json").read_text())["points"] == json.loads(
        (swept[0] / "aggregate.json").read_text())["points"]


@pytest.mark.slow
def test_ray_engine_resumes_a_killed_run(local_ray, swept, tmp_path):
    """The kill-and-rerun of the local engine's test, finished on Ray: every checkpoint once."""
    from rnnautomata.engines import RayEngine

    src, local = swept
    out = tmp_path / "s"
    shutil.copytree(src, out)
    on_disk = json.loads((out / "sweep.json").read_text())
    killed = on_disk["runs"][0]
    schedule = RunDir(out / killed["dir"]).read_manifest()["schedule"]
    for s in SEEDS:
        run = RunDir(out / killed["dir"] / f"seed_{s:04d}")
        run.checkpoint_path(schedule[-1]).unlink()
        run.write_manifest(status="running")
    RunDir(out / killed["dir"]).write_manifest(status="running")
    killed["status"] = "running"
    (out / "sweep.json").write_text(json.dumps(on_disk))
    again = run_sweep(tiny_raw(), GRID, SEEDS, out, engine=RayEngine(), progress=False)
    assert [r["summary"]["per_seed"] for r in again["runs"]] == [r["summary"]["per_seed"] for r in local["runs"]]
    for s in SEEDS:
        run = RunDir(out / killed["dir"] / f"seed_{s:04d}")
        assert run.steps() == schedule and [m["step"] for m in run.read_metrics()] == schedule


@pytest.mark.slow
def test_an_icl_sweep_on_ray_gives_the_local_engines_summaries(local_ray, tmp_path):
    from rnnautomata.engines import RayEngine

    from test_sweep_kinds import tiny_cls

    grid = {"data.n_items": [20, 80]}
    local = run_sweep(tiny_cls(), grid, [0], tmp_path / "local", engine=LocalEngine(1), progress=False, render=False)
    on_ray = run_sweep(tiny_cls(), grid, [0], tmp_path / "ray", engine=RayEngine(), progress=False, render=False)
    assert [r["status"] for r in on_ray["runs"]] == ["complete", "complete"]
    assert [r["summary"] for r in on_ray["runs"]] == [r["summary"] for r in local["runs"]]


@pytest.mark.slow
def test_sigint_to_a_ray_sweep_then_rerun(local_ray, tmp_path):
    """A real Ctrl-C to `rnnautomata sweep --engine ray` joined to this session's Ray (its tasks are
    cancelled with the driver), then the same command again: every run completes once, each seed's
    checkpoints and metrics exactly its schedule (none duplicated or lost)."""
    study = tmp_path / "tiny.toml"
    study.write_text(_toml(tiny_raw(train={"epochs": 20})))
    out = tmp_path / "s"
    address = local_ray.get_runtime_context().gcs_address
    cmd = [sys.executable, "-m", "rnnautomata", "sweep", str(study), "--grid", "model.init_gain=0.1,1.0",
           "--seeds", "0-1", "--out", str(out), "--engine", "ray", "--address", address, "--quiet", "--no-render"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, env=env)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not any(out.rglob("step_*.safetensors")):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()[-2000:]
    assert "interrupted" in [r["status"] for r in json.loads((out / "sweep.json").read_text())["runs"]]
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=600, env=env)
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    sweep = json.loads((out / "sweep.json").read_text())
    assert [r["status"] for r in sweep["runs"]] == ["complete"] * 2 and sweep["engine"] == "ray"
    for r in sweep["runs"]:
        for s in (0, 1):
            run = RunDir(out / r["dir"] / f"seed_{s:04d}")
            assert run.steps() == run.read_manifest()["schedule"]
            assert [m["step"] for m in run.read_metrics()] == run.steps()


def test_phase_diagram_of_three_axes_draws_one_figure_per_further_value(tmp_path):
    from rnnautomata.sweep import MEASURES, draw_phase_diagram

    grid = {"a": [1, 2], "b": [0.5, 1.5, 2.5], "c": ["x"]}
    rows = [{"a": a, "b": b, "c": "x", "status": "complete" if a == 1 else "failed",
             **{m: (1.0 if a == 1 else None) for m, _, _ in MEASURES}} for a in grid["a"] for b in grid["b"]]
    written = draw_phase_diagram(rows, grid, tmp_path)
    assert sorted(p.name for p in written) == ["phase_diagram,c=x.png", "phase_diagram,c=x.svg"]
    assert all(p.stat().st_size > 1000 for p in written)
