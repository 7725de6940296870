"""`rnnautomata run | track --engine --address --gpus-per-run`: the seeds of a many-seed folder are
tracked on the engine that `sweep` uses; Ray gives every seed the same dynamics.json as local
processes; misuse is a one-line error before anything is written.

Tiers: unit (argument errors, ~1 s), integration (a tiny 2-seed folder trained once per module),
slow (a real local Ray, started once per module as in test_sweep.py).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from rnnautomata.cli import build_parser, main

from conftest import tiny_raw
from test_sweep import _toml

ROOT = Path(__file__).resolve().parents[1]
SEEDS = [0, 1]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


@pytest.fixture(scope="module")
def seeds_folder(tmp_path_factory):
    """A tiny 2-seed folder, trained and tracked by local processes: (study file, folder)."""
    tmp = tmp_path_factory.mktemp("seeds")
    study = tmp / "tiny.toml"
    study.write_text(_toml(tiny_raw(seeds=SEEDS, train={"epochs": 2})))
    out = tmp / "run"
    assert main(["run", str(study), "--out", str(out), "--quiet", "--no-render", "--engine", "local", "--jobs", "1"]) == 0
    return study, out


@pytest.fixture
def single_run(tmp_path):
    study = tmp_path / "one.toml"
    study.write_text(_toml(tiny_raw(train={"epochs": 1})))
    out = tmp_path / "one"
    assert main(["run", str(study), "--out", str(out), "--quiet", "--no-render"]) == 0
    return study, out


def _untracked_copy(src: Path, dest: Path) -> Path:
    """``src`` without anything tracking wrote: every seed must be extracted again."""
    shutil.copytree(src, dest)
    for s in SEEDS:
        seed = dest / f"seed_{s:04d}"
        (seed / "dynamics.json").unlink()
        shutil.rmtree(seed / "automata", ignore_errors=True)
    (dest / "aggregate.json").unlink(missing_ok=True)
    return dest


def _seed_states(folder: Path) -> list[list[tuple]]:
    """Per seed, per checkpoint: (step, ε-rule states, minimised states, ε-free machine's states)."""
    rows = []
    for s in SEEDS:
        dyn = json.loads((folder / f"seed_{s:04d}" / "dynamics.json").read_text())
        rows.append([(c["step"], c["n_states"], c["n_states_min"], (c.get("robust") or {}).get("n_states"))
                     for c in dyn["checkpoints"]])
    return rows


# --- the flags: one definition on the three commands ---------------------------------------------
def test_run_track_and_sweep_share_the_engine_flags():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    flags = {"--engine", "--address", "--jobs", "--gpus-per-run"}
    for command in ("run", "track", "sweep"):
        options = {s: a for a in sub[command]._actions for s in a.option_strings}
        assert flags <= set(options), command
        assert options["--engine"].choices == ("local", "ray") and options["--engine"].default == "local"
    ns = parser.parse_args(["track", "r", "--engine", "ray", "--address", "h:6379", "--gpus-per-run", "0.5", "--jobs", "3"])
    assert (ns.engine, ns.address, ns.gpus_per_run, ns.jobs) == ("ray", "h:6379", 0.5, 3)


# --- errors, before anything is written --------------------------------------------------------------
@pytest.mark.parametrize("flags, words", [
    (["--address", "127.0.0.1:6379"], "--address joins a Ray cluster; add --engine ray"),
    (["--gpus-per-run", "0.5"], "--gpus-per-run shares GPUs between Ray tasks; add --engine ray"),
])
def test_ray_only_flags_without_engine_ray_are_one_line_errors(tmp_path, capsys, flags, words):
    study = tmp_path / "s.toml"
    study.write_text(_toml(tiny_raw(seeds=SEEDS, train={"epochs": 1})))
    out = tmp_path / "out"
    assert main(["run", str(study), "--out", str(out), "--quiet", *flags]) == 2
    assert words in _error_line(capsys) and not out.exists()
    assert main(["track", str(tmp_path), *flags]) == 2  # checked before the folder is even read
    assert words in _error_line(capsys)


def test_engine_ray_without_ray_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray absent (even where it is installed)
    study = tmp_path / "s.toml"
    study.write_text(_toml(tiny_raw(seeds=SEEDS, train={"epochs": 1})))
    out = tmp_path / "out"
    assert main(["run", str(study), "--out", str(out), "--quiet", "--engine", "ray"]) == 2
    line = _error_line(capsys)
    assert "pip install 'rnnautomata[ray]'" in line and not out.exists()
    assert main(["track", str(out), "--engine", "ray"]) == 2
    assert "pip install 'rnnautomata[ray]'" in _error_line(capsys)


def test_a_dead_address_fails_before_training_or_tracking(seeds_folder, tmp_path, capsys):
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("a Ray is already up in this process (it would be used, not the address)")
    study, src = seeds_folder
    out = tmp_path / "out"
    assert main(["run", str(study), "--out", str(out), "--quiet", "--engine", "ray", "--address", "127.0.0.1:9"]) == 2
    line = _error_line(capsys)
    assert "--address 127.0.0.1:9: no Ray cluster answers there" in line and not out.exists()
    copy = _untracked_copy(src, tmp_path / "copy")
    assert main(["track", str(copy), "--quiet", "--engine", "ray", "--address", "127.0.0.1:9"]) == 2
    assert "no Ray cluster answers" in _error_line(capsys)
    assert not any(copy.rglob("dynamics.json")) and not (copy / "aggregate.json").exists()


def test_engine_ray_on_a_study_without_seeds_is_refused_before_training(tmp_path, capsys):
    pytest.importorskip("ray")
    study = tmp_path / "one.toml"
    study.write_text(_toml(tiny_raw(train={"epochs": 1})))
    out = tmp_path / "one"
    assert main(["run", str(study), "--out", str(out), "--quiet", "--engine", "ray"]) == 2
    line = _error_line(capsys)
    assert "--engine ray spreads the seeds of a many-seed folder" in line and "study 'tiny'" in line
    assert "it sets no seeds" in line and "rnnautomata sweep --engine ray" in line
    assert not out.exists()


def test_engine_ray_on_one_run_is_refused_and_its_dynamics_untouched(single_run, capsys):
    pytest.importorskip("ray")
    _, out = single_run
    before = (out / "dynamics.json").read_bytes()
    assert main(["track", str(out), "--engine", "ray", "--quiet"]) == 2
    line = _error_line(capsys)
    assert f"{out} (one 'automata' run)" in line and "--engine ray spreads" in line
    assert (out / "dynamics.json").read_bytes() == before
    assert main(["track", str(out), "--engine", "local", "--quiet"]) == 0  # the default engine still applies


def test_engine_ray_on_a_kind_that_has_no_seeds_names_it(tmp_path, capsys):
    pytest.importorskip("ray")
    study = tmp_path / "icl.toml"
    study.write_text('kind = "icl"\nname = "icl"\n')
    assert main(["run", str(study), "--out", str(tmp_path / "o"), "--quiet", "--engine", "ray"]) == 2
    line = _error_line(capsys)
    assert "a 'icl' study" in line and "--engine ray spreads" in line and not (tmp_path / "o").exists()


# --- the work itself ------------------------------------------------------------------------------
def test_local_engine_retracks_a_seeds_folder_to_the_same_dynamics(seeds_folder, tmp_path, capsys):
    _, src = seeds_folder
    copy = _untracked_copy(src, tmp_path / "copy")
    assert main(["track", str(copy), "--engine", "local", "--jobs", "1", "--quiet", "--json"]) == 0
    agg = json.loads(capsys.readouterr().out)
    assert agg["seeds"] == SEEDS
    assert _seed_states(copy) == _seed_states(src)


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    if ray.is_initialized():  # test_sweep's module Ray in the same session
        yield ray
        return
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}})
    yield ray
    ray.shutdown()


