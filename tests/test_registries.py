"""Every list of names is its registry's keys (issue 11): architectures, mergers, study kinds and
tasks are each written once, and every place that offers a choice reads it from there."""

from __future__ import annotations

import argparse
import sys

import pytest

from rnnautomata import config
from rnnautomata.cli import build_parser, main
from rnnautomata.icl import config as icl_config
from rnnautomata.merge import MERGERS, merger_for, uses_epsilon
from rnnautomata.models import MODELS, RECURRENT_CELLS
from rnnautomata.studies import FOLDER_KINDS, KINDS, StudyKind, get_kind


def _subparser(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def test_config_choices_are_the_registries_keys():
    assert config._CHOICES["model.arch"] == tuple(MODELS)
    assert config._CHOICES["extract.merger"] == tuple(MERGERS)
    merger = next(a for a in _subparser("track")._actions if a.dest == "merger")
    assert tuple(merger.choices) == tuple(MERGERS)


def test_architectures():
    from rnnautomata.batched import _CELLS
    from rnnautomata.models.rnn import ARCHS, build_recurrent
    from rnnautomata.models.transformer import build_transformer

    assert set(ARCHS) == set(_CELLS) == set(RECURRENT_CELLS)
    assert {arch for arch in MODELS if MODELS[arch] is build_recurrent} == set(RECURRENT_CELLS)
    assert MODELS["transformer"] is build_transformer


def test_reading_the_arch_names_imports_no_torch():
    """config's choices come from the model registry without importing a model (so, torch)."""
    import subprocess

    code = "import sys, rnnautomata.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_study_kinds():
    for name in (*KINDS, *FOLDER_KINDS):
        kind = get_kind(name)
        assert isinstance(kind, StudyKind) and kind.name == name and kind.description
    assert set(icl_config._KINDS) <= set(KINDS)
    for name in icl_config._KINDS:  # each icl-family kind reads its own dataclass
        assert type(get_kind(name).load({"kind": name})) is icl_config._KINDS[name]
    assert get_kind("automata").load({}).kind == "automata"


def test_tasks_lists_every_kind_and_task(capsys):
    from rnnautomata.data import TASKS

    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in (*TASKS, *KINDS))


@pytest.mark.parametrize("name", list(MERGERS))
def test_merger_for_builds_each_merger_from_extract(name):
    extract = config.ExtractConfig(merger=name, n_clusters=2)
    merger = merger_for(name, extract, epsilon=0.5, seed=3)
    assert isinstance(merger, MERGERS[name])
    labels = merger.fit([[0.0], [0.1], [5.0]]).labels_
    assert labels.tolist() == [0, 0, 1]
    assert uses_epsilon(name) == (name != "kmeans")


# --- a new kind: one file (here, this module) and one registry line; no change to the cli ----------
class LineFitKind(StudyKind):
    """docs/contracts.md's worked example, checked: fit w in y = 2x by gradient descent."""

    name = "line_fit"
    description = "fit y = 2x by gradient descent"

    def load(self, raw: dict) -> dict:
        from rnnautomata.errors import ConfigError

        unknown = set(raw) - {"kind", "name", "lr", "steps"}
        if unknown:
            raise ConfigError(f"unknown key {sorted(unknown)[0]!r} in the study; allowed: name, lr, steps")
        return {"name": raw.get("name", "line_fit"), "lr": raw.get("lr", 0.1), "steps": raw.get("steps", 100)}

    def run(self, study, out, *, device=None, progress=True, render=True, **options) -> dict:
        from pathlib import Path

        from rnnautomata.runs import RunDir, atomic_write_json

        run, w = RunDir(Path(out)), 0.0
        run.start_or_resume(self.name, f"lr = {study['lr']}\nsteps = {study['steps']}\n")
        run.write_manifest(kind=self.name, name=study["name"], status="running")
        for _ in range(study["steps"]):
            w -= study["lr"] * 2 * (w - 2.0)
        atomic_write_json(run.root / "summary.json", {"w": w})
        run.write_manifest(status="complete")
        return {"w": w}


def test_a_new_kind_is_one_file_and_one_registry_line(tmp_path, monkeypatch, capsys):
    import json

    monkeypatch.setitem(KINDS, "line_fit", f"{__name__}:LineFitKind")
    study = tmp_path / "fit.toml"
    study.write_text('kind = "line_fit"\nlr = 0.25\nsteps = 40\n')
    assert main(["run", str(study), "--out", str(tmp_path / "r"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[: out.index("run directory")])["w"] == pytest.approx(2.0)  # (1 - 0.5)^40 from 2
    assert main(["run", str(study), "--set", "oops=1", "--out", str(tmp_path / "r2")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: unknown key 'oops' in the study; allowed: name, lr, steps"]
    assert main(["report", str(tmp_path / "r")]) == 2  # the kind has no report: one line naming the command
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {tmp_path / 'r'} is a 'line_fit' run; `rnnautomata report` does not apply to it"]
