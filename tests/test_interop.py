"""Tests for rnnautomata.interop (AALpy, automata-lib); skipped when a library is absent.

Tier: unit, fast.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnautomata import interop
from rnnautomata.automata import Machine

SETTINGS = settings(max_examples=100, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
ACCEPTOR = ("reject", "accept")


def tomita3_like() -> Machine:
    """A complete 4-state acceptor over {0, 1} (start 0)."""
    return Machine(("0", "1"), ACCEPTOR, np.array([[0, 1], [2, 0], [3, 2], [3, 3]]),
                   np.array([1, 1, 0, 0]))


def partial_moore() -> Machine:
    return Machine(("a", "b"), ("x", "y", "z"), np.array([[1, -1], [2, 0], [-1, -1]]),
                   np.array([0, -1, 2]), start=1)


@st.composite
def complete_acceptors(draw, max_states=7):
    n_states = draw(st.integers(1, max_states))
    n_symbols = draw(st.integers(1, 3))
    transitions = draw(st.lists(st.integers(0, n_states - 1), min_size=n_states * n_symbols,
                                max_size=n_states * n_symbols))
    accepting = draw(st.lists(st.integers(0, 1), min_size=n_states, max_size=n_states))
    start = draw(st.integers(0, n_states - 1))
    return Machine(tuple("abc"[:n_symbols]), ACCEPTOR,
                   np.array(transitions).reshape(n_states, n_symbols), np.array(accepting), start)


def test_missing_library_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "aalpy.automata", None)
    monkeypatch.setitem(sys.modules, "automata.fa.dfa", None)
    with pytest.raises(ImportError, match=r"pip install rnnautomata\[interop\]"):
        interop.to_aalpy_moore(tomita3_like())
    with pytest.raises(ImportError, match=r"pip install rnnautomata\[interop\]"):
        interop.to_automata_lib_dfa(tomita3_like())


def test_dfa_conversion_needs_acceptor_outputs():
    pytest.importorskip("automata.fa.dfa")
    with pytest.raises(ValueError, match="needs every state's output"):
        interop.to_automata_lib_dfa(partial_moore())


# ---------------------------------------------------------------------------- AALpy
def test_aalpy_moore_round_trip_keeps_partial_machine():
    pytest.importorskip("aalpy")
    machine = partial_moore()
    moore = interop.to_aalpy_moore(machine)
    assert moore.initial_state.state_id == "s1"
    assert moore.compute_output_seq(moore.initial_state, ["b", "a"]) == ["x", None]
    back = interop.from_aalpy(moore)
    assert back.equivalent(machine) == (True, None)
    assert np.array_equal(back.transitions, machine.transitions)


def test_aalpy_dfa_round_trip_and_outputs():
    pytest.importorskip("aalpy")
    machine = tomita3_like()
    dfa = interop.to_aalpy_dfa(machine)
    words = [[], ["1"], ["1", "0"], ["1", "0", "0"], ["0", "1", "1"]]
    for word in words:
        dfa.reset_to_initial()
        accepted = dfa.execute_sequence(dfa.initial_state, word)
        accepted = accepted[-1] if isinstance(accepted, list) else accepted
        expected = machine.output_of(machine.encode(word)) == 1
        assert accepted == expected
    assert interop.from_aalpy(dfa).equivalent(machine) == (True, None)


def test_aalpy_minimize_agrees_on_size():
    pytest.importorskip("aalpy")
    rng = np.random.default_rng(0)
    for _ in range(5):
        machine = Machine(("0", "1"), ACCEPTOR, rng.integers(0, 6, size=(6, 2)),
                          rng.integers(0, 2, size=6))
        dfa = interop.to_aalpy_dfa(machine.reachable())
        dfa.minimize()
        assert len(dfa.states) == machine.minimize().n_states


# ---------------------------------------------------------------------- automata-lib
def test_automata_lib_round_trip():
    pytest.importorskip("automata.fa.dfa")
    machine = tomita3_like()
    dfa = interop.to_automata_lib_dfa(machine)
    assert dfa.accepts_input("1") and not dfa.accepts_input("10")
    back = interop.from_automata_lib_dfa(dfa)
    assert back.equivalent(machine) == (True, None)
    partial = machine.replace(transitions=np.where(np.arange(4)[:, None] == 3, -1, machine.transitions))
    partial_dfa = interop.to_automata_lib_dfa(partial)
    assert partial_dfa.allow_partial
    assert interop.from_automata_lib_dfa(partial_dfa).equivalent(partial) == (True, None)


@pytest.mark.skipif(importlib.util.find_spec("automata") is None, reason="automata-lib not installed")
@SETTINGS
@given(complete_acceptors())
def test_minimal_size_matches_automata_lib_minify(machine):
    minified = interop.to_automata_lib_dfa(machine).minify()
    ours = machine.minimize()
    assert len(minified.states) == ours.n_states
    assert interop.from_automata_lib_dfa(minified).equivalent(ours) == (True, None)
