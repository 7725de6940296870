"""Fuzzing the study reader and the CLI (issue 12): whatever a study file holds, the answer is a
Study or one ``error: ...`` line, never a traceback.

Both tests mutate a small valid study: random fields (known ones and unknown keys, whole sections
too) get random values of random types. Unit tier: about 20 s together.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import tempfile
from dataclasses import fields
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnautomata.cli import main
from rnnautomata.config import _SECTIONS, Study, study_from_dict
from rnnautomata.errors import ConfigError, TaskError

from conftest import tiny_raw

_TOP = [f.name for f in fields(Study) if f.name not in _SECTIONS]
_FIELDS = [(None, name) for name in _TOP] + [
    (section, f.name) for section, cls in _SECTIONS.items() for f in fields(cls)
]

_WORDS = ["", "..", "../../x", "a/b", "a\\b", "/etc/passwd", "~/runs", "C:\\runs", "x\ny", "λ-ü ☃", "\x00",
          "cpu", "cuda", "gru", "lstm", "tanh", "sample", "all", "kmeans", "cross_entropy", "adam",
          "tomita3", "mod_k_counting", "machine", "dyck1_depth2", "icl", "automata", "nan", "1e999"]

_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-5, max_value=40),
    st.integers(),  # negative and huge
    st.sampled_from([2**63, 2**64 + 1, -(2**63), 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(_WORDS),
    st.text(max_size=12),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6,
)
_keys = st.one_of(st.sampled_from(_FIELDS), st.tuples(st.sampled_from([None, *_SECTIONS]), st.text(min_size=1, max_size=8)))


def _mutate(raw: dict, data, values) -> dict:
    """Apply 1-4 random mutations to ``raw``: set a field (known or not), drop one, or replace a section."""
    for _ in range(data.draw(st.integers(1, 4), label="n_mutations")):
        action = data.draw(st.sampled_from(["set", "set", "set", "drop", "section"]), label="action")
        if action == "section":
            raw[data.draw(st.sampled_from(list(_SECTIONS)), label="section")] = data.draw(values, label="value")
            continue
        section, key = data.draw(_keys, label="key")
        node = raw if section is None else raw.setdefault(section, {})
        if not isinstance(node, dict):
            continue
        if action == "drop":
            node.pop(key, None)
        else:
            node[key] = data.draw(values, label="value")
    return raw


def _assert_one_line(err: Exception) -> None:
    text = str(err)
    assert text and "\n" not in text and "Traceback" not in text, repr(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_study_from_dict_returns_a_study_or_a_one_line_error(data):
    raw = _mutate(tiny_raw(), data, st.one_of(st.none(), _values))
    try:
        study = study_from_dict(raw)
    except (ConfigError, TaskError) as err:
        _assert_one_line(err)
        return
    assert isinstance(study, Study)
    for value in (study.train.lr, study.model.init_gain, study.extract.tolerance, study.extract.epsilon_scale):
        assert math.isfinite(value)
    assert study.seed >= 0 and min(study.task.test_lengths) >= 1 and study.train.early_checkpoints >= 0
    assert "/" not in study.name and ".." not in study.name


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)  # inf, -inf and 1e+300 are TOML too
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


def _toml_key(key: str) -> str:
    return json.dumps(key, ensure_ascii=False)


def _to_toml(raw: dict) -> str:
    """Any mutated study as TOML: plain values first, then one table per dict."""
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in raw.items() if not isinstance(v, dict)]
    for key, table in raw.items():
        if isinstance(table, dict):
            lines.append(f"[{_toml_key(key)}]")
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _fast_raw() -> dict:
    """tiny_raw cut down to one epoch and a few checkpoints: a valid mutation trains in ~1 s."""
    return tiny_raw(
        task={"test_lengths": [8], "test_samples": 2, "val_length": 6, "val_samples": 4},
        model={"hidden_size": 4},
        train={"epochs": 1, "early_checkpoints": 1, "eval_every": 1},
        probe={"depth": 3},
        extract={"check_strings": 8, "check_length": 8, "refine_rounds": 1, "robust_max_nodes": 64},
    )


# Small numbers only, so that a mutation that stays valid still trains in about a second.
_cli_values = st.recursive(
    st.one_of(
        st.booleans(),
        st.integers(min_value=-3, max_value=5),
        st.sampled_from([2**64 + 1, -(2**63)]),
        st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 0.0, 0.5, 1e300]),
        st.sampled_from(_WORDS),
        st.text(max_size=8),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=2)),
    max_leaves=4,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_cli_run_exits_0_or_one_error_line(data):
    raw = _mutate(_fast_raw(), data, _cli_values)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "study.toml"
        path.write_text(_to_toml(raw), encoding="utf-8")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(["run", str(path), "--out", str(Path(tmp) / "run"), "--quiet", "--no-render"])
            except SystemExit as stop:  # argparse
                code = stop.code
    lines = err.getvalue().splitlines()
    assert code in (0, 2), (code, err.getvalue())
    if code == 2:
        assert len(lines) == 1 and lines[0].startswith("error: "), err.getvalue()
    assert "Traceback" not in err.getvalue()
