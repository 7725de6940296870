"""Converters between :class:`~rnnautomata.automata.Machine` and other automata libraries.

Optional: AALpy (``aalpy.automata.MooreMachine``, ``aalpy.automata.Dfa``; ``MealyMachine`` one
way, into an equivalent Moore machine) and automata-lib
(``automata.fa.dfa.DFA``) are imported only when a converter runs. Install them with
``pip install rnnautomata[interop]``.

Acceptors (DFAs) map to machines with two outputs, ``("reject", "accept")`` by default; a
machine converts to a DFA when each of its known outputs is one of those two labels.
State ids in the other libraries are strings ``"s0", "s1", ...`` (our state ids); symbols are our
alphabet labels. Open transitions become missing transitions (AALpy, and automata-lib with
``allow_partial=True``); unknown outputs become ``None`` in an AALpy Moore machine and cannot be
written to a DFA.
"""

from __future__ import annotations

import importlib
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from rnnautomata.automata import Machine

__all__ = [
    "to_aalpy_moore",
    "to_aalpy_dfa",
    "from_aalpy",
    "to_automata_lib_dfa",
    "from_automata_lib_dfa",
]

_INSTALL_HINT = "pip install rnnautomata[interop]"


def _require(module: str, package: str) -> Any:
    """Import ``module`` or raise a one-line ImportError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{package} is not installed; run `{_INSTALL_HINT}`") from None


def _state_name(state: int) -> str:
    return f"s{state}"


def _acceptance(machine: Machine, accept: str, reject: str) -> np.ndarray:
    """(N,) bool accepting flags; ValueError when an output is unknown or another label."""
    allowed = {accept, reject}
    labels = [machine.outputs[i] if i >= 0 else None for i in machine.output_of_state.tolist()]
    bad = [label for label in labels if label not in allowed]
    if bad:
        raise ValueError(
            f"a DFA needs every state's output in {{{reject!r}, {accept!r}}}; found {bad[0]!r}"
        )
    return np.array([label == accept for label in labels], dtype=bool)


def _from_table(
    alphabet_keys: Sequence[Hashable],
    states: Sequence[Hashable],
    start: Hashable,
    next_of: dict[Hashable, dict[Hashable, Hashable]],
    output_labels: Sequence[str | None],
    outputs: tuple[str, ...],
    meta: dict[str, Any],
) -> Machine:
    """Build a Machine from a generic state table (states in the given order)."""
    index = {state: i for i, state in enumerate(states)}
    transitions = np.full((len(states), len(alphabet_keys)), -1, dtype=np.int64)  # (N, K)
    for i, state in enumerate(states):
        for k, key in enumerate(alphabet_keys):
            target = next_of[state].get(key)
            if target is not None:
                transitions[i, k] = index[target]
    output_id = {label: i for i, label in enumerate(outputs)}
    output_of_state = np.array(
        [-1 if label is None else output_id[label] for label in output_labels], dtype=np.int64)
    alphabet = tuple(str(key) for key in alphabet_keys)
    return Machine(alphabet, outputs, transitions, output_of_state, index[start], meta)


# --------------------------------------------------------------------------- AALpy
def to_aalpy_moore(machine: Machine) -> Any:
    """Convert to an ``aalpy.automata.MooreMachine``.

    Parameters
    ----------
    machine : Machine

    Returns
    -------
    aalpy.automata.MooreMachine
        States ``s<i>`` with output labels (None when unknown); inputs are alphabet labels.

    Raises
    ------
    ImportError
        If AALpy is not installed.
    """
    automata = _require("aalpy.automata", "AALpy")
    states = [
        automata.MooreState(_state_name(i), machine.outputs[o] if o >= 0 else None)
        for i, o in enumerate(machine.output_of_state.tolist())
    ]
    _link_aalpy(machine, states)
    return automata.MooreMachine(states[machine.start], states)


def to_aalpy_dfa(machine: Machine, accept: str = "accept", reject: str = "reject") -> Any:
    """Convert an acceptor machine to an ``aalpy.automata.Dfa``.

    Parameters
    ----------
    machine : Machine
        Every state's output must be ``accept`` or ``reject``.
    accept, reject : str
        The output labels meaning accepting and rejecting.

    Returns
    -------
    aalpy.automata.Dfa

    Raises
    ------
    ImportError
        If AALpy is not installed.
    ValueError
        If a state's output is unknown or another label.
    """
    automata = _require("aalpy.automata", "AALpy")
    accepting = _acceptance(machine, accept, reject)
    states = [automata.DfaState(_state_name(i), bool(flag)) for i, flag in enumerate(accepting)]
    _link_aalpy(machine, states)
    return automata.Dfa(states[machine.start], states)


def _link_aalpy(machine: Machine, states: list[Any]) -> None:
    for i, row in enumerate(machine.transitions.tolist()):
        for k, target in enumerate(row):
            if target >= 0:
                states[i].transitions[machine.alphabet[k]] = states[target]


def from_aalpy(
    automaton: Any, accept: str = "accept", reject: str = "reject", empty_output: str | None = ""
) -> Machine:
    """Convert an AALpy ``MooreMachine``, ``Dfa`` or ``MealyMachine`` to a Machine.

    A Mealy machine becomes the equivalent Moore machine: its states are the pairs (Mealy
    state, output of the transition that entered it) reachable from the start, in breadth-first
    order, so the output after a non-empty string is the Mealy output on its last symbol. The
    empty string has no Mealy output; the start state outputs ``empty_output``.

    Example (a one-state Mealy machine echoing its input):  input a b b  ->  Moore outputs
    a b b after each symbol, and ``""`` for the empty string; 3 states (start, last a, last b).

    Parameters
    ----------
    automaton : aalpy.automata.MooreMachine, aalpy.automata.Dfa or aalpy.automata.MealyMachine
    accept, reject : str
        Output labels given to accepting / rejecting DFA states.
    empty_output : str or None
        Mealy only: the start state's output (the output of the empty string); ``None`` leaves
        it unknown (-1). Default ``""``.

    Returns
    -------
    Machine
        Moore and DFA: states in ``automaton.states`` order. Alphabet = the inputs as strings,
        sorted; Moore/Mealy outputs = the distinct outputs as strings, sorted (None -> unknown;
        Mealy: plus ``empty_output``); DFAs get outputs ``(reject, accept)``.
        ``meta["aalpy_state_ids"]`` keeps the original id of each state (Mealy: of the pair's
        Mealy state; ``meta["aalpy_mealy_entry_outputs"]`` the pair's output, None at the start).

    Raises
    ------
    ImportError
        If AALpy is not installed.
    TypeError
        If ``automaton`` is not a MooreMachine, Dfa or MealyMachine.
    ValueError
        If inputs collide once written as strings, or ``empty_output`` is one of the Mealy
        machine's outputs.
    """
    automata = _require("aalpy.automata", "AALpy")
    states = list(automaton.states)
    keys = sorted({key for state in states for key in state.transitions}, key=str)
    if len({str(key) for key in keys}) != len(keys):
        raise ValueError("AALpy inputs collide once written as strings")
    if isinstance(automaton, automata.MealyMachine):
        return _mealy_as_moore(automaton, keys, empty_output)
    next_of = {state: {key: target for key, target in state.transitions.items()} for state in states}
    meta = {"aalpy_state_ids": [str(state.state_id) for state in states]}
    if isinstance(automaton, automata.Dfa):
        labels = [accept if state.is_accepting else reject for state in states]
        outputs: tuple[str, ...] = (reject, accept)
    elif isinstance(automaton, automata.MooreMachine):
        labels = [None if state.output is None else str(state.output) for state in states]
        outputs = tuple(sorted({label for label in labels if label is not None}))
    else:
        raise TypeError(
            f"expected an AALpy MooreMachine, Dfa or MealyMachine, got {type(automaton).__name__}")
    return _from_table(keys, states, automaton.initial_state, next_of, labels, outputs, meta)


_MEALY_START = object()  # the start pair's "entry output": no transition yet; equals no output


def _mealy_successors(pair: tuple[Any, Any], keys: Sequence[Hashable]) -> dict[Hashable, tuple[Any, Any]]:
    """The pairs (Mealy state, entry output) one input after ``pair``; missing inputs are left out."""
    state = pair[0]
    successors = {}
    for key in keys:
        if key in state.transitions:
            output = state.output_fun.get(key)
            successors[key] = (state.transitions[key], None if output is None else str(output))
    return successors


def _mealy_as_moore(automaton: Any, keys: Sequence[Hashable], empty_output: str | None) -> Machine:
    """An AALpy MealyMachine as a Moore Machine over (state, entry output) pairs, BFS order from the start."""
    start = (automaton.initial_state, _MEALY_START)
    order, seen, next_of = [start], {start}, {}
    for pair in order:  # grows while iterating: breadth-first
        next_of[pair] = _mealy_successors(pair, keys)
        fresh = [p for p in next_of[pair].values() if p not in seen]
        order.extend(dict.fromkeys(fresh))  # first occurrences, in input order
        seen.update(fresh)
    mealy_outputs = {output for _, output in order[1:] if output is not None}
    if empty_output in mealy_outputs:
        raise ValueError(f"empty_output {empty_output!r} is also a Mealy output; pick another label")
    labels = [empty_output] + [output for _, output in order[1:]]
    outputs = tuple(sorted(mealy_outputs | ({empty_output} if empty_output is not None else set())))
    meta = {"aalpy_state_ids": [str(state.state_id) for state, _ in order],
            "aalpy_mealy_entry_outputs": [None] + [output for _, output in order[1:]]}
    return _from_table(keys, order, start, next_of, labels, outputs, meta)


# --------------------------------------------------------------------- automata-lib
def to_automata_lib_dfa(machine: Machine, accept: str = "accept", reject: str = "reject") -> Any:
    """Convert an acceptor machine to an automata-lib ``automata.fa.dfa.DFA``.

    Parameters
    ----------
    machine : Machine
        Every state's output must be ``accept`` or ``reject``.
    accept, reject : str
        The output labels meaning accepting and rejecting.

    Returns
    -------
    automata.fa.dfa.DFA
        States ``s<i>``; ``allow_partial=True`` when the machine has open transitions.

    Raises
    ------
    ImportError
        If automata-lib is not installed.
    ValueError
        If a state's output is unknown or another label.
    """
    dfa_module = _require("automata.fa.dfa", "automata-lib")
    accepting = _acceptance(machine, accept, reject)
    transitions = {
        _state_name(i): {machine.alphabet[k]: _state_name(t) for k, t in enumerate(row) if t >= 0}
        for i, row in enumerate(machine.transitions.tolist())
    }
    return dfa_module.DFA(
        states=set(transitions),
        input_symbols=set(machine.alphabet),
        transitions=transitions,
        initial_state=_state_name(machine.start),
        final_states={_state_name(i) for i in np.flatnonzero(accepting).tolist()},
        allow_partial=bool((machine.transitions < 0).any()),
    )


def from_automata_lib_dfa(dfa: Any, accept: str = "accept", reject: str = "reject") -> Machine:
    """Convert an automata-lib ``DFA`` to a Machine with outputs ``(reject, accept)``.

    Parameters
    ----------
    dfa : automata.fa.dfa.DFA
    accept, reject : str
        Output labels given to final / non-final states.

    Returns
    -------
    Machine
        States sorted by their names as strings (start wherever it falls); alphabet = the input
        symbols, sorted. ``meta["automata_lib_states"]`` keeps the original names.

    Raises
    ------
    ImportError
        If automata-lib is not installed.
    """
    _require("automata.fa.dfa", "automata-lib")
    states = sorted(dfa.states, key=str)
    keys = sorted(dfa.input_symbols, key=str)
    next_of = {state: dict(dfa.transitions.get(state, {})) for state in states}
    labels = [accept if state in dfa.final_states else reject for state in states]
    meta = {"automata_lib_states": [str(state) for state in states]}
    return _from_table(keys, states, dfa.initial_state, next_of, labels, (reject, accept), meta)
