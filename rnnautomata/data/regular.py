"""Regular-language tasks: each is a ground-truth Moore machine plus how to sample from it.

A task's target after a prefix is the output of its machine's state after that prefix, so every
task here knows its alphabet, its targets, and the minimal machine a network should converge to.

Example (streaming parity)::

    input   1 0 1 1
    output  1 1 0 1      (parity of the bits so far)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnautomata.automata import Machine
from rnnautomata.errors import TaskError

__all__ = [
    "RegularTask",
    "streaming_parity",
    "mod_k_counting",
    "machine_task",
    "all_strings",
    "ACCEPTOR_OUTPUTS",
    "acceptor",
    "tomita",
    "TOMITA_DESCRIPTIONS",
    "bounded_dyck1",
    "first_symbol",
    "random_machine",
    "random_task",
]

#: Output labels of an acceptor: the output after every prefix says whether that prefix is accepted.
ACCEPTOR_OUTPUTS = ("reject", "accept")


@dataclass(frozen=True, eq=False)
class RegularTask:
    """A sequence task whose targets are the outputs of a deterministic Moore machine.

    Attributes
    ----------
    name : registry name.
    machine : the ground-truth machine (minimal).
    description : one line for `rnnautomata tasks`.
    """

    name: str
    machine: Machine
    description: str = ""

    @property
    def alphabet(self) -> tuple[str, ...]:
        return tuple(self.machine.alphabet)

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(self.machine.outputs)

    @property
    def n_symbols(self) -> int:
        return len(self.machine.alphabet)

    @property
    def n_outputs(self) -> int:
        return len(self.machine.outputs)

    def targets(self, symbols: np.ndarray) -> np.ndarray:
        """Target output id after every symbol: (B, T) -> (B, T)."""
        return self.machine.output_sequence(np.asarray(symbols, dtype=np.int64))

    def sample(self, rng: np.random.Generator, n: int, length: int) -> np.ndarray:
        """``n`` uniformly random strings of ``length`` symbols: (n, length) int64."""
        return rng.integers(0, self.n_symbols, size=(n, length), dtype=np.int64)


def all_strings(n_symbols: int, length: int) -> np.ndarray:
    """Every string of ``length`` symbols in lexicographic order: (n_symbols**length, length)."""
    if length == 0:
        return np.zeros((1, 0), dtype=np.int64)
    n = n_symbols**length
    idx = np.arange(n, dtype=np.int64)[:, None]  # (n, 1)
    powers = n_symbols ** np.arange(length - 1, -1, -1, dtype=np.int64)  # (length,)
    return (idx // powers) % n_symbols  # (n, length)


def streaming_parity() -> RegularTask:
    """Parity of the 1s read so far (the 2-state machine of van Rossem & Saxe, 2025).

    Example: input 1 0 1 1 -> output 1 1 0 1.
    """
    m = Machine(
        alphabet=("0", "1"),
        outputs=("0", "1"),
        transitions=np.array([[0, 1], [1, 0]], dtype=np.int64),
        output_of_state=np.array([0, 1], dtype=np.int64),
        start=0,
        meta={"task": "streaming_parity"},
    )
    return RegularTask("streaming_parity", m, "parity of the 1s so far (2 states)")


def mod_k_counting(k: int | None = None) -> RegularTask:
    """Number of 1s read so far, modulo ``k`` (default 3).

    Example (k=3): input 1 1 0 1 1 -> output 1 2 2 0 1.
    """
    k = 3 if k is None else int(k)
    if k < 2:
        raise TaskError(f"mod_k_counting needs k >= 2 (got {k}); set task.k")
    states = np.arange(k, dtype=np.int64)
    transitions = np.stack([states, (states + 1) % k], axis=1)  # (k, 2)
    m = Machine(
        alphabet=("0", "1"),
        outputs=tuple(str(i) for i in range(k)),
        transitions=transitions,
        output_of_state=states.copy(),
        start=0,
        meta={"task": f"mod_{k}_counting"},
    )
    return RegularTask("mod_k_counting", m, f"number of 1s so far mod k ({k} states)")


def machine_task(path: str | None = None) -> RegularTask:
    """Any user machine, read from a machine JSON (docs/formats.md) or DOT file, minimised."""
    if not path:
        raise TaskError("task 'machine' needs task.path = a machine .json or .dot file")
    p = Path(path)
    if not p.is_file():
        raise TaskError(f"machine file {p} not found (task.path)")
    try:
        if p.suffix == ".dot":
            m = Machine.from_dot(p.read_text(encoding="utf-8"))
        else:
            m = Machine.load(p)
    except (ValueError, KeyError, TypeError) as err:
        raise TaskError(f"cannot read machine {p}: {err}") from None
    if not m.is_complete():
        raise TaskError(f"machine {p} has undefined transitions; a task machine must be complete")
    return RegularTask(f"machine:{p.name}", m.minimize(), f"user machine from {p.name}")


def acceptor(name: str, alphabet, transitions, accepting, description: str, start: int = 0) -> RegularTask:
    """A task from a DFA table: outputs ``("reject", "accept")`` after every prefix, minimised.

    Parameters
    ----------
    transitions : (n_states, n_symbols) array_like of int, a complete table.
    accepting : (n_states,) array_like of bool.
    """
    m = Machine(
        alphabet=tuple(alphabet),
        outputs=ACCEPTOR_OUTPUTS,
        transitions=np.asarray(transitions, dtype=np.int64),
        output_of_state=np.asarray(accepting, dtype=np.int64),
        start=start,
        meta={"task": name},
    )
    return RegularTask(name, m.minimize(), description)


# Tomita (1982) grammars over {0, 1}, as defined in e.g. Weiss, Goldberg & Yahav (2018).
# Each table row is a state; columns are the symbols 0 and 1; state 0 is the start.
_TOMITA = {
    # 1*: accept while only 1s were read.     states: all-ones, dead
    1: ([[1, 0], [1, 1]], [1, 0]),
    # (10)*: states: even (complete pairs), after a 1, dead
    2: ([[2, 1], [0, 2], [2, 2]], [1, 0, 0]),
    # no odd-length run of 1s followed, anywhere later, by an odd-length run of 0s (runs are
    # maximal; the trailing run counts). states: clean (no odd 1-run yet; or an even 1-run),
    # in an odd 1-run, an odd 1-run seen + in an odd 0-run, an odd 1-run seen + not in an odd
    # 0-run, dead (an odd 0-run ended after an odd 1-run)
    3: ([[0, 1], [2, 0], [3, 4], [2, 3], [4, 4]], [1, 1, 0, 1, 0]),
    # no three consecutive 0s. states: trailing zeros 0, 1, 2, dead
    4: ([[1, 0], [2, 0], [3, 0], [3, 3]], [1, 1, 1, 0]),
    # even number of 0s and even number of 1s. state = 2 * (#0 mod 2) + (#1 mod 2)
    5: ([[2, 1], [3, 0], [0, 3], [1, 2]], [1, 0, 0, 0]),
    # (#0 - #1) = 0 mod 3. state = (#0 - #1) mod 3
    6: ([[1, 2], [2, 0], [0, 1]], [1, 0, 0]),
    # 0*1*0*1*. states: in 0*, in 0*1*, in 0*1*0*, in 0*1*0*1*, dead
    7: ([[0, 1], [2, 1], [2, 3], [4, 3], [4, 4]], [1, 1, 1, 1, 0]),
}

#: index -> (definition, number of states of the minimal machine)
TOMITA_DESCRIPTIONS = {
    1: ("1*", 2),
    2: ("(10)*", 3),
    3: ("no odd run of 1s followed (anywhere later) by an odd run of 0s", 5),
    4: ("no 000 substring", 4),
    5: ("even number of 0s and even number of 1s", 4),
    6: ("(#0 - #1) = 0 mod 3", 3),
    7: ("0*1*0*1*", 5),
}


def tomita(index: int) -> RegularTask:
    """Tomita grammar ``index`` (1-7) as an acceptor over {0, 1}; target = accepted so far.

    Example (Tomita 4, no 000):  input 1 0 0 0 1  ->  output accept accept accept reject reject
    """
    if index not in _TOMITA:
        raise TaskError(f"Tomita grammars are numbered 1..7 (got {index})")
    table, accepting = _TOMITA[index]
    definition, n = TOMITA_DESCRIPTIONS[index]
    return acceptor(f"tomita{index}", ("0", "1"), table, accepting, f"Tomita {index}: {definition} ({n} states)")


def bounded_dyck1(depth: int) -> RegularTask:
    """Balanced brackets ``(`` ``)`` whose nesting never exceeds ``depth``; accept when balanced.

    A prefix that closes an unopened bracket or nests deeper than ``depth`` goes to a dead state.
    Minimal machine: depths 0..depth plus dead = depth + 2 states.

    Example (depth 2):  input ( ( ) ) ( ( (  ->  output reject reject reject accept reject reject reject
    (the last prefix nests 3 deep: dead, rejected forever).
    """
    if depth < 1:
        raise TaskError(f"bounded Dyck-1 needs depth >= 1 (got {depth})")
    dead = depth + 1
    table = [[d + 1 if d < depth else dead, d - 1 if d > 0 else dead] for d in range(depth + 1)]
    table.append([dead, dead])
    accepting = [1] + [0] * depth + [0]
    return acceptor(f"dyck1_depth{depth}", ("(", ")"), table, accepting,
                    f"balanced brackets, nesting <= {depth} ({depth + 2} states)")


def first_symbol() -> RegularTask:
    """Accept when the string's first symbol is 1 (a one-bit memory held for the whole string).

    Example:  input 1 0 0 1  ->  output accept accept accept accept;  input 0 1 1  ->  reject x3.
    """
    # states: start, first was 0, first was 1
    return acceptor("first_symbol", ("0", "1"), [[1, 2], [1, 1], [2, 2]], [0, 0, 1],
                    "accept iff the first symbol is 1 (3 states)")


def random_machine(
    n_states: int,
    n_symbols: int,
    n_outputs: int,
    rng: np.random.Generator,
    max_tries: int = 1000,
) -> Machine:
    """A random minimal Moore machine with exactly ``n_states`` states (all reachable).

    Draws uniform transition tables and outputs (every output used) until the minimised,
    reachable machine keeps all ``n_states`` states. With ``n_outputs = 2`` the outputs are
    ``("reject", "accept")``, i.e. a random DFA; otherwise ``("0", "1", ...)``.

    Raises
    ------
    TaskError : if the sizes are impossible or no draw was minimal within ``max_tries``.
    """
    if n_states < 1 or n_symbols < 1 or n_outputs < 1 or n_outputs > n_states:
        raise TaskError(
            f"random machine needs 1 <= n_outputs <= n_states and n_symbols >= 1 "
            f"(got n_states={n_states}, n_symbols={n_symbols}, n_outputs={n_outputs})"
        )
    outputs = ACCEPTOR_OUTPUTS if n_outputs == 2 else tuple(str(i) for i in range(n_outputs))
    alphabet = tuple(str(i) for i in range(n_symbols)) if n_symbols <= 10 else tuple(f"a{i}" for i in range(n_symbols))
    for _ in range(max_tries):
        transitions = rng.integers(0, n_states, size=(n_states, n_symbols), dtype=np.int64)  # (N, K)
        out = np.concatenate([np.arange(n_outputs), rng.integers(0, n_outputs, n_states - n_outputs)])
        out = rng.permutation(out)  # (N,) every output used at least once
        m = Machine(alphabet, outputs, transitions, out, 0, {"task": "random"}).minimize()
        if m.n_states == n_states:
            return m
    raise TaskError(f"no minimal {n_states}-state machine found in {max_tries} random draws")


def random_task(n_states: int, n_symbols: int, n_outputs: int, seed: int) -> RegularTask:
    """A seeded random minimal machine as a task (see :func:`random_machine`)."""
    m = random_machine(n_states, n_symbols, n_outputs, np.random.default_rng(seed))
    name = f"random_n{n_states}_k{n_symbols}_o{n_outputs}_s{seed}"
    kind = "DFA" if n_outputs == 2 else "Moore machine"
    return RegularTask(name, m.replace(meta={"task": name}),
                       f"random minimal {kind}: {n_states} states, {n_symbols} symbols, seed {seed}")

