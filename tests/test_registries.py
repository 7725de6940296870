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
