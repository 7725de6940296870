"""Tests for rnnautomata.interop (AALpy, automata-lib); skipped when a library is absent.

Tier: unit, fast.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
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


def _aalpy_dfa_no_11():
    """AALpy DFA over {0, 1}: no two consecutive 1s (q2 is dead); state ids differ from outputs."""
    from aalpy.automata import Dfa, DfaState

    q0, q1, q2 = DfaState("q0", True), DfaState("q1", True), DfaState("q2", False)
    q0.transitions = {"0": q0, "1": q1}
    q1.transitions = {"0": q0, "1": q2}
    q2.transitions = {"0": q2, "1": q2}
    return Dfa(q0, [q0, q1, q2])


def _aalpy_moore_counter():
    """AALpy Moore machine over {a, b, c}: a counts up mod 3, b resets, c stays; outputs low/mid/high."""
    from aalpy.automata import MooreMachine, MooreState

    states = [MooreState(f"s{i}", name) for i, name in enumerate(["low", "mid", "high"])]
    for i, state in enumerate(states):
        state.transitions = {"a": states[(i + 1) % 3], "b": states[0], "c": state}
    return MooreMachine(states[1], states)  # start at "mid" so the start is not state 0


@pytest.mark.parametrize("build", [_aalpy_dfa_no_11, _aalpy_moore_counter])
def test_from_dot_reads_aalpy_dot_files(build, tmp_path):
    """DOT written by AALpy's own save_automaton_to_file reads back as the same machine as from_aalpy."""
    pytest.importorskip("aalpy")
    from aalpy.utils import save_automaton_to_file

    automaton = build()
    save_automaton_to_file(automaton, tmp_path / "model", file_type="dot")
    read = Machine.from_dot((tmp_path / "model.dot").read_text())
    direct = interop.from_aalpy(automaton)
    assert read.equivalent(direct) == (True, None)
    assert not set(read.outputs) & {str(state.state_id) for state in automaton.states}


@SETTINGS
@given(complete_acceptors())
def test_from_dot_reads_aalpy_dfa_dot(machine):
    pytest.importorskip("aalpy")
    from aalpy.utils import save_automaton_to_file

    accept = machine.outputs.index("accept")
    reachable = machine.reachable()
    assume(bool((reachable.output_of_state == accept).any()))  # no doublecircle: see the next test
    dfa = interop.to_aalpy_dfa(reachable)
    text = save_automaton_to_file(dfa, file_type="string")
    assert Machine.from_dot(text).equivalent(interop.from_aalpy(dfa)) == (True, None)


def test_from_dot_refuses_aalpy_dot_without_outputs():
    """A Mealy machine, or a DFA with no accepting state, has node labels that are only names."""
    pytest.importorskip("aalpy")
    from aalpy.automata import Dfa, DfaState, MealyMachine, MealyState
    from aalpy.utils import save_automaton_to_file

    m0, m1 = MealyState("m0"), MealyState("m1")
    m0.transitions, m0.output_fun = {"a": m1, "b": m0}, {"a": "x", "b": "y"}
    m1.transitions, m1.output_fun = {"a": m0, "b": m1}, {"a": "y", "b": "y"}
    mealy_text = save_automaton_to_file(MealyMachine(m0, [m0, m1]), file_type="string")
    with pytest.raises(ValueError, match="Mealy machine") as info:
        Machine.from_dot(mealy_text)
    assert "\n" not in str(info.value)
    dead = DfaState("d", False)
    dead.transitions = {"0": dead}
    with pytest.raises(ValueError, match="only repeat the node names"):
        Machine.from_dot(save_automaton_to_file(Dfa(dead, [dead]), file_type="string"))


def _aalpy_mealy():
    """3-state Mealy machine over {a, b} with outputs x/y/z; m2 has no b transition (partial)."""
    from aalpy.automata import MealyMachine, MealyState

    m0, m1, m2 = MealyState("m0"), MealyState("m1"), MealyState("m2")
    m0.transitions, m0.output_fun = {"a": m1, "b": m0}, {"a": "x", "b": "y"}
    m1.transitions, m1.output_fun = {"a": m2, "b": m0}, {"a": "y", "b": "z"}
    m2.transitions, m2.output_fun = {"a": m0}, {"a": "x"}
    return MealyMachine(m0, [m0, m1, m2])


def _mealy_last_output(mealy, word):
    """Walk the Mealy machine by hand: the output on the word's last symbol, or "<fell off>"."""
    state, output = mealy.initial_state, None
    for letter in word:
        if letter not in state.transitions:
            return "<fell off>"
        state, output = state.transitions[letter], state.output_fun[letter]
    return output


def test_from_aalpy_turns_mealy_into_moore_on_every_prefix():
    """Brute force, all strings up to length 8: Moore output after w == Mealy output on w's last symbol."""
    pytest.importorskip("aalpy")
    mealy = _aalpy_mealy()
    moore = interop.from_aalpy(mealy)
    assert moore.outputs == ("", "x", "y", "z")
    assert moore.outputs[moore.output_of([])] == ""
    for length in range(1, 9):
        for word in itertools.product("ab", repeat=length):
            expected = _mealy_last_output(mealy, word)
            got = moore.output_of(list(word))
            assert (moore.outputs[got] if got >= 0 else "<fell off>") == expected, word
            if expected != "<fell off>":  # AALpy's own run agrees too
                assert mealy.compute_output_seq(mealy.initial_state, list(word))[-1] == expected
    assert moore.meta["aalpy_state_ids"][0] == "m0" and moore.meta["aalpy_mealy_entry_outputs"][0] is None


def test_from_aalpy_mealy_empty_output_choices():
    pytest.importorskip("aalpy")
    mealy = _aalpy_mealy()
    assert interop.from_aalpy(mealy, empty_output="start").outputs == ("start", "x", "y", "z")
    unknown = interop.from_aalpy(mealy, empty_output=None)
    assert unknown.outputs == ("x", "y", "z") and unknown.output_of([]) == -1
    with pytest.raises(ValueError, match="also a Mealy output"):
        interop.from_aalpy(mealy, empty_output="x")


def test_from_aalpy_echo_mealy_has_one_state_per_last_symbol():
    """The docstring example: a 1-state Mealy machine echoing its input -> start + one state per symbol."""
    pytest.importorskip("aalpy")
    from aalpy.automata import MealyMachine, MealyState

    echo = MealyState("e")
    echo.transitions, echo.output_fun = {"a": echo, "b": echo}, {"a": "a", "b": "b"}
    moore = interop.from_aalpy(MealyMachine(echo, [echo]))
    assert moore.n_states == 3 and moore.minimize().n_states == 3
    assert [moore.outputs[o] for o in moore.output_sequence(np.array([[0, 1, 1]]))[0]] == ["a", "b", "b"]


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
