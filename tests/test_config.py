import tomllib

import pytest

from rnnautomata.config import (
    Study,
    apply_overrides,
    load_study,
    study_from_dict,
    study_to_toml,
)
from rnnautomata.errors import ConfigError


def test_defaults_match_the_paper_setup():
    s = Study()
    assert (s.model.hidden_size, s.model.init_gain, s.model.initial_state) == (100, 0.1, 1.0)
    assert (s.train.lr, s.train.batch_size, s.train.epochs, s.train.loss) == (0.02, 128, 1000, "mse")


def test_toml_round_trip(tmp_path):
    s = study_from_dict({"name": "x", "train": {"lr": 0.05}, "task": {"test_lengths": [7, 9]}})
    p = tmp_path / "s.toml"
    p.write_text(study_to_toml(s))
    assert load_study(p) == s


def test_overrides_are_typed_and_validated():
    raw = apply_overrides({"train": {"lr": 0.02}}, ["train.lr=0.05", "model.arch=gru", "task.test_lengths=[5, 6]"])
    s = study_from_dict(raw)
    assert s.train.lr == 0.05 and s.model.arch == "gru" and s.task.test_lengths == (5, 6)
    with pytest.raises(ConfigError, match="train.lr must be positive"):
        study_from_dict(apply_overrides({}, ["train.lr=-1"]))
    with pytest.raises(ConfigError, match="section.field=value"):
        apply_overrides({}, ["train.lr"])


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"model": {"arch": "transformer"}}, r"model.arch = 'transformer' is not allowed; choose one of: elman, gru, lstm"),
        ({"train": {"lrr": 1}}, r"unknown field train.lrr"),
        ({"bogus": 1}, r"unknown key 'bogus'"),
        ({"train": {"epochs": "many"}}, r"train.epochs must be an integer"),
        ({"train": {"epochs": 1.5}}, r"train.epochs must be an integer"),
        ({"task": {"train_min_length": 5, "train_max_length": 2}}, r"exceeds task.train_max_length"),
        ({"extract": {"merger": "kmeans"}}, r"needs extract.n_clusters"),
        ({"model": "elman"}, r"\[model\] must be a table"),
    ],
)
def test_bad_values_give_one_line_errors_naming_the_field(raw, message):
    with pytest.raises(ConfigError, match=message) as info:
        study_from_dict(raw)
    assert "\n" not in str(info.value)


def test_malformed_toml_is_one_line(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[train\nlr = 0.1\n")
    with pytest.raises(ConfigError, match="is not valid TOML") as info:
        load_study(p)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="not found"):
        load_study(tmp_path / "missing.toml")


def test_shipped_studies_validate():
    from pathlib import Path

    from rnnautomata.icl import study as icl_study

    paths = sorted(Path(__file__).parents[1].glob("tasks/*.toml"))
    assert paths
    for path in paths:
        raw = tomllib.loads(path.read_text())
        if raw.get("kind", "automata") == "automata":
            load_study(path)
        else:
            icl_study.load_study(raw)