def _only_on_ray(monkeypatch) -> None:
    """Tracking in this process, or on the local engine, fails (Ray's workers import their own,
    real copies of the modules)."""
    import rnnautomata.aggregate as aggregate
    from rnnautomata.engines import LocalEngine

    def not_here(*args, **kwargs):
        raise AssertionError("a seed was tracked in the calling process or local processes, not on Ray")

    monkeypatch.setattr(aggregate, "track", not_here)
    monkeypatch.setattr(LocalEngine, "map", not_here)


@pytest.mark.slow
def test_track_on_ray_gives_every_seed_the_local_engines_dynamics(local_ray, seeds_folder, tmp_path, capsys, monkeypatch):
    """The seeds are tracked in Ray's workers, not here nor in local processes (both made to fail),
    and each seed's dynamics.json is the local engine's: the same checkpoints, ε-rule and ε-free
    machine state counts, verdicts; the aggregate over the seeds the same too."""
    _, src = seeds_folder
    copy = _untracked_copy(src, tmp_path / "copy")

    _only_on_ray(monkeypatch)
    monkeypatch.chdir(tmp_path)  # a relative folder: the workers get its absolute path
    assert main(["track", "copy", "--engine", "ray", "--quiet", "--json"]) == 0
    agg = json.loads(capsys.readouterr().out)
    assert local_ray.is_initialized()  # a Ray started by the caller is left up
    assert _seed_states(copy) == _seed_states(src)
    for s in SEEDS:
        mine, theirs = (json.loads((f / f"seed_{s:04d}" / "dynamics.json").read_text()) for f in (copy, src))
        assert mine == theirs
    assert agg == json.loads((src / "aggregate.json").read_text())


@pytest.mark.slow
def test_run_on_ray_trains_here_and_tracks_the_seeds_on_ray(local_ray, seeds_folder, tmp_path, capsys, monkeypatch):
    study, src = seeds_folder
    _only_on_ray(monkeypatch)
    out = tmp_path / "r"
    assert main(["run", str(study), "--out", str(out), "--quiet", "--no-render", "--engine", "ray"]) == 0
    assert "ε-free machines equivalent" in capsys.readouterr().out
    assert _seed_states(out) == _seed_states(src)
