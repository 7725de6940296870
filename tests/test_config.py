import tomllib

import pytest

from rnnautomata.config import Study, apply_overrides, load_study, study_from_dict, study_to_toml
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
        ({"model": {"arch": "mamba"}}, r"model.arch = 'mamba' is not allowed; choose one of: elman, gru, lstm, transformer"),
        ({"train": {"lrr": 1}}, r"unknown field train.lrr"),
        ({"bogus": 1}, r"unknown key 'bogus'"),
        ({"train": {"epochs": "many"}}, r"train.epochs must be an integer"),
        ({"train": {"epochs": 1.5}}, r"train.epochs must be an integer"),
        ({"task": {"train_min_length": 5, "train_max_length": 2}}, r"exceeds task.train_max_length"),
        ({"extract": {"merger": "kmeans"}}, r"needs extract.n_clusters"),
        ({"model": "elman"}, r"\[model\] must be a table"),
        # issue 12: values that used to pass validation and fail later with a traceback
        ({"task": {"test_lengths": [0]}}, r"task.test_lengths must be positive"),
        ({"task": {"test_lengths": [5, -1]}}, r"task.test_lengths must be positive"),
        ({"seed": -5}, r"seed must be 0 or more \(got -5\)"),
        ({"seeds": [0, -1]}, r"seeds must be 0 or more"),
        ({"seed": 2**70}, r"seed must be below 2\*\*63"),
        ({"train": {"lr": float("nan")}}, r"train.lr must be a finite number \(got nan\)"),
        ({"train": {"lr": float("inf")}}, r"train.lr must be a finite number \(got inf\)"),
        ({"train": {"lr": 10**400}}, r"train.lr must be a finite number \(got 1000.*\.\.\.\)"),
        ({"train": {"grad_clip": float("-inf")}}, r"train.grad_clip must be a finite number \(got -inf\)"),
        ({"model": {"init_gain": float("nan")}}, r"model.init_gain must be a finite number"),
        ({"extract": {"tolerance": float("nan")}}, r"extract.tolerance must be a finite number"),
        ({"train": {"early_checkpoints": -1}}, r"train.early_checkpoints must be 0 or more \(got -1\)"),
        ({"extract": {"refine_rounds": -2}}, r"extract.refine_rounds must be 0 or more"),
        ({"name": "../../x"}, r"name = '../../x' cannot be a folder name"),
        ({"name": "a/b"}, r"cannot be a folder name"),
        ({"name": "a\\b"}, r"cannot be a folder name"),
        ({"name": ".."}, r"cannot be a folder name"),
        ({"name": ""}, r"cannot be a folder name"),
        ({"name": "x\ny"}, r"cannot be a folder name"),
        ({"name": 7}, r"name must be a string"),
        ({"task": {"name": "tomita1", "k": 3}}, r"task.k does not apply to task 'tomita1' \(only to mod_k_counting\)"),
        ({"task": {"name": "streaming_parity", "path": "m.json"}}, r"task.path does not apply to task 'streaming_parity'"),
        ({"train": {"bad\nkey": 1}}, r"unknown field train.'bad\\nkey'"),
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
    from rnnautomata.studies import KINDS, get_kind

    paths = sorted(Path(__file__).parents[1].glob("tasks/*.toml"))
    assert paths
    for path in paths:
        raw = tomllib.loads(path.read_text())
        if raw.get("kind", "automata") == "automata":
            load_study(path)
        elif raw["kind"] in KINDS:  # a registered study kind validates its own file
            raw.pop("sweep", None)
            get_kind(raw["kind"]).load(raw)
        else:
            icl_study.load_study(raw)


def test_task_specific_fields_are_accepted_by_their_task():
    assert study_from_dict({"task": {"name": "mod_k_counting", "k": 5}}).task.k == 5
    assert study_from_dict({"task": {"name": "machine", "path": "m.json"}}).task.path == "m.json"
    # an unknown task is left to make_task, which names the known ones
    assert study_from_dict({"task": {"name": "no_such_task", "k": 3}}).task.k == 3


def test_names_that_are_plain_folder_names_pass():
    for name in ("tiny", "parity_h100", "run-2.lr=0.05", "λ_study"):
        assert study_from_dict({"name": name}).name == name


def test_empty_alphabet_is_a_task_error(tmp_path):
    import json

    from rnnautomata.data import make_task
    from rnnautomata.errors import TaskError

    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"format": "rnnautomata.machine/1", "alphabet": [], "outputs": ["a"], "start": 0,
                                "transitions": [[]], "output_of_state": [0]}))
    study = study_from_dict({"task": {"name": "machine", "path": str(path)}})
    with pytest.raises(TaskError, match="empty alphabet") as info:
        make_task(study.task)
    assert "\n" not in str(info.value)
