"""Deterministic Moore machines on numpy arrays.

A :class:`Machine` reads strings over ``alphabet`` and, after every prefix, emits the output of
the state it has reached. Transitions may be *open* (``-1``: not known, e.g. beyond the depth an
extraction probed) and a state's output may be *unknown* (``-1``).

Semantics of partial machines, used consistently by :meth:`Machine.run`, :meth:`Machine.minimize`
and :meth:`Machine.equivalent`: an open transition leads to an implicit *sink* that loops on every
symbol and whose observation ("fell off the machine") differs from every output, including the
unknown output. A state whose output is unknown observes "unknown", its own value. So two partial
machines are equivalent exactly when every string either falls off in both or reaches states with
the same output id (``-1`` included) in both.

Example
-------
>>> parity = Machine.from_function(("0", "1"), ("even", "odd"), 2,
...                                delta=lambda q, a: q ^ a, out=lambda q: q)
>>> parity.output_sequence(np.array([[1, 0, 1, 1]])).tolist()
[[1, 1, 0, 1]]
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from rnnautomata.errors import RnnAutomataError

__all__ = ["Machine", "MachineError", "MACHINE_FORMAT", "dot_quote"]

#: The ``format`` string of the machine JSON written by :meth:`Machine.to_json`.
MACHINE_FORMAT = "rnnautomata.machine/1"


class MachineError(RnnAutomataError, ValueError):
    """An inconsistent machine, or a malformed machine JSON/DOT text; the message is one line."""


_FELL_OFF = -2  # observation of the implicit sink (distinct from every output and from -1)


def _frozen_int_array(values: Any, name: str, ndim: int) -> np.ndarray:
    """Copy ``values`` into a read-only int64 array of ``ndim`` dimensions."""
    try:
        array = np.array(values)
    except (TypeError, ValueError) as error:
        raise MachineError(f"Machine.{name} must be an integer array: {error}") from None
    if array.size == 0 and array.ndim == ndim:
        array = array.astype(np.int64)
    if array.ndim != ndim:
        raise MachineError(f"Machine.{name} must have {ndim} dimension(s), got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise MachineError(f"Machine.{name} must hold integers, got dtype {array.dtype}")
    array = array.astype(np.int64, copy=True)
    array.setflags(write=False)
    return array


def _label_tuple(values: Any, name: str) -> tuple[str, ...]:
    """Check ``values`` is a sequence of distinct strings and return it as a tuple."""
    if isinstance(values, str):
        raise MachineError(f"Machine.{name} must be a sequence of strings, not one string {values!r}")
    labels = tuple(values)
    for label in labels:
        if not isinstance(label, str):
            raise MachineError(f"Machine.{name} must hold strings, got {label!r} ({type(label).__name__})")
    if len(set(labels)) != len(labels):
        raise MachineError(f"Machine.{name} has repeated labels: {list(labels)}")
    return labels


def _dense_rank(keys: np.ndarray) -> tuple[np.ndarray, int]:
    """Map each entry of a 1-D array to the rank of its value among the distinct values."""
    uniques, inverse = np.unique(keys, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64), int(uniques.size)


def _refine(blocks: np.ndarray, n_blocks: int, successors: np.ndarray) -> tuple[np.ndarray, int]:
    """One Moore refinement round: split blocks by the blocks of their successors.

    Parameters
    ----------
    blocks : np.ndarray
        (N,) current block id of each state, in ``[0, n_blocks)``.
    n_blocks : int
        Number of distinct blocks.
    successors : np.ndarray
        (N, K) successor state of each state under each symbol (no -1).

    Returns
    -------
    tuple of np.ndarray and int
        (N,) new block ids (a refinement of ``blocks``) and their number.
    """
    key = blocks.copy()  # (N,) fold the row (block, block[succ_0], ...) into one int64 key
    key_bound = n_blocks
    limit = np.iinfo(np.int64).max // max(n_blocks, 1) - 1
    for symbol in range(successors.shape[1]):
        if key_bound > limit:  # keep key * n_blocks + b below 2**63 by re-ranking first
            key, key_bound = _dense_rank(key)
        key = key * n_blocks + blocks[successors[:, symbol]]
        key_bound = key_bound * n_blocks
    return _dense_rank(key)


@dataclass(frozen=True, eq=False)
class Machine:
    """A deterministic Moore machine; outputs belong to states.

    Parameters
    ----------
    alphabet : tuple of str
        Input symbols; symbol id = index.
    outputs : tuple of str
        Output labels; output id = index.
    transitions : np.ndarray
        (n_states, n_symbols) int64 next state; -1 = open (unknown) transition.
    output_of_state : np.ndarray
        (n_states,) int64 output id of each state; -1 = unknown.
    start : int
        The start state; its output is the output of the empty string.
    meta : Mapping
        Free-form JSON-serialisable information (stored read-only).

    Raises
    ------
    MachineError (a ValueError)
        If a shape, id or label is inconsistent; the message names the field.
    """

    alphabet: tuple[str, ...]
    outputs: tuple[str, ...]
    transitions: np.ndarray
    output_of_state: np.ndarray
    start: int = 0
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        alphabet = _label_tuple(self.alphabet, "alphabet")
        outputs = _label_tuple(self.outputs, "outputs")
        transitions = _frozen_int_array(self.transitions, "transitions", 2)  # (N, K)
        output_of_state = _frozen_int_array(self.output_of_state, "output_of_state", 1)  # (N,)
        n_states = transitions.shape[0]
        if n_states == 0:
            raise MachineError("Machine must have at least one state (transitions has 0 rows)")
        if transitions.shape[1] != len(alphabet):
            raise MachineError(
                f"Machine.transitions has {transitions.shape[1]} columns but the alphabet has "
                f"{len(alphabet)} symbols"
            )
        if output_of_state.shape != (n_states,):
            raise MachineError(
                f"Machine.output_of_state has shape {output_of_state.shape}, expected ({n_states},)"
            )
        if transitions.size and (transitions.min() < -1 or transitions.max() >= n_states):
            raise MachineError(f"Machine.transitions must lie in [-1, {n_states}) (-1 = open)")
        if output_of_state.min() < -1 or output_of_state.max() >= len(outputs):
            raise MachineError(
                f"Machine.output_of_state must lie in [-1, {len(outputs)}) (-1 = unknown)"
            )
        if isinstance(self.start, bool) or not isinstance(self.start, (int, np.integer)):
            raise MachineError(f"Machine.start must be an int, got {self.start!r}")
        if not 0 <= int(self.start) < n_states:
            raise MachineError(f"Machine.start = {self.start} is not a state id in [0, {n_states})")
        if not isinstance(self.meta, Mapping):
            raise MachineError(f"Machine.meta must be a mapping, got {type(self.meta).__name__}")
        object.__setattr__(self, "alphabet", alphabet)
        object.__setattr__(self, "outputs", outputs)
        object.__setattr__(self, "transitions", transitions)
        object.__setattr__(self, "output_of_state", output_of_state)
        object.__setattr__(self, "start", int(self.start))
        object.__setattr__(self, "meta", types.MappingProxyType(dict(self.meta)))

    def __repr__(self) -> str:
        return (
            f"Machine(n_states={self.n_states}, alphabet={self.alphabet}, outputs={self.outputs}, "
            f"complete={self.is_complete()})"
        )

    # ------------------------------------------------------------------ basics
    @property
    def n_states(self) -> int:
        """Number of states (rows of ``transitions``)."""
        return int(self.transitions.shape[0])

    @property
    def n_symbols(self) -> int:
        """Number of input symbols."""
        return len(self.alphabet)

    @classmethod
    def from_function(
        cls,
        alphabet: Sequence[str],
        outputs: Sequence[str],
        n_states: int,
        delta: Callable[[int, int], int | None],
        out: Callable[[int], int | None],
        start: int = 0,
        meta: Mapping[str, Any] | None = None,
    ) -> Machine:
        """Build a machine from a transition function and an output function.

        Parameters
        ----------
        alphabet, outputs : sequence of str
            Input symbols and output labels.
        n_states : int
            Number of states, ids ``0 .. n_states - 1``.
        delta : callable
            ``delta(state_id, symbol_id)`` -> next state id, or None for an open transition.
        out : callable
            ``out(state_id)`` -> output id, or None for unknown.
        start : int
            Start state id.
        meta : mapping, optional
            Stored in :attr:`meta`.

        Returns
        -------
        Machine
        """
        n_symbols = len(alphabet)
        transitions = np.full((n_states, n_symbols), -1, dtype=np.int64)  # (N, K)
        output_of_state = np.full(n_states, -1, dtype=np.int64)  # (N,)
        for state in range(n_states):
            for symbol in range(n_symbols):
                target = delta(state, symbol)
                transitions[state, symbol] = -1 if target is None else target
            label = out(state)
            output_of_state[state] = -1 if label is None else label
        return cls(tuple(alphabet), tuple(outputs), transitions, output_of_state, start, meta or {})

    def replace(self, **changes: Any) -> Machine:
        """Return a copy with some fields changed (validated again)."""
        fields = {
            "alphabet": self.alphabet,
            "outputs": self.outputs,
            "transitions": self.transitions,
            "output_of_state": self.output_of_state,
            "start": self.start,
            "meta": self.meta,
        }
        fields.update(changes)
        return Machine(**fields)

    def encode(self, string: Sequence[str]) -> list[int]:
        """Symbol labels -> symbol ids.

        Raises
        ------
        MachineError (a ValueError)
            If a label is not in the alphabet.
        """
        index = {symbol: i for i, symbol in enumerate(self.alphabet)}
        try:
            return [index[symbol] for symbol in string]
        except KeyError as error:
            raise MachineError(f"symbol {error.args[0]!r} is not in the alphabet {self.alphabet}") from None

    def is_complete(self) -> bool:
        """True when no state reachable from the start has an open transition."""
        return bool((self.transitions[self._reachable_order()] >= 0).all())

    def _check_symbols(self, symbols: np.ndarray) -> None:
        if symbols.size and not np.issubdtype(symbols.dtype, np.integer):
            raise MachineError(f"symbols must be integer ids, got dtype {symbols.dtype}")
        if symbols.size and (symbols.min() < 0 or symbols.max() >= self.n_symbols):
            raise MachineError(f"symbol ids must lie in [0, {self.n_symbols})")

    def step(self, states: Any, symbols: Any) -> np.ndarray:
        """Next states, elementwise (broadcast); -1 in or open transition -> -1.

        Parameters
        ----------
        states : array_like of int
            State ids (-1 allowed: already fell off).
        symbols : array_like of int
            Symbol ids, broadcastable against ``states``.

        Returns
        -------
        np.ndarray
            int64 next states, of the broadcast shape.
        """
        states = np.asarray(states)
        symbols = np.asarray(symbols)
        self._check_symbols(symbols)
        if states.size and (states.min() < -1 or states.max() >= self.n_states):
            raise MachineError(f"state ids must lie in [-1, {self.n_states})")
        # an extra all -1 row makes index -1 (fell off) map to -1 again
        padded = np.vstack([self.transitions, np.full((1, self.n_symbols), -1, np.int64)])
        return padded[states, symbols]

    def run(self, symbols: Any) -> np.ndarray:
        """States after each symbol of a batch of strings.

        Parameters
        ----------
        symbols : array_like of int
            (B, T) symbol ids.

        Returns
        -------
        np.ndarray
            (B, T) int64 state reached after each prefix; -1 once the string fell off an open
            transition.

        Raises
        ------
        MachineError (a ValueError)
            If ``symbols`` is not 2-D or holds ids outside the alphabet.
        """
        symbols = np.asarray(symbols)
        if symbols.ndim != 2:
            raise MachineError(f"symbols must have shape (B, T), got {symbols.shape}")
        self._check_symbols(symbols)
        padded = np.vstack([self.transitions, np.full((1, self.n_symbols), -1, np.int64)])
        batch_size, seq_len = symbols.shape
        states = np.empty((batch_size, seq_len), dtype=np.int64)  # (B, T)
        current = np.full(batch_size, self.start, dtype=np.int64)  # (B,)
        for t in range(seq_len):
            current = padded[current, symbols[:, t]]  # (B,)
            states[:, t] = current
        return states

    def output_sequence(self, symbols: Any) -> np.ndarray:
        """Output ids after each symbol of a batch of strings.

        Parameters
        ----------
        symbols : array_like of int
            (B, T) symbol ids.

        Returns
        -------
        np.ndarray
            (B, T) int64 output ids; -1 where unknown (unknown state output, or fell off).
        """
        states = self.run(symbols)  # (B, T)
        padded = np.append(self.output_of_state, -1)  # (N + 1,) index -1 -> unknown
        return padded[states]

    def _symbol_ids(self, string: str | Sequence[int] | Sequence[str]) -> np.ndarray:
        """One string as (T,) int64 symbol ids: a ``str`` or a sequence of ``str`` is read as labels.

        Raises
        ------
        MachineError (a ValueError)
            If a ``str`` is given while some label is longer than one character, a label is not
            in the alphabet, or an id is out of range.
        """
        if isinstance(string, str):
            if any(len(label) != 1 for label in self.alphabet):
                raise MachineError(
                    f"a str is read one character per label, but the alphabet {self.alphabet} has "
                    f"labels longer than one character; pass a list of labels or ids"
                )
            return np.asarray(self.encode(string), dtype=np.int64)
        items = list(string)
        if items and all(isinstance(item, str) for item in items):
            return np.asarray(self.encode(items), dtype=np.int64)
        symbols = np.asarray(items)
        if not symbols.size:
            return symbols.astype(np.int64)
        self._check_symbols(symbols)
        return symbols.astype(np.int64)

    def output_of(self, string: str | Sequence[int] | Sequence[str]) -> int:
        """Output id after reading one string (-1 = unknown or fell off).

        Parameters
        ----------
        string : str, sequence of str, or sequence of int
            A ``str`` is a sequence of symbol *labels*, one character each (so with alphabet
            ``("1", "0")`` the string ``"10"`` is ids ``[0, 1]``); a sequence of ``str`` is a
            sequence of labels; a sequence of ``int`` is a sequence of symbol ids.

        Raises
        ------
        MachineError (a ValueError)
            If a label is unknown, an id is out of range, or a ``str`` is given for an alphabet
            with multi-character labels.

        Examples
        --------
        >>> m = Machine(("1", "0"), ("even", "odd"), [[1, 0], [0, 1]], [0, 1])  # parity of "1"s
        >>> m.outputs[m.output_of("110")], m.outputs[m.output_of([0, 1])]
        ('even', 'odd')
        """
        state = self.start
        symbols = self._symbol_ids(string)
        for symbol in symbols:
            state = int(self.transitions[state, symbol])
            if state < 0:
                return -1
        return int(self.output_of_state[state])

    # --------------------------------------------------------- reachability
    def _reachable_order(self) -> np.ndarray:
        """States reachable from start in BFS order (symbols in id order); (R,) int64."""
        visited = np.zeros(self.n_states, dtype=bool)
        visited[self.start] = True
        frontier = np.array([self.start], dtype=np.int64)
        levels = [frontier]
        while frontier.size:
            candidates = self.transitions[frontier].reshape(-1)  # (F * K,) parent-major order
            candidates = candidates[candidates >= 0]
            candidates = candidates[~visited[candidates]]
            _, first = np.unique(candidates, return_index=True)
            frontier = candidates[np.sort(first)]  # first occurrences, in discovery order
            visited[frontier] = True
            levels.append(frontier)
        return np.concatenate(levels)

    def reachable(self) -> Machine:
        """The machine restricted to states reachable from start.

        Returns
        -------
        Machine
            States renumbered in BFS order from start (start = 0, symbols tried in id order).
        """
        order = self._reachable_order()  # (R,) old ids in new order
        new_id = np.full(self.n_states + 1, -1, dtype=np.int64)  # index -1 (open) stays -1
        new_id[order] = np.arange(order.size)
        transitions = new_id[self.transitions[order]]  # (R, K)
        return Machine(self.alphabet, self.outputs, transitions, self.output_of_state[order], 0,
                       self.meta)

    # ----------------------------------------------------------- minimization
    def minimize(self) -> Machine:
        """The minimal machine with the same observations, in canonical numbering.

        Moore partition refinement, vectorised: each round ranks the rows
        ``(block, block of successor under each symbol)`` with ``np.unique``; it stops when the
        number of blocks stops growing. Cost O(rounds x N log N); rounds <= N.

        Open transitions go to an implicit sink whose observation differs from every output;
        unknown outputs (-1) form their own output class. The sink is not part of the result:
        transitions that led to it are -1 again.

        Returns
        -------
        Machine
            Reachable, minimal, states numbered in BFS order from start = 0. Two equivalent
            machines with the same alphabet and outputs minimize to identical arrays.
        """
        machine = self.reachable()
        n_states = machine.n_states
        sink = n_states
        successors = np.vstack(  # (N + 1, K) with the sink looping on itself
            [machine.transitions, np.full((1, machine.n_symbols), sink, np.int64)]
        )
        successors[successors < 0] = sink
        observation = np.append(machine.output_of_state, _FELL_OFF)  # (N + 1,)
        blocks, n_blocks = _dense_rank(observation)  # (N + 1,)
        while True:
            new_blocks, n_new = _refine(blocks, n_blocks, successors)
            blocks, stable = new_blocks, n_new == n_blocks
            n_blocks = n_new
            if stable:
                break
        block_ids, representative = np.unique(blocks, return_index=True)  # (n_blocks,)
        sink_block = blocks[sink]
        quotient = blocks[successors[representative]]  # (n_blocks, K)
        quotient[quotient == sink_block] = -1
        quotient[quotient > sink_block] -= 1
        keep = block_ids != sink_block
        start = int(blocks[0]) - int(blocks[0] > sink_block)
        minimal = Machine(machine.alphabet, machine.outputs, quotient[keep],
                          observation[representative][keep], start, self.meta)
        return minimal.reachable()

    # ------------------------------------------------------------ equivalence
    def equivalent(self, other: Machine) -> tuple[bool, list[int] | None]:
        """Whether two machines make the same observation on every string.

        BFS over the product machine from (start, start). An observation is the output id of the
        state reached, -1 when unknown, or "fell off" when the string left an open transition
        (see the module docstring).

        Parameters
        ----------
        other : Machine
            A machine over the same alphabet (same labels in the same order).

        Returns
        -------
        tuple of bool and (list of int or None)
            ``(True, None)`` or ``(False, counterexample)``: the shortest string of symbol ids,
            lexicographically first among the shortest, on which the observations differ.
            Output ids are compared through their labels, so the two ``outputs`` tuples may
            differ in order.

        Raises
        ------
        MachineError (a ValueError)
            If the alphabets differ.
        """
        if self.alphabet != other.alphabet:
            raise MachineError(
                f"cannot compare machines over different alphabets {self.alphabet} and {other.alphabet}"
            )
        label_ids: dict[str, int] = {label: i for i, label in enumerate(self.outputs)}
        for label in other.outputs:
            label_ids.setdefault(label, len(label_ids))
        other_map = np.array([label_ids[label] for label in other.outputs] + [-1], dtype=np.int64)
        observe_a = np.append(self.output_of_state, _FELL_OFF)  # (Na + 1,) sink last
        observe_b = np.append(other_map[other.output_of_state], _FELL_OFF)  # (Nb + 1,)
        succ_a = np.vstack([self.transitions, np.full((1, self.n_symbols), -1, np.int64)])
        succ_a[succ_a < 0] = self.n_states  # (Na + 1, K)
        succ_b = np.vstack([other.transitions, np.full((1, other.n_symbols), -1, np.int64)])
        succ_b[succ_b < 0] = other.n_states  # (Nb + 1, K)
        width = other.n_states + 1
        n_pairs = (self.n_states + 1) * width
        visited_array = np.zeros(n_pairs, dtype=bool) if n_pairs <= 50_000_000 else None
        visited_set: set[int] = set()

        frontier_a = np.array([self.start], np.int64)  # (F,)
        frontier_b = np.array([other.start], np.int64)  # (F,)
        if visited_array is not None:
            visited_array[self.start * width + other.start] = True
        else:
            visited_set.add(self.start * width + other.start)
        parents: list[np.ndarray] = []  # per level: (F,) index into the previous level
        symbols: list[np.ndarray] = []  # per level: (F,) symbol read to get there
        n_symbols = self.n_symbols
        while frontier_a.size:
            differs = np.flatnonzero(observe_a[frontier_a] != observe_b[frontier_b])
            if differs.size:
                index = int(differs[0])
                string: list[int] = []
                for level in range(len(parents) - 1, -1, -1):
                    string.append(int(symbols[level][index]))
                    index = int(parents[level][index])
                return False, string[::-1]
            next_a = succ_a[frontier_a].reshape(-1)  # (F * K,) parent-major, symbols in order
            next_b = succ_b[frontier_b].reshape(-1)
            codes = next_a * width + next_b
            if visited_array is not None:
                fresh = np.flatnonzero(~visited_array[codes])
            else:
                fresh = np.array([i for i, c in enumerate(codes.tolist()) if c not in visited_set],
                                 dtype=np.int64)
            _, first = np.unique(codes[fresh], return_index=True)
            chosen = fresh[np.sort(first)]  # first discovery of each new pair, in BFS order
            if visited_array is not None:
                visited_array[codes[chosen]] = True
            else:
                visited_set.update(codes[chosen].tolist())
            parents.append(chosen // n_symbols)
            symbols.append(chosen % n_symbols)
            frontier_a, frontier_b = next_a[chosen], next_b[chosen]
        return True, None

    def isomorphic(self, other: Machine) -> bool:
        """Whether the two machines are the same graph up to renaming states.

        Compares labels (outputs, symbols) and the start state, via networkx isomorphism.
        """
        from networkx.algorithms.isomorphism import categorical_multiedge_match

        if self.n_states != other.n_states:
            return False

        def node_match(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
            return a["output"] == b["output"] and a["start"] == b["start"]

        return nx.is_isomorphic(
            self.to_networkx(), other.to_networkx(), node_match=node_match,
            edge_match=categorical_multiedge_match("symbol", None),
        )

    # ------------------------------------------------------------------- JSON
    def to_json(self) -> dict[str, Any]:
        """The machine as a JSON-ready dict (format ``rnnautomata.machine/1``)."""
        return {
            "format": MACHINE_FORMAT,
            "alphabet": list(self.alphabet),
            "outputs": list(self.outputs),
            "start": self.start,
            "transitions": self.transitions.tolist(),
            "output_of_state": self.output_of_state.tolist(),
            "meta": _json_copy(dict(self.meta)),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Machine:
        """Read a dict written by :meth:`to_json`.

        Raises
        ------
        MachineError (a ValueError)
            If ``data`` is not a ``rnnautomata.machine/1`` dict or a field is malformed; the
            message names the field.
        """
        if not isinstance(data, Mapping):
            raise MachineError(f"machine JSON must be an object, got {type(data).__name__}")
        found = data.get("format")
        if found != MACHINE_FORMAT:
            raise MachineError(f"not a machine JSON: format is {found!r}, expected {MACHINE_FORMAT!r}")
        missing = [key for key in ("alphabet", "outputs", "start", "transitions", "output_of_state")
                   if key not in data]
        if missing:
            raise MachineError(f"machine JSON lacks the field(s) {missing}")
        for key in ("alphabet", "outputs", "transitions", "output_of_state"):
            if not isinstance(data[key], list):
                raise MachineError(f"machine JSON field {key!r} must be a list, got {type(data[key]).__name__}")
        rows = data["transitions"]
        if any(not isinstance(row, list) for row in rows):
            raise MachineError("machine JSON field 'transitions' must be a list of lists of ints")
        if len({len(row) for row in rows}) > 1:
            raise MachineError("machine JSON field 'transitions' has rows of different lengths")
        for key, values in (("transitions", [v for row in rows for v in row]),
                            ("output_of_state", data["output_of_state"])):
            if any(isinstance(v, bool) or not isinstance(v, int) for v in values):
                raise MachineError(f"machine JSON field {key!r} must hold only integers")
        if isinstance(data["start"], bool) or not isinstance(data["start"], int):
            raise MachineError(f"machine JSON field 'start' must be an int, got {data['start']!r}")
        meta = data.get("meta", {})
        if not isinstance(meta, Mapping):
            raise MachineError(f"machine JSON field 'meta' must be an object, got {type(meta).__name__}")
        n_symbols = len(data["alphabet"])
        transitions = np.array(rows, dtype=np.int64) if rows else np.zeros((0, n_symbols), np.int64)
        try:
            return cls(tuple(data["alphabet"]), tuple(data["outputs"]), transitions,
                       np.array(data["output_of_state"], dtype=np.int64), data["start"], meta)
        except ValueError as error:
            raise MachineError(f"malformed machine JSON: {error}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_json` to ``path`` atomically (temp file in the same folder, then rename)."""
        path = Path(path)
        text = json.dumps(self.to_json(), indent=1)
        handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temp_name, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
            os.replace(temp_name, path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Machine:
        """Read a machine JSON file written by :meth:`save`.

        Raises
        ------
        MachineError (a ValueError)
            If the file cannot be read, is not valid JSON or not a machine JSON.
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise MachineError(f"{path} is not valid JSON: {error}") from None
        except OSError as error:
            raise MachineError(f"cannot read machine file {path}: {error.strerror}") from None
        return cls.from_json(data)

    # --------------------------------------------------------------- networkx
    def to_networkx(self) -> nx.MultiDiGraph:
        """The machine as a graph.

        Returns
        -------
        nx.MultiDiGraph
            Nodes ``0 .. n_states - 1`` with ``output`` (label, or None when unknown) and ``start``
            (bool); one edge per known transition with ``symbol`` (label). Graph attributes
            ``alphabet``, ``outputs`` and ``meta`` keep the label orders.
        """
        graph = nx.MultiDiGraph(alphabet=self.alphabet, outputs=self.outputs, meta=dict(self.meta))
        for state in range(self.n_states):
            output = int(self.output_of_state[state])
            graph.add_node(state, output=self.outputs[output] if output >= 0 else None,
                           start=state == self.start)
        sources, symbols = np.nonzero(self.transitions >= 0)
        for source, symbol in zip(sources.tolist(), symbols.tolist()):
            graph.add_edge(source, int(self.transitions[source, symbol]), symbol=self.alphabet[symbol])
        return graph

    @classmethod
    def from_networkx(cls, graph: nx.MultiDiGraph) -> Machine:
        """Read a graph shaped like :meth:`to_networkx`'s.

        States are numbered in the graph's node order. Missing ``alphabet``/``outputs`` graph
        attributes are inferred (sorted labels). The start node is the one with ``start=True``,
        else the first node.

        Raises
        ------
        MachineError (a ValueError)
            If there are no nodes, several start nodes, an edge without ``symbol``, or two edges
            with the same symbol leave one node.
        """
        nodes = list(graph.nodes)
        if not nodes:
            raise MachineError("cannot build a machine from a graph without nodes")
        index = {node: i for i, node in enumerate(nodes)}
        edges = list(graph.edges(data=True))
        if any("symbol" not in data for _, _, data in edges):
            raise MachineError("every edge needs a 'symbol' attribute")
        alphabet = tuple(graph.graph.get("alphabet") or sorted({str(d["symbol"]) for _, _, d in edges}))
        labels = [graph.nodes[node].get("output") for node in nodes]
        outputs = tuple(graph.graph.get("outputs") or sorted({str(x) for x in labels if x is not None}))
        output_id = {label: i for i, label in enumerate(outputs)}
        symbol_id = {symbol: i for i, symbol in enumerate(alphabet)}
        transitions = np.full((len(nodes), len(alphabet)), -1, dtype=np.int64)
        for source, target, data in edges:
            symbol = symbol_id.get(str(data["symbol"]))
            if symbol is None:
                raise MachineError(f"edge symbol {data['symbol']!r} is not in the alphabet {alphabet}")
            if transitions[index[source], symbol] >= 0:
                raise MachineError(f"node {source!r} has two edges labelled {data['symbol']!r}")
            transitions[index[source], symbol] = index[target]
        try:
            output_of_state = np.array(
                [-1 if label is None else output_id[str(label)] for label in labels], dtype=np.int64)
        except KeyError as error:
            raise MachineError(f"node output {error.args[0]!r} is not in outputs {outputs}") from None
        starts = [i for i, node in enumerate(nodes) if graph.nodes[node].get("start")]
        if len(starts) > 1:
            raise MachineError(f"the graph marks {len(starts)} start nodes; expected one")
        return cls(alphabet, outputs, transitions, output_of_state, starts[0] if starts else 0,
                   dict(graph.graph.get("meta") or {}))

    # -------------------------------------------------------------------- DOT
    def to_dot(self, name: str = "machine") -> str:
        """Plain DOT text for graphviz.

        Nodes are named by state id and labelled ``"<id>\\n<output>"`` (``?`` when unknown), with
        an ``output`` attribute when known; an invisible ``__start`` point points at the start;
        parallel transitions are grouped into one edge with comma-joined symbol labels (unless a
        symbol contains a comma). A ``// rnnautomata:`` comment keeps the label orders so that
        :meth:`from_dot` reads the machine back exactly.
        """
        header = json.dumps({"alphabet": list(self.alphabet), "outputs": list(self.outputs),
                             "start": self.start})
        lines = [f"digraph {dot_quote(name)} {{", f"  // rnnautomata: {header}", "  rankdir=LR;",
                 '  node [shape=circle];', '  __start [shape=point, label=""];']
        for state in range(self.n_states):
            output = int(self.output_of_state[state])
            if output >= 0:
                label = self.outputs[output]
                lines.append(f"  {state} [label={dot_quote(f'{state}' + chr(10) + label)}, "
                             f"output={dot_quote(label)}];")
            else:
                lines.append(f"  {state} [label={dot_quote(f'{state}' + chr(10) + '?')}];")
        lines.append(f"  __start -> {self.start};")  # after the nodes: they are numbered in order
        group = not any("," in symbol for symbol in self.alphabet)
        for state in range(self.n_states):
            targets: dict[int, list[str]] = {}
            for symbol in range(self.n_symbols):
                target = int(self.transitions[state, symbol])
                if target >= 0:
                    targets.setdefault(target, []).append(self.alphabet[symbol])
            for target, symbols in targets.items():
                chunks = [",".join(symbols)] if group else symbols
                for chunk in chunks:
                    lines.append(f"  {state} -> {target} [label={dot_quote(chunk)}];")
        lines.append("}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_dot(cls, text: str) -> Machine:
        """Read DOT written by :meth:`to_dot`, by AALpy (DFA or Moore), or a simple hand-written digraph.

        Accepted subset: one ``digraph`` (or ``graph``) block; ``//``, ``#`` and ``/* */``
        comments; statements ``ID [attrs]``, ``ID -> ID [-> ID ...] [attrs]``, ``key=value``, and
        ``node|edge|graph [attrs]`` (defaults, ignored); IDs are bare words/numbers or
        double-quoted strings. No subgraphs, ports or HTML labels.

        - If any node has ``shape=doublecircle``, the graph is a DFA (AALpy's dialect): outputs
          ``("reject", "accept")``, doublecircle nodes accept, the others reject.
        - Otherwise a node's output is its ``output`` attribute; else, for a ``shape=record``
          node, what follows the first ``|`` of its label (AALpy's Moore ``"state|output"``);
          else the last line of its ``label`` (after ``\\n``); a missing label or ``?`` means
          unknown.
        - Edge symbols are the ``label`` (or ``symbol``) attribute, split on commas unless the
          whole label is a symbol of the ``// rnnautomata:`` header's alphabet.
        - The start is the target of the edge from ``__start`` (any node named ``__start*``),
          else a node with ``start=true``, else the first node.
        - States are numbered in order of first appearance; alphabet and outputs come from the
          ``// rnnautomata:`` header, else are the sorted labels seen.

        Raises
        ------
        MachineError (a ValueError)
            For DOT outside this subset, a node with two edges on one symbol, or no nodes; and,
            without the ``// rnnautomata:`` header, when every node is labelled with just its
            own name (no output anywhere: an AALpy Mealy machine, whose edges read
            ``input/output``, or a DFA with no doublecircle state).
        """
        return _parse_dot(text, cls)


def _json_copy(meta: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``meta`` through JSON; ValueError if it is not JSON-serialisable."""
    try:
        return json.loads(json.dumps(meta))
    except (TypeError, ValueError) as error:
        raise MachineError(f"Machine.meta is not JSON-serialisable: {error}") from None


# ------------------------------------------------------------------ DOT helpers
def dot_quote(text: Any) -> str:
    """``text`` (made a string) as a DOT double-quoted string; newlines become the ``\\n`` escape.

    The one quoting of DOT text: :meth:`Machine.to_dot` and :mod:`rnnautomata.render.dot` use it.

    Examples
    --------
    >>> print(dot_quote('say "hi"' + chr(10) + 'twice'))
    "say \\"hi\\"\\ntwice"
    """
    escaped = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _dot_unquote(token: str) -> str:
    if token.startswith('"'):
        body = token[1:-1]
        return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) in "nlr" else m.group(1), body)
    return token


_DOT_TOKEN = re.compile(
    r'(?P<space>\s+)|(?P<comment>//[^\n]*|/\*.*?\*/|#[^\n]*)'
    r'|(?P<string>"(?:[^"\\]|\\.)*")|(?P<arrow>->|--)|(?P<punct>[{}\[\];,=:])'
    r"|(?P<word>-?[A-Za-z0-9_.]+|[^\x00-\x7f]+)",
    re.S,
)
_DOT_HEADER = re.compile(r"//\s*rnnautomata:\s*(\{.*\})")


def _dot_tokens(text: str) -> list[str]:
    """Split DOT text into tokens, dropping white space and comments."""
    tokens, position = [], 0
    while position < len(text):
        match = _DOT_TOKEN.match(text, position)
        if match is None:
            raise MachineError(f"unsupported DOT near {text[position:position + 30]!r}")
        if match.lastgroup not in {"space", "comment"}:
            tokens.append(match.group(match.lastgroup))
        position = match.end()
    return tokens


def _parse_attrs(tokens: list[str], i: int) -> tuple[dict[str, str], int]:
    """Parse ``[k=v, k=v; ...]`` starting at ``tokens[i] == '['``; return attrs and next index."""
    attrs: dict[str, str] = {}
    i += 1
    while i < len(tokens) and tokens[i] != "]":
        if tokens[i] in {",", ";"}:
            i += 1
            continue
        if i + 2 >= len(tokens) or tokens[i + 1] != "=":
            raise MachineError(f"malformed DOT attribute list near {tokens[i]!r}")
        attrs[_dot_unquote(tokens[i])] = _dot_unquote(tokens[i + 2])
        i += 3
    if i >= len(tokens):
        raise MachineError("unterminated DOT attribute list ('[' without ']')")
    return attrs, i + 1


_DOT_ACCEPTOR_OUTPUTS = ("reject", "accept")


def _dot_shape(attrs: dict[str, str]) -> str:
    return attrs.get("shape", "").strip().lower()


def _dot_node_output(name: str, attrs: dict[str, str]) -> str | None:
    """One node's output: ``output`` attribute, else a record's ``state|output``, else the label's last line.

    Raises
    ------
    MachineError
        If a record-shaped node's label has no ``|`` field separator.
    """
    if "output" in attrs:
        return attrs["output"]
    if "label" not in attrs:
        return None
    if _dot_shape(attrs) in {"record", "mrecord"}:  # AALpy Moore: label "state|output"
        fields = attrs["label"].strip()
        if fields.startswith("{") and fields.endswith("}"):
            fields = fields[1:-1]
        if "|" not in fields:
            raise MachineError(f"DOT record node {name!r} has label {attrs['label']!r}; expected 'state|output'")
        return fields.split("|", 1)[1]
    line = attrs["label"].split("\n")[-1]
    return None if line in {"", "?"} else line


def _dot_state_outputs(
    states: list[str], node_attrs: dict[str, dict[str, str]]
) -> tuple[list[str | None], tuple[str, ...] | None]:
    """Each state's output label, and the outputs when the graph is a doublecircle acceptor.

    A graph with any ``shape=doublecircle`` node is a DFA (AALpy's dialect): doublecircle nodes
    output ``"accept"``, all others ``"reject"``, whatever their labels say.
    """
    accepting = [_dot_shape(node_attrs[name]) == "doublecircle" for name in states]
    if any(accepting):
        return [_DOT_ACCEPTOR_OUTPUTS[flag] for flag in accepting], _DOT_ACCEPTOR_OUTPUTS
    return [_dot_node_output(name, node_attrs[name]) for name in states], None


def _check_dot_has_outputs(
    states: list[str], node_attrs: dict[str, dict[str, str]], edges: list[tuple[str, str, dict[str, str]]]
) -> None:
    """Refuse DOT whose node labels only repeat node names (AALpy Mealy, or a DFA with no accepting state).

    Raises
    ------
    MachineError
        If every state node is labelled with exactly its own name and nothing else marks an output.
    """
    names_only = all(
        node_attrs[name].get("label") == name and "output" not in node_attrs[name]
        and _dot_shape(node_attrs[name]) not in {"doublecircle", "record", "mrecord"}
        for name in states
    )
    if not names_only:
        return
    labels = [attrs.get("symbol", attrs.get("label", "")) for _, _, attrs in edges]
    if labels and all("/" in label for label in labels):
        raise MachineError(
            "DOT edges are labelled 'input/output' (a Mealy machine, e.g. AALpy's); Machine is a "
            "Moore machine: load it with aalpy.utils.load_automaton_from_file and convert with "
            "rnnautomata.interop.from_aalpy"
        )
    raise MachineError(
        "DOT node labels only repeat the node names, so no state has an output: mark accepting "
        "states with shape=doublecircle, label Moore states 'state|output' with shape=record, or "
        "give each node an output attribute"
    )


def _parse_dot(text: str, cls: type[Machine]) -> Machine:
    header_match = _DOT_HEADER.search(text)
    try:
        header = json.loads(header_match.group(1)) if header_match else {}
    except json.JSONDecodeError as error:
        raise MachineError(f"the '// rnnautomata:' DOT comment is not valid JSON: {error}") from None
    if not isinstance(header, dict):
        raise MachineError("the '// rnnautomata:' DOT comment must hold a JSON object")
    tokens = _dot_tokens(text)
    i = 0
    if i < len(tokens) and tokens[i].lower() == "strict":
        i += 1
    if i >= len(tokens) or tokens[i].lower() not in {"digraph", "graph"}:
        raise MachineError("DOT text must start with 'digraph'")
    i += 1
    if i < len(tokens) and tokens[i] != "{":
        i += 1  # graph name
    if i >= len(tokens) or tokens[i] != "{" or tokens[-1] != "}":
        raise MachineError("DOT graph body must be enclosed in { }")
    body, i = tokens[i + 1:-1], 0
    node_attrs: dict[str, dict[str, str]] = {}
    edges: list[tuple[str, str, dict[str, str]]] = []

    def touch(name: str) -> None:
        node_attrs.setdefault(name, {})

    while i < len(body):
        token = body[i]
        if token in {";", ","}:
            i += 1
            continue
        if token in {"{", "}"} or token.lower() == "subgraph":
            raise MachineError("DOT subgraphs are not supported")
        if token.lower() in {"node", "edge", "graph"} and i + 1 < len(body) and body[i + 1] == "[":
            _, i = _parse_attrs(body, i + 1)
            continue
        if i + 1 < len(body) and body[i + 1] == "=":  # graph attribute statement
            i += 3
            continue
        chain = [_dot_unquote(token)]
        i += 1
        while i + 1 < len(body) and body[i] in {"->", "--"}:
            chain.append(_dot_unquote(body[i + 1]))
            i += 2
        attrs: dict[str, str] = {}
        if i < len(body) and body[i] == "[":
            attrs, i = _parse_attrs(body, i)
        for name in chain:
            touch(name)
        if len(chain) == 1:
            node_attrs[chain[0]].update(attrs)
        for source, target in zip(chain, chain[1:]):
            edges.append((source, target, attrs))

    start_names = [n for n in node_attrs if n.startswith("__start")]
    start_targets = [t for s, t, _ in edges if s in start_names]
    states = [n for n in node_attrs if n not in start_names]
    if not states:
        raise MachineError("DOT graph has no state nodes")
    index = {name: k for k, name in enumerate(states)}
    if start_targets:
        start = index[start_targets[0]]
    else:
        flagged = [index[n] for n in states if node_attrs[n].get("start", "").lower() in {"true", "1", "yes"}]
        start = flagged[0] if flagged else 0

    state_edges = [(source, target, attrs) for source, target, attrs in edges if source not in start_names]
    if not header:
        _check_dot_has_outputs(states, node_attrs, state_edges)
    labels, acceptor_outputs = _dot_state_outputs(states, node_attrs)
    known_symbols = set(header.get("alphabet", []))
    moves: list[tuple[int, str, int]] = []
    for source, target, attrs in state_edges:
        raw = attrs.get("symbol", attrs.get("label"))
        if raw is None:
            raise MachineError(f"DOT edge {source} -> {target} has no label (its input symbol)")
        symbols = [raw] if raw in known_symbols else [s.strip() for s in raw.split(",")]
        moves.extend((index[source], symbol, index[target]) for symbol in symbols)
    alphabet = tuple(header.get("alphabet") or sorted({symbol for _, symbol, _ in moves}))
    outputs = tuple(acceptor_outputs or header.get("outputs") or sorted({x for x in labels if x is not None}))
    symbol_id = {symbol: k for k, symbol in enumerate(alphabet)}
    output_id = {label: k for k, label in enumerate(outputs)}
    transitions = np.full((len(states), len(alphabet)), -1, dtype=np.int64)
    for source, symbol, target in moves:
        if symbol not in symbol_id:
            raise MachineError(f"DOT edge symbol {symbol!r} is not in the alphabet {alphabet}")
        if transitions[source, symbol_id[symbol]] >= 0:
            raise MachineError(f"DOT node {states[source]!r} has two edges on symbol {symbol!r}")
        transitions[source, symbol_id[symbol]] = target
    unknown = [x for x in labels if x is not None and x not in output_id]
    if unknown:
        raise MachineError(f"DOT node output {unknown[0]!r} is not in outputs {outputs}")
    output_of_state = np.array([-1 if x is None else output_id[x] for x in labels], dtype=np.int64)
    return cls(alphabet, outputs, transitions, output_of_state, start, {})
